from __future__ import annotations

import datetime as dt
from typing import Any

from kapclinic.testing.matrix import Entry, expect, free_start, patient_kwargs, patient_scoped, public, roles

CAL = ("admin", "front_desk", "prescriber", "therapist", "nurse")


def _appointment(world: Any) -> dict[str, Any]:
    from kapclinic.core import clock
    from kapclinic.scheduling.models import Appointment

    start = free_start(world, clock.now() + dt.timedelta(days=2), 60, world.therapist)
    appt = Appointment.objects.create(
        clinic=world.clinic,
        patient=world.patient,
        kind="integration",
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=60),
        staff=world.therapist,
        created_by=world.front_desk,
    )
    return {"appointment_id": appt.pk}


def _video(world: Any) -> dict[str, Any]:
    from kapclinic.scheduling.models import Appointment

    kwargs = _appointment(world)
    Appointment.objects.filter(pk=kwargs["appointment_id"]).update(modality="video", place_of_service="02")
    return kwargs


def _reminder(world: Any) -> dict[str, Any]:
    from kapclinic.scheduling.models import Appointment, Reminder

    appt = Appointment.objects.get(pk=_appointment(world)["appointment_id"])
    reminder = Reminder.objects.create(
        clinic=world.clinic, appointment=appt, send_at=appt.starts_at, status="failed"
    )
    return {"reminder_id": reminder.pk}


def _feed(world: Any) -> dict[str, Any]:
    from kapclinic.scheduling import services
    from kapclinic.testing.factories import actor_for

    return {"token": services.feed_reset(actor_for(world.therapist, world.clinic))}


def _plan(world: Any) -> dict[str, Any]:
    from kapclinic.treatment.access_matrix import _plan as plan_setup

    return plan_setup(world)


# Appointment pages check the role first (patients: 403), then the clinic (other clinic: 404), then the
# care team through policy.open_patient(SCHEDULE) (therapist not on the team: 403).
APPT = patient_scoped(CAL, patient_user=403, other_patient_user=403)
APPT_POST = patient_scoped(CAL, ok=302, patient_user=403, other_patient_user=403)

MATRIX = {
    "scheduling:index": Entry(roles(CAL)),
    "scheduling:week": Entry(roles(CAL)),
    "scheduling:chairs": Entry(roles(CAL)),
    "scheduling:new": Entry(roles(CAL)),
    "scheduling:detail": Entry(APPT, setup=_appointment),
    "scheduling:edit": Entry(APPT, setup=_appointment),
    "scheduling:cancel": Entry(APPT_POST, method="post", setup=_appointment),
    "scheduling:status": Entry(APPT_POST, method="post", setup=_appointment),
    "scheduling:check_in": Entry(APPT_POST, method="post", setup=_appointment),
    "scheduling:patient": Entry(APPT, kwargs=patient_kwargs),
    "scheduling:plan_series": Entry(APPT, setup=_plan),
    "scheduling:reminders": Entry(roles(("admin", "front_desk", "prescriber", "nurse"))),
    "scheduling:reminder_retry": Entry(
        roles(("admin", "front_desk", "prescriber", "nurse"), ok=302, other_clinic_staff=404),
        method="post",
        setup=_reminder,
    ),
    "scheduling:rooms": Entry(roles(("admin",))),
    "scheduling:lengths": Entry(roles(("admin",))),
    "scheduling:my_feed": Entry(roles(("prescriber", "therapist", "nurse"))),
    "scheduling:feed": Entry(public(), setup=_feed, note="secret token URL: calendar apps cannot sign in"),
    # Issue 17, video appointments: the clinic's setting (admins), a clinician's own room, the join pages.
    "scheduling:telehealth": Entry(roles(("admin",))),
    "scheduling:my_room": Entry(roles(("prescriber", "therapist", "nurse"))),
    "scheduling:video": Entry(APPT, setup=_video),
    # The patient's own video appointment; another patient's does not exist for them; staff: 403.
    "scheduling:my_video": Entry(expect(403, patient_user=200, other_patient_user=404), setup=_video),
}
