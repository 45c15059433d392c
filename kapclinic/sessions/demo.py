"""Demo dosing sessions (synthetic), run through the real services so every record is what the UI would
have written: a completed session for four patients in treatment (on their signed plan's protocol, with
the pre-session PHQ-9 from the measures app, the gate passed with no override, dose, vitals, ratings and a
discharge after the protocol's minimum), and sessions scheduled for today for the demo patient and two
others, which the nurse can take through check-in, gate, dose, monitoring and discharge. Idempotent.

The completed sessions are dated on the days the scheduling demo books their dosing appointments; the
application clock is moved to each step's time while the services run (kapclinic.intake.demo.at_time).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import transaction

from kapclinic.clinical.session_state import Event
from kapclinic.clinical.vitals import Reading
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.intake.demo import at_time
from kapclinic.intake.models import Assessment
from kapclinic.measures.services import response_submit
from kapclinic.patients.models import PathwayStatus
from kapclinic.scheduling.models import Appointment, Kind, Status
from kapclinic.sessions import services
from kapclinic.sessions.models import ClinicProtocolSetting, DosingSession, ObservationKind
from kapclinic.treatment.selectors import signed_plan

PRE_SESSION_PHQ9 = [1, 2, 1, 1, 1, 0, 1, 0, 0]  # total 7, item 9 = 0


def _weight(patient: Any) -> Decimal:
    w = Assessment.objects.filter(patient=patient).values_list("weight_kg", flat=True).first()
    return Decimal(w) if w else Decimal("72.0")


def _gate_values(ctx: Any, patient: Any, protocol_id: str, start: dt.datetime) -> dict[str, Any]:
    values: dict[str, Any] = {
        "weight_kg": _weight(patient),
        "last_food_at": start - dt.timedelta(hours=4),
        "last_liquid_at": start - dt.timedelta(hours=2),
        "escort_name": ctx.faker.name(),
        "escort_phone": ctx.faker.numerify("(555) 01#-####"),
        "medication_changes_reviewed": True,
        "flagged_medication_classes": [],
        "pregnancy_status": "not_applicable",
        "intention": "Notice what comes up, with kindness",
    }
    if protocol_id.startswith("esketamine"):
        values.update({"rems_enrolled": True, "nasal_steroid": "none"})
    return values


def _dosing_appointment(patient: Any, start: dt.datetime) -> Appointment | None:
    """The scheduling demo's dosing appointment for this patient at ``start`` (it runs first, a moment
    earlier, so its clock reading may differ by seconds: demo data only, never used to link real data)."""
    window = dt.timedelta(minutes=15)
    return (
        Appointment.objects.filter(
            patient=patient, kind=Kind.DOSING, starts_at__gte=start - window, starts_at__lte=start + window
        )
        .exclude(status=Status.CANCELLED)
        .order_by("starts_at")
        .first()
    )


def _completed(ctx: Any, patient: Any, protocol_id: str, start: dt.datetime) -> None:
    """One session from check-in to discharge; ``start`` is the first dose."""
    nurse, prescriber = ctx.staff_actor("nurse"), ctx.staff_actor("prescriber")
    iv = not protocol_id.startswith("esketamine")

    def at(minutes: int) -> Any:
        return at_time(start + dt.timedelta(minutes=minutes))

    with at(-30):
        appt = _dosing_appointment(patient, clock.now())
        if appt is not None:  # the nurse starts the session from the booked dosing appointment
            s, _created = services.session_start_from_appointment(nurse, appt)
        else:
            s = services.session_create(nurse, patient, protocol_id, clock.now())
        s = services.session_transition(nurse, s, Event.CHECK_IN, s.version)
        link_actor = Actor(user=None, clinic=ctx.clinic, role="patient_link", request_id="seed-demo")
        response_submit(  # the patient answered the emailed pre-session PHQ-9 the evening before
            link_actor,
            patient,
            instrument="PHQ-9",
            version=None,
            answers=PRE_SESSION_PHQ9,
            source="email_link",
            completed_at=start - dt.timedelta(hours=16),
        )
        s = services.gate_update(nurse, s, s.version, _gate_values(ctx, patient, protocol_id, start))
    with at(-20):
        services.vitals_record(nurse, s, Reading(sbp=128, dbp=82, hr=74, rr=14, spo2=98))
    with at(-12):
        s.refresh_from_db()
        s = services.gate_pass(nurse, s, s.version)
    with at(-8):
        s.refresh_from_db()
        if iv:
            services.dose_order(
                prescriber, s, s.version, {"mg_per_kg": "0.5", "concentration": "10", "diluent_ml": "100"}
            )
            services.dose_double_check(nurse, s)
        else:
            services.dose_order(prescriber, s, s.version, {"fixed_mg": "56"})
    with at(0):
        s.refresh_from_db()
        giver = prescriber if iv else nurse  # the double-checker does not also give the dose
        lot = f"LOT{ctx.rng.randint(10000, 99999)}"
        s = services.dosing_start(
            giver, s, s.version, lot_number=lot, expiry_date=clock.today() + dt.timedelta(days=300)
        )
    with at(10):
        s = services.session_transition(nurse, s, Event.START_MONITORING, s.version)
    with at(25):
        services.event_record(nurse, s, "side_effect", "nausea", "mild")
    with at(30):
        services.rating_record(nurse, s, ObservationKind.SEDATION, 4)
        services.rating_record(nurse, s, ObservationKind.DISSOCIATION, 2)
    with at(40):
        services.vitals_record(nurse, s, Reading(sbp=146, dbp=90, hr=82, rr=15, spo2=97))
    with at(95):
        s.refresh_from_db()
        s = services.session_transition(nurse, s, Event.START_RECOVERY, s.version)
    with at(105):
        services.rating_record(nurse, s, ObservationKind.SEDATION, 5)
        services.rating_record(nurse, s, ObservationKind.DISSOCIATION, 0)
    with at(110):
        services.vitals_record(nurse, s, Reading(sbp=130, dbp=84, hr=72, rr=14, spo2=98))
    with at(125):
        s.refresh_from_db()
        services.session_discharge(
            nurse,
            s,
            s.version,
            escort_present=True,
            no_driving=True,
            signed=True,
            ready_to_leave_minutes=90,
            note="Alert and steady; left with escort.",
        )


@transaction.atomic
def seed(ctx: Any) -> None:
    if DosingSession.objects.filter(clinic=ctx.clinic).exists():
        return
    ClinicProtocolSetting.objects.get_or_create(
        clinic=ctx.clinic,
        protocol_id="ketamine-iv-racemic",
        key="observation.minimum_minutes",
        defaults={"value": "120", "set_by": ctx.staff["prescriber"]},
    )
    active = [
        p for p in ctx.patients if p.pathway_status in (PathwayStatus.ACTIVE, PathwayStatus.MAINTENANCE)
    ]
    now = clock.now()
    # Same days as the scheduling demo's past dosing appointments (check-in at the appointment start).
    for i, patient in enumerate(active[:4]):
        plan = signed_plan(patient)
        if plan is None:
            continue
        days = 10 + i if i % 2 == 0 else 3 + i
        _completed(ctx, patient, plan.protocol_id, now - dt.timedelta(days=days))
    # Today: on the hour, one, two and three hours from now, on each patient's signed plan, started from
    # the scheduling demo's dosing appointments; the third is left for the nurse to start from the chair
    # board ("Start session").
    nurse = ctx.staff_actor("nurse")
    top = now.replace(minute=0, second=0, microsecond=0)
    for i, patient in enumerate([ctx.demo_patient, *active[4:6]]):
        plan = signed_plan(patient)
        if plan is None:
            continue
        when = top + dt.timedelta(hours=i + 1)
        appt = _dosing_appointment(patient, when)
        if appt is None:
            services.session_create(nurse, patient, plan.protocol_id, when)
        elif i < 2:
            services.session_start_from_appointment(nurse, appt)
    # The demo patient answered today's pre-session PHQ-9 in the portal this morning.
    demo = ctx.demo_patient
    if demo.user_id and signed_plan(demo) is not None:
        response_submit(
            Actor(user=demo.user, clinic=ctx.clinic, role="patient", request_id="seed-demo"),
            demo,
            instrument="PHQ-9",
            version=None,
            answers=[1, 1, 1, 1, 0, 1, 0, 0, 0],
            source="portal",
            entered_by=demo.user,
            completed_at=max(now - dt.timedelta(hours=3), top - dt.timedelta(hours=1)),
        )
