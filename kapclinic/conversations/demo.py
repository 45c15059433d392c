"""Demo for issue 17 (synthetic): the demo patient's conversation with the care team (answered), one
patient message still waiting, a staff-only thread; the clinic's video links from a Jitsi pattern; the
demo patient's consent to texts (the console SMS backend prints them)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kapclinic.conversations.models import Message, ReadMark, Thread, ThreadKind
from kapclinic.core import clock
from kapclinic.messaging.models import SmsPreference
from kapclinic.patients.models import CareTeamRole
from kapclinic.scheduling.models import TelehealthSettings


def _thread(patient: Any, kind: str, subject: str, lines: list[tuple[Any, bool, str, dt.datetime]]) -> Thread:
    first, last = lines[0], lines[-1]
    thread = Thread.objects.create(
        clinic=patient.clinic,
        patient=patient,
        kind=kind,
        subject=subject,
        created_by=first[0],
        created_at=first[3],
        last_message_at=last[3],
        last_message_by=last[0],
        awaiting_since=last[3] if last[1] else None,
    )
    for author, from_patient, body, at in lines:
        Message.objects.create(
            thread=thread, author=author, from_patient=from_patient, body=body, created_at=at
        )
        ReadMark.objects.update_or_create(thread=thread, user=author, defaults={"read_at": at})
    return thread


def seed(ctx: Any) -> None:
    patient = ctx.demo_patient
    TelehealthSettings.objects.get_or_create(
        clinic=ctx.clinic, defaults={"mode": "jitsi", "jitsi_pattern": "https://meet.jit.si/{room}"}
    )
    if patient.user is not None and not SmsPreference.objects.filter(patient=patient).exists():
        SmsPreference.objects.create(
            patient=patient,
            phone_e164="+12025550142",
            wants_sms=True,
            consent_at=clock.now() - dt.timedelta(days=20),
            consent_recorded_by=ctx.staff.get("front_desk"),
        )
    if Thread.objects.filter(patient=patient).exists():
        return
    therapist = patient.care_team.filter(role=CareTeamRole.THERAPIST).select_related("user").first()
    clinician = therapist.user if therapist else ctx.staff["prescriber"]
    now = clock.now()
    user = patient.user
    if user is None:
        return
    _thread(
        patient,
        ThreadKind.PATIENT,
        "Sleep after the session",
        [
            (
                user,
                True,
                "I have been sleeping badly since the session. Is that usual?",
                now - dt.timedelta(days=3),
            ),
            (
                clinician,
                False,
                "Thank you for telling us. It is common for a few nights; let's talk about it on "
                "Friday. If it gets worse, call the clinic.",
                now - dt.timedelta(days=2, hours=20),
            ),
        ],
    )
    _thread(
        patient,
        ThreadKind.PATIENT,
        "Parking on Friday",
        [(user, True, "Is there parking near the clinic on Friday?", now - dt.timedelta(days=3, hours=2))],
    )
    _thread(
        patient,
        ThreadKind.STAFF,
        "Integration plan",
        [
            (
                clinician,
                False,
                "Suggest we focus the next integration session on sleep and routine.",
                now - dt.timedelta(days=1),
            )
        ],
    )
