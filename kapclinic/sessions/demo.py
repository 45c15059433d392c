"""Demo dosing sessions (synthetic), run through the real services so every record is what the UI would
have written. Every patient in treatment, maintenance or discharged has a history of completed sessions on
their signed plan's protocol: check-in, the PHQ-9 the patient answered the evening before (its total from
the course kapclinic.measures.demo plans), the gate passed with no override, dose, vitals, ratings and a
discharge after the protocol's minimum. Rhythm from the protocol (ref §1.3, §1.4): patients in treatment
are part-way through their induction series; patients in maintenance had as much of it as the time since
their plan holds (the demo pathway starts at most about three weeks ago, kapclinic.intake.demo), then, IV,
a weekly maintenance session; discharged patients had the six-infusion IV series. Sessions are scheduled
for today for the demo patient and two others, which the nurse can take through check-in, gate, dose,
monitoring and discharge. Idempotent.

Four of the completed sessions are dated on the days the scheduling demo books their dosing appointments
(and started from them); the application clock is moved to each step's time while the services run
(kapclinic.intake.demo.at_time). Patients who were discharged have no consent or plan from the consent
and treatment demos (those cover patients in treatment and maintenance), so this seeder signs theirs,
through the same services, before their first session.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from django.db import transaction

from kapclinic.accounts.models import Role
from kapclinic.clinical.protocols import Protocol, get_protocol
from kapclinic.clinical.session_state import Event
from kapclinic.clinical.terminology import BY_ICD10
from kapclinic.clinical.vitals import Reading
from kapclinic.consent import services as consent_services
from kapclinic.consent.models import SignatureChannel
from kapclinic.consent.selectors import consent_state
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.intake.demo import at_time, treatment_start
from kapclinic.intake.models import Assessment
from kapclinic.intake.selectors import eligibility_state
from kapclinic.inventory import demo as inventory_demo
from kapclinic.inventory import services as inventory_services
from kapclinic.measures import demo as measures_demo
from kapclinic.measures.services import response_submit
from kapclinic.patients.models import PathwayStatus
from kapclinic.scheduling import demo as scheduling_demo
from kapclinic.scheduling.models import Appointment, Kind, Status
from kapclinic.sessions import services
from kapclinic.sessions.medical_director import configure_protocols
from kapclinic.sessions.models import (
    Administration,
    DeviceUse,
    DosingSession,
    ObservationKind,
)
from kapclinic.treatment import services as treatment_services
from kapclinic.treatment.models import TreatmentPlan
from kapclinic.treatment.selectors import signed_plan

DAY = dt.timedelta(days=1)
#: Days between maintenance sessions once the induction series is done (IV: individualised, 3-12 days,
#: ref §1.4; esketamine: weekly in weeks 5-8, ref §1.3).
MAINTENANCE_GAP_DAYS = 7


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


def _pre_session_phq9(ctx: Any, patient: Any, total: int, at: dt.datetime, rng: random.Random) -> None:
    portal = patient == ctx.demo_patient and patient.user_id is not None
    actor = Actor(
        user=patient.user if portal else None,
        clinic=ctx.clinic,
        role=Role.PATIENT if portal else "patient_link",
        request_id="seed-demo",
    )
    response_submit(
        actor,
        patient,
        instrument="PHQ-9",
        version=None,
        answers=measures_demo.instrument_answers("PHQ-9", total, rng),  # item 9 = 0: no alert to clear
        source="portal" if portal else "email_link",
        entered_by=patient.user if portal else None,
        completed_at=at,
    )


def _induction_gaps(protocol: Protocol) -> tuple[int, ...]:
    """Days between induction sessions at the protocol's most frequent rhythm: three a week (Mon, Wed,
    Fri), twice a week (Mon, Thu) or weekly."""
    phases = protocol.sessions.phases
    per_week = max(phases[0].sessions_per_week) if phases and phases[0].sessions_per_week else Decimal(2)
    if per_week >= 3:
        return (2, 2, 3)
    return (3, 4) if per_week >= 2 else (7,)


def past_dosing_times(
    plan: TreatmentPlan,
    status: str,
    now: dt.datetime,
    *,
    anchor: dt.datetime | None = None,
    session_today: bool = False,
) -> list[dt.datetime]:
    """First-dose times of a patient's completed sessions, oldest first: from the day after the plan was
    signed to yesterday (two days ago when another session is booked today), on ``anchor`` when given
    (a booked dosing appointment). In treatment: part-way through the induction series, the latest
    session recent. Maintenance: the series, then maintenance sessions. Discharged: the series."""
    protocol = get_protocol(plan.protocol_id, plan.protocol_version)
    gaps = [dt.timedelta(days=d) for d in _induction_gaps(protocol)]
    series = protocol.sessions.count.value or plan.dosing_sessions or 6
    assert plan.signed_at is not None
    earliest = plan.signed_at + DAY
    latest = now - (2 if session_today else 1) * DAY
    if latest < earliest:
        return []
    if status == PathwayStatus.ACTIVE:
        if anchor is None or not (plan.signed_at + dt.timedelta(hours=1) < anchor <= latest):
            anchor = latest
        times = [anchor]
        t, i = anchor, 0
        while (t := t + gaps[i % len(gaps)]) <= latest:
            times.append(t)
            i += 1
        t, i = anchor, 0
        while (t := t - gaps[i % len(gaps)]) >= earliest:
            times.insert(0, t)
            i += 1
        # The latest ``series - 1`` sessions that still include the booked one.
        limit = max(series - 1, 1)
        first = max(0, min(len(times) - limit, times.index(anchor)))
        return times[first : first + limit]
    times, t, i = [], earliest, 0
    while t <= latest and len(times) < series:
        times.append(t)
        t += gaps[i % len(gaps)]
        i += 1
    if status == PathwayStatus.MAINTENANCE and len(times) == series:
        t = times[-1] + dt.timedelta(days=MAINTENANCE_GAP_DAYS)
        while t <= latest:
            times.append(t)
            t += dt.timedelta(days=MAINTENANCE_GAP_DAYS)
    return times


def _discharged_pathway(ctx: Any, patient: Any, now: dt.datetime) -> None:
    """Consent and a signed IV plan, dated like the consent and treatment demos date theirs (a day and
    two days after the eligibility decision), for a discharged patient who has neither."""
    if signed_plan(patient) is not None or not eligibility_state(patient).current_eligible:
        return
    start = treatment_start(patient, now)
    state = consent_state(patient)
    if state.document is None:
        return
    if not state.current:
        with at_time(start + DAY):
            consent_services.consent_sign(
                ctx.staff_actor("frontdesk"),
                patient,
                document_id=state.document.pk,
                typed_name=patient.legal_name,
                agreed=True,
                ip="127.0.0.1",
                channel=SignatureChannel.IN_CLINIC,
            )
    diagnosis = patient.diagnoses.filter(status="active").order_by("recorded_at", "id").first()
    indication = BY_ICD10.get(diagnosis.icd10 if diagnosis else "", BY_ICD10["F33.1"])
    protocol = get_protocol("ketamine-iv-racemic")
    prescriber = ctx.staff_actor("prescriber")
    with at_time(start + 2 * DAY):
        plan = treatment_services.plan_create(
            prescriber,
            patient,
            protocol=protocol,
            indication=indication,
            goals="Get through a working week without dread.",
            modality="cbt",
            modality_other="",
            dosing_sessions=protocol.sessions.count.value or 6,
            sessions_per_week=Decimal(3),
            targets=[
                {"instrument": "PHQ-9", "comparator": "lt", "value": 10, "timepoint": "after the series"}
            ],
        )
        treatment_services.plan_sign(prescriber, plan, expected_version=plan.version)


def _completed(
    ctx: Any,
    patient: Any,
    protocol_id: str,
    start: dt.datetime,
    phq9_total: int,
    rng: random.Random,
    *,
    discharge: bool = True,
) -> DosingSession:
    """One session from check-in to discharge; ``start`` is the first dose. The patient answered the
    pre-session PHQ-9 (``phq9_total`` planned by the measures demo, scored by the measures service) the
    evening before: in the portal for the demo patient, from the emailed link for the others.
    With ``discharge=False`` it stops in recovery with the fresh vitals and ratings taken, ready for a
    nurse to discharge in the page (the billing browser journey, which sets the clock to when she does).
    Returns the session."""
    nurse, prescriber = ctx.staff_actor("nurse"), ctx.staff_actor("prescriber")
    iv = not protocol_id.startswith("esketamine")

    def at(minutes: int) -> Any:
        return at_time(start + dt.timedelta(minutes=minutes))

    with at(-30):
        appt = _dosing_appointment(patient, clock.now())
        if appt is not None:  # the nurse starts the session from the booked dosing appointment
            s, _created = services.session_start_from_appointment(nurse, appt)
        else:
            s = services.session_create(nurse, patient, protocol_key=protocol_id, scheduled_for=clock.now())
        s = services.session_transition(nurse, s, Event.CHECK_IN, expected_version=s.version)
        _pre_session_phq9(ctx, patient, phq9_total, start - measures_demo.PRE_SESSION_LEAD, rng)
        s = services.gate_update(
            nurse, s, expected_version=s.version, values=_gate_values(ctx, patient, protocol_id, start)
        )
    with at(-20):
        services.vitals_record(nurse, s, Reading(sbp=128, dbp=82, hr=74, rr=14, spo2=98))
    with at(-12):
        s.refresh_from_db()
        s = services.gate_pass(nurse, s, expected_version=s.version)
    with at(-8):
        s.refresh_from_db()
        if iv:
            services.dose_order(
                prescriber,
                s,
                expected_version=s.version,
                inputs={"mg_per_kg": "0.5", "concentration": "10", "diluent_ml": "100"},
            )
            services.dose_double_check(nurse, s)
        else:
            services.dose_order(prescriber, s, expected_version=s.version, inputs={"fixed_mg": "56"})
    with at(0):
        s.refresh_from_db()
        giver = prescriber if iv else nurse  # the double-checker does not also give the dose
        # The dose is drawn from the demo stock (kapclinic.inventory.demo) through the service a nurse
        # uses: the container's lot and expiry, its ledger line written with the administration.
        dose = Administration.objects.get(session=s)
        form = services.protocol_for(s).dose.form
        container = inventory_demo.container_for(ctx, form, dose_mg=dose.dose_mg, devices=dose.devices)
        s = services.dosing_start_from_stock(
            giver,
            s,
            expected_version=s.version,
            container_id=container,
            drawn_mg=None if dose.devices else dose.dose_mg + inventory_demo.RESIDUE_MG,
        )
        witness = ctx.staff["nurse" if giver is prescriber else "prescriber"]
        if iv:  # the syringe residue, wasted with a witness as the dose is drawn
            for draw in inventory_services.session_draws(s):
                inventory_services.waste_for_session(
                    giver, s, draw_id=draw.pk, amount_mg=draw.residue, witness=witness
                )
    # The dose given, where the services ask for it: each further esketamine device 5 minutes after the
    # previous one ([S7] ref §1.3), the end of the 40-minute IV infusion (ref §1.4).
    device_record = getattr(services, "device_record", None)
    infusion_stop_record = getattr(services, "infusion_stop_record", None)
    if not iv and device_record is not None:
        ordered = Administration.objects.filter(session=s).values_list("devices", flat=True).first() or 1
        for number in range(2, ordered + 1):
            with at_time(start + dt.timedelta(minutes=5 * (number - 1), seconds=2)):
                s.refresh_from_db()
                device_record(nurse, s, expected_version=s.version, at=clock.now())
    monitoring = 10
    if iv and infusion_stop_record is not None:
        monitoring = 41
    # The protocol's vitals schedule, on the clock from the first dose: the ~40-minute check and, when
    # the protocol sets an interval (IV: every 10 minutes), each interval check until recovery starts.
    # Recovery starts once the protocol's minimum observation has passed since the end of administration
    # (the last device, the infusion stop); discharge follows with a fresh full set of vitals and ratings.
    protocol = services.protocol_for(s)
    minimum = protocol.observation.minimum_minutes.value
    assert minimum is not None
    last_device = DeviceUse.objects.filter(administration__session=s).order_by("-at").first()
    ended = 40 if iv else (int((last_device.at - start).total_seconds() // 60) + 1 if last_device else 0)
    recovery = ended + int(minimum.value) + 1
    interval = protocol.vitals_schedule.interval_minutes.value
    step = int(interval.value) if interval is not None else 0
    checks = sorted({40} | (set(range(step, recovery, step)) if step else set()))

    def vitals(minute: int) -> None:
        high = minute == 40
        reading = Reading(sbp=146 if high else 134, dbp=90 if high else 84, hr=82, rr=15, spo2=97)
        services.vitals_record(nurse, s, reading)

    # Each check is taken on time: a reading counts for the check it is nearest to, so the ~40-minute
    # reading is the label's check even beside an interval check at +45
    # (docs/clinical-reference.md#vitals-checks).
    for minute in (m for m in checks if m < monitoring):  # IV: the checks during the infusion
        with at(minute):
            vitals(minute)
    if iv and infusion_stop_record is not None:
        with at_time(start + dt.timedelta(minutes=40, seconds=30)):  # the full ordered 40 minutes
            s.refresh_from_db()
            infusion_stop_record(
                nurse, s, expected_version=s.version, stopped_at=clock.now(), actual_rate_ml_per_h=None
            )
    with at(monitoring):
        s.refresh_from_db()
        s = services.session_transition(nurse, s, Event.START_MONITORING, expected_version=s.version)
    nausea = rng.random() < 0.4  # mild nausea now and then
    for i, minute in enumerate(m for m in checks if m >= monitoring):
        with at(minute):
            vitals(minute)
            if i == 0:
                if nausea:
                    services.event_record(nurse, s, kind="side_effect", code="nausea", text="mild")
                services.rating_record(nurse, s, kind=ObservationKind.SEDATION, value=4)
                services.rating_record(nurse, s, kind=ObservationKind.DISSOCIATION, value=2)
    with at(recovery):
        if not iv:  # the used devices went to medical waste, witnessed
            for draw in inventory_services.session_draws(s):
                inventory_services.dispose_devices(giver, s, draw_id=draw.pk, witness=witness)
        s.refresh_from_db()
        s = services.session_transition(nurse, s, Event.START_RECOVERY, expected_version=s.version)
    with at(recovery + 5):
        services.rating_record(nurse, s, kind=ObservationKind.SEDATION, value=5)
        services.rating_record(nurse, s, kind=ObservationKind.DISSOCIATION, value=0)
        services.vitals_record(nurse, s, Reading(sbp=130, dbp=84, hr=72, rr=14, spo2=98))
    if not discharge:
        s.refresh_from_db()
        return s
    with at(recovery + 10):
        s.refresh_from_db()
        s = services.session_discharge(
            nurse,
            s,
            expected_version=s.version,
            escort_present=True,
            no_driving=True,
            signed=True,
            ready_to_leave_minutes=90,
            note="Alert and steady; left with escort.",
        )
    if appt is None:  # the calendar keeps every session: its dosing appointment and the integration after
        scheduling_demo.record_past_dosing(ctx, s, clock.now())  # the real clock again
    return s


@transaction.atomic
def seed(ctx: Any) -> None:
    if DosingSession.objects.filter(clinic=ctx.clinic).exists():
        return
    configure_protocols(ctx.clinic, ctx.staff["prescriber"])  # done by the treatment demo; kept if so
    now = clock.now()
    treated = [p for p in ctx.patients if p.pathway_status in measures_demo.TREATED]
    for patient in treated:
        if patient.pathway_status == PathwayStatus.DISCHARGED:
            _discharged_pathway(ctx, patient, now)
    active = [
        p for p in ctx.patients if p.pathway_status in (PathwayStatus.ACTIVE, PathwayStatus.MAINTENANCE)
    ]
    # Booked today (below): the demo patient and the next two; booked in the past by the scheduling demo
    # (check-in at the appointment start): the first four.
    today = [ctx.demo_patient, *active[4:6]]
    anchors = {
        p.pk: now - dt.timedelta(days=10 + i if i % 2 == 0 else 3 + i) for i, p in enumerate(active[:4])
    }
    plans = {p.pk: plan for p in treated if (plan := signed_plan(p)) is not None}
    schedule = {
        p.pk: past_dosing_times(
            plans[p.pk], p.pathway_status, now, anchor=anchors.get(p.pk), session_today=p in today
        )
        for p in treated
        if p.pk in plans
    }
    courses = measures_demo.plan_courses(ctx, {pid: len(times) for pid, times in schedule.items()})
    # In time order across patients: each dose is drawn from the stock on hand that day, so the
    # containers' ledgers read in date order.
    past = sorted(
        ((start, k, patient) for patient in treated for k, start in enumerate(schedule.get(patient.pk, []))),
        key=lambda item: (item[0], item[2].pk),
    )
    for start, k, patient in past:
        total = courses[patient.pk].total("PHQ-9", k)
        rng = ctx.rng_for("sessions-phq9", patient.mrn, k)
        _completed(ctx, patient, plans[patient.pk].protocol_id, start, total, rng)
    # Today: on the hour, one, two and three hours from now, on each patient's signed plan, started from
    # the scheduling demo's dosing appointments; the third is left for the nurse to start from the chair
    # board ("Start session"). Each patient answered the PHQ-9 for it: the demo patient in the portal
    # this morning, the others from the emailed link last evening.
    nurse = ctx.staff_actor("nurse")
    top = now.replace(minute=0, second=0, microsecond=0)
    for i, patient in enumerate(today):
        plan = plans.get(patient.pk)
        if plan is None:
            continue
        when = top + dt.timedelta(hours=i + 1)
        appt = _dosing_appointment(patient, when)
        if appt is None:
            services.session_create(nurse, patient, protocol_key=plan.protocol_id, scheduled_for=when)
        elif i < 2:
            services.session_start_from_appointment(nurse, appt)
        done = len(schedule.get(patient.pk, []))
        answered = (
            max(now - dt.timedelta(hours=3), top - dt.timedelta(hours=1))
            if patient == ctx.demo_patient
            else when - measures_demo.PRE_SESSION_LEAD
        )
        rng = ctx.rng_for("sessions-phq9", patient.mrn, done)
        _pre_session_phq9(ctx, patient, courses[patient.pk].total("PHQ-9", done), answered, rng)
    # The plans' proposed appointments the calendar has booked are linked to their plan lines.
    scheduling_demo.link_plan_lines(ctx.clinic)
