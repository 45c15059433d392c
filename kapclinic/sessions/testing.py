"""Test support (not used by the running app): take a dosing session through the real services.

``past_the_gate(creator, nurse, patient, protocol, at)`` has the nurse enter a paper PHQ-9, ``creator``
create the session at ``at``, the nurse check the patient in, fill the pre-dose checks (weight 70 kg, fasted,
an escort), record a normal set of vitals and pass the gate. ``gate`` adds or replaces pre-dose fields.
The patient must be ready to dose first (``kapclinic.treatment.testing.make_dosing_ready``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from kapclinic.clinical.session_state import Event
from kapclinic.clinical.vitals import Reading
from kapclinic.core.actor import Actor
from kapclinic.measures.services import response_submit
from kapclinic.sessions import services
from kapclinic.sessions.models import DosingSession


def past_the_gate(
    creator: Actor, nurse: Actor, patient: Any, protocol: str, at: dt.datetime, **gate: Any
) -> DosingSession:
    response_submit(
        nurse, patient, instrument="PHQ-9", version=None,
        answers=[2, 2, 1, 1, 1, 0, 1, 0, 0], source="paper", entered_by=nurse.require_user(),
    )  # fmt: skip
    s = services.session_create(creator, patient, protocol_key=protocol, scheduled_for=at)
    s = services.session_transition(nurse, s, Event.CHECK_IN, expected_version=s.version)
    s = services.gate_update(
        nurse, s, expected_version=s.version,
        values={
            "weight_kg": 70, "last_food_at": at - dt.timedelta(hours=4),
            "last_liquid_at": at - dt.timedelta(hours=2),
            "escort_name": "Sam Escort", "escort_phone": "", "medication_changes_reviewed": True,
            "flagged_medication_classes": [], "pregnancy_status": "not_applicable", "intention": "Curiosity",
            **gate,
        },
    )  # fmt: skip
    services.vitals_record(nurse, s, Reading(sbp=124, dbp=80, hr=72, rr=14, spo2=98))
    s.refresh_from_db()
    return services.gate_pass(nurse, s, expected_version=s.version)
