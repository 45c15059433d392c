"""After the dose: the REMS record and the session's process notes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from kapclinic.clinical.vitals import Reading
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.policy import ClinicAction, clinic_can
from kapclinic.sessions.models import (
    DosingSession,
    ObservationKind,
)
from kapclinic.sessions.selectors.administration import _stock_containers
from kapclinic.sessions.selectors.record import baseline_reading, final_reading, given_record


def rems_record(session: DosingSession) -> dict[str, Any]:
    """Every REMS Patient Monitoring Form field listed in ref §2.1 [S6a][S6b], filled from the session."""
    patient = session.patient
    admin = getattr(session, "administration", None)
    given = given_record(session)
    base = baseline_reading(session)
    final = final_reading(session)
    at40 = None
    if session.first_dose_at:
        target = session.first_dose_at + dt.timedelta(minutes=40)
        rows = list(
            session.observations.filter(
                kind=ObservationKind.VITAL, code__in=["8480-6", "8462-4"], at__gte=session.first_dose_at
            )
        )
        if rows:
            nearest = min(rows, key=lambda o: abs((o.at - target).total_seconds()))
            pair = {o.code: o.value for o in rows if o.reading == nearest.reading}
            at40 = (
                pair.get("8480-6"),
                pair.get("8462-4"),
                int((nearest.at - session.first_dose_at).total_seconds() // 60),
            )
    flagged = set(session.flagged_medication_classes or [])
    end = session.discharged_at
    total = (
        int((end - session.first_dose_at).total_seconds() // 60) if end and session.first_dose_at else None
    )
    from kapclinic.sessions.services import protocol_for

    thresholds = protocol_for(session).thresholds
    from kapclinic.clinical.vitals import Phase, evaluate_reading

    def in_range(r: Reading | None, phase: Phase) -> bool | None:
        if r is None:
            return None
        return not evaluate_reading(r, baseline=base, phase=phase, thresholds=thresholds)

    previous = (
        DosingSession.objects.filter(patient=patient, first_dose_at__lt=session.first_dose_at or clock.now())
        .exclude(pk=session.pk)
        .exists()
        if session.first_dose_at
        else None
    )
    sedation = session.observations.filter(kind=ObservationKind.SEDATION, value__lt=5).exists()
    dissociation = session.observations.filter(kind=ObservationKind.DISSOCIATION, value__gt=0).exists()
    resp = session.alerts.filter(rule__in=["spo2_below", "rr_below"]).exists()
    return {
        "patient": patient,
        "first_treatment": previous is False if previous is not None else None,
        "meds": {
            "Benzodiazepines": "benzodiazepine" in flagged,
            "Non-benzodiazepine sedative hypnotics": "sedative_hypnotic" in flagged,
            "Psychostimulants": "stimulant" in flagged,
            "MAOIs": "maoi" in flagged,
            "Opioids (mentioned in the J&J walkthrough)": "opioid" in flagged,
        },
        "monitoring_hcp": session.discharged_by,
        "clinic": session.clinic,
        "treatment_date": session.first_dose_at,
        # The dose given: less than the order when fewer devices were used (a documented partial dose).
        "dose_mg": given.dose_given_mg
        if given.dose_given_mg is not None
        else admin.dose_mg
        if admin
        else None,
        "dose_ordered_mg": admin.dose_mg if admin else None,
        "given": given,
        "lot_number": admin.lot_number if admin else "",
        "containers": _stock_containers(session),
        "total_minutes": total,
        "ready_to_leave_minutes": session.ready_to_leave_minutes,
        "vitals_ok_before": in_range(base, "pre_dose"),
        "vitals_ok_end": in_range(final, "intra"),
        "bp_before": base,
        "bp_40": at40,
        "bp_end": final,
        "sedation": sedation,
        "dissociation": dissociation,
        "respiratory": resp,
        "submitted_at": session.rems_submitted_at,
    }


@dataclass(frozen=True)
class SessionProcessNote:
    note: Any  # kapclinic.notes.models.ProcessNote
    text: str
    shared_with: list[str]


def session_process_notes(actor: Actor, session: DosingSession) -> list[SessionProcessNote]:
    """The therapist process notes of this session that ``actor`` may read (author or shared with),
    decrypted for display; one query for the notes and one for their shares. Nurses, front desk and
    anyone the author did not share with get nothing."""
    from kapclinic.notes.selectors import readable_process_notes
    from kapclinic.notes.services import process_note_text

    if actor.user is None or not clinic_can(actor, ClinicAction.PROCESS_NOTES):
        return []
    rows = readable_process_notes(actor.user, session.patient).filter(dosing_session=session)
    return [
        SessionProcessNote(
            r,
            process_note_text(r),
            [s.user.full_name for s in r.shares.all()] if r.author_id == actor.user.pk else [],
        )
        for r in rows.order_by("created_at", "id")
    ]
