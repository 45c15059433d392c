"""Authorization matrix for every sessions URL (see kapclinic/testing/matrix.py).

Allowed personas POSTing an empty form get 400 (a refusal that names the field); everyone else is
refused by the policy before anything is read."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kapclinic.testing.matrix import Entry, free_start, patient_scoped, roles


def _session(world: Any) -> dict[str, Any]:
    from kapclinic.sessions.models import DosingSession

    s = DosingSession.objects.create(
        clinic=world.clinic,
        patient=world.patient,
        protocol_id="esketamine-in-trd",
        protocol_version="1.0.0",
        scheduled_for=dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC),
        created_by=world.prescriber,
    )
    return {"patient_id": world.patient.pk, "session_id": s.pk}


def _with(**extra: Any) -> Any:
    def setup(world: Any) -> dict[str, Any]:
        return {**_session(world), **extra}

    return setup


def _dosing_appointment(world: Any) -> dict[str, Any]:
    from kapclinic.scheduling.models import Appointment

    start = free_start(world, dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC), 180, world.nurse)
    appt = Appointment.objects.create(
        clinic=world.clinic, patient=world.patient, kind="dosing", starts_at=start,
        ends_at=start + dt.timedelta(minutes=180), staff=world.nurse, created_by=world.front_desk,
    )  # fmt: skip
    return {"appointment_id": appt.pk}


def _patient(world: Any) -> dict[str, Any]:
    return {"patient_id": world.patient.pk}


VIEW = patient_scoped(("prescriber", "nurse", "therapist"))
MONITOR_POST = patient_scoped(("prescriber", "nurse"), ok=400)
PRESCRIBE_POST = patient_scoped(("prescriber",), ok=400)
EDIT_POST = patient_scoped(("prescriber", "nurse", "therapist"), ok=400)

MATRIX = {
    "sessions:index": Entry(roles(("prescriber", "nurse", "therapist"))),
    # Clinic settings (no patient data): clinical staff who run sessions and the admin may read them;
    # only a prescriber changes them (an empty POST lacks the page's stamp/version: 400).
    "sessions:settings": Entry(roles(("prescriber", "nurse", "admin"))),
    "sessions:settings_protocol": Entry(
        roles(("prescriber",), ok=400),
        kwargs=lambda world: {"protocol_id": "esketamine-in-trd"},
        method="post",
    ),
    "sessions:settings_measures": Entry(roles(("prescriber",), ok=400), method="post"),
    "sessions:settings_alerts": Entry(roles(("prescriber",), ok=400), method="post"),
    "sessions:new": Entry(patient_scoped(("prescriber", "nurse")), kwargs=_patient),
    # Start from a dosing appointment: allowed staff are sent on (to the session, or back to the
    # appointment with the refusal when, as here, the patient has no signed plan).
    "sessions:start": Entry(
        patient_scoped(("prescriber", "nurse"), ok=302), setup=_dosing_appointment, method="post"
    ),
    "sessions:detail": Entry(VIEW, setup=_session),
    "sessions:monitor": Entry(VIEW, setup=_session),
    "sessions:dose_card": Entry(VIEW, setup=_session),
    "sessions:rems": Entry(VIEW, setup=_session),
    "sessions:transition": Entry(MONITOR_POST, setup=_session, method="post"),
    "sessions:abort": Entry(MONITOR_POST, setup=_session, method="post"),
    "sessions:gate": Entry(MONITOR_POST, setup=_session, method="post"),
    "sessions:gate_pass": Entry(MONITOR_POST, setup=_session, method="post"),
    "sessions:override": Entry(PRESCRIBE_POST, setup=_session, method="post"),
    "sessions:vitals": Entry(MONITOR_POST, setup=_session, method="post"),
    "sessions:rating": Entry(MONITOR_POST, setup=_with(kind="sedation"), method="post"),
    "sessions:event": Entry(MONITOR_POST, setup=_with(kind="note"), method="post"),
    "sessions:acknowledge": Entry(MONITOR_POST, setup=_with(alert_id=999999), method="post"),
    "sessions:dose": Entry(PRESCRIBE_POST, setup=_session, method="post"),
    "sessions:double_check": Entry(MONITOR_POST, setup=_session, method="post"),
    "sessions:cosign": Entry(PRESCRIBE_POST, setup=_session, method="post"),
    "sessions:double_check_withdraw": Entry(MONITOR_POST, setup=_session, method="post"),
    "sessions:missed_check": Entry(MONITOR_POST, setup=_session, method="post"),
    "sessions:start_dosing": Entry(MONITOR_POST, setup=_session, method="post"),
    "sessions:device": Entry(MONITOR_POST, setup=_session, method="post"),
    "sessions:infusion_stop": Entry(MONITOR_POST, setup=_session, method="post"),
    "sessions:lozenge": Entry(MONITOR_POST, setup=_session, method="post"),
    "sessions:stock_waste": Entry(MONITOR_POST, setup=_session, method="post"),
    "sessions:stock_disposal": Entry(MONITOR_POST, setup=_session, method="post"),
    "sessions:stock_unused": Entry(MONITOR_POST, setup=_session, method="post"),
    "sessions:discharge": Entry(MONITOR_POST, setup=_session, method="post"),
    "sessions:adverse_event": Entry(MONITOR_POST, setup=_session, method="post"),
    "sessions:process_note": Entry(EDIT_POST, setup=_session, method="post"),
    "sessions:rems_submitted": Entry(MONITOR_POST, setup=_session, method="post"),
}
