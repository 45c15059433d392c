"""What the gate reads: medications of a flagged class on the chart, the PHQ-9 that counts for the
session."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kapclinic.core import clock
from kapclinic.core.sentinel import NOT_READ
from kapclinic.sessions.models import DosingSession
from kapclinic.sessions.selectors.record import previous_dose_at


def chart_flagged_medications(
    patient: Any, *, assessment: Any = NOT_READ, meds: list[Any] | None = None
) -> list[tuple[str, str, str]]:
    """The chart's current medications in a class the gate flags (ref §3.6, §6.1), as
    (name, gate class, label); read through the intake classification so the two never disagree.

    ``assessment`` (the patient's intake assessment, None when there is none) and ``meds`` (the chart's
    current medications): what the caller has already read of them for this request; else read here."""
    from kapclinic.clinical.session_state import FLAGGED_MEDICATION_CLASSES, MEDICATION_CLASS_LABELS
    from kapclinic.intake.models import Assessment
    from kapclinic.intake.selectors import classified_medications

    if assessment is NOT_READ:
        assessment = Assessment.objects.filter(patient=patient).only("medication_classes").first()
    classified = classified_medications(assessment or Assessment(patient=patient), patient, meds)
    return [
        (c.medication.name, c.ruleset_class, MEDICATION_CLASS_LABELS[c.ruleset_class])
        for c in classified
        if c.ruleset_class in FLAGGED_MEDICATION_CLASSES
    ]


def session_phq9(session: DosingSession, *, now: dt.datetime | None = None) -> Any:
    """The PHQ-9 (measures app) that counts for this session, per the clinic's window setting."""
    from kapclinic.measures.selectors import session_phq9 as measures_session_phq9

    return measures_session_phq9(
        session.patient, now=now or clock.now(), previous_dose_at=previous_dose_at(session)
    )
