"""Issue 18, a clinic's day without dead ends: the dose hand-off (each person told their part; the
double-check withdrawn before administration, audited), recovery no earlier than the end of administration
plus the protocol's minimum (the observation clock runs from the end of administration), and discharge
only with the vitals schedule complete (or each missed check explained) and a recent full set of vitals
and ratings (a clinic setting: the reference gives no interval)."""

from __future__ import annotations

import datetime as dt
import html
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from kapclinic.audit.models import AuditEvent
from kapclinic.clinical.session_state import Event
from kapclinic.clinical.vitals import Reading
from kapclinic.core import clock, request_cache
from kapclinic.core.errors import DomainError
from kapclinic.scheduling.models import Appointment, Resource
from kapclinic.sessions import services
from kapclinic.sessions.models import (
    Administration,
    ClinicProtocolSetting,
    DosingSession,
    ObservationKind,
)
from kapclinic.testing.factories import actor_for, make_staff

pytestmark = pytest.mark.django_db

IV = "ketamine-iv-racemic"
FULL = Reading(sbp=132, dbp=82, hr=74, rr=14, spo2=98)


def clinic_values(world: Any, protocol_id: str, **values: int | None) -> None:
    """The medical director's values (synthetic, for the tests) for settings the reference leaves open."""
    for name, value in values.items():
        key = f"observation.{name}"
        ClinicProtocolSetting.objects.filter(clinic=world.clinic, protocol_id=protocol_id, key=key).delete()
        if value is not None:
            ClinicProtocolSetting.objects.create(
                clinic=world.clinic, protocol_id=protocol_id, key=key, value=str(value),
                set_by=world.prescriber,
            )  # fmt: skip
    request_cache.forget()


def dosed(world: Any, protocol_id: str = IV, *, route: str = "IV") -> DosingSession:
    """A session whose dose was given just now (clock zero), the prescriber having given it."""
    now = clock.now()
    s = DosingSession.objects.create(
        clinic=world.clinic,
        patient=world.patient,
        protocol_id=protocol_id,
        protocol_version="1.0.0",
        scheduled_for=now - dt.timedelta(minutes=60),
        created_by=world.prescriber,
        state="dosing",
        checked_in_at=now - dt.timedelta(minutes=60),
        predose_passed_at=now - dt.timedelta(minutes=30),
        first_dose_at=now,
        escort_name="Sam Escort",
    )
    Administration.objects.create(
        session=s,
        product="Ketamine",
        route=route,
        dose_mg=Decimal("35"),
        ordered_by=world.prescriber,
        ordered_at=now - dt.timedelta(minutes=20),
        double_checked_by=world.nurse,
        double_checked_at=now - dt.timedelta(minutes=15),
        administered_by=world.prescriber,
        administered_at=now,
    )
    return s


def nurse(world: Any) -> Any:
    return actor_for(world.nurse, world.clinic)


def fresh(s: DosingSession) -> DosingSession:
    return DosingSession.objects.get(pk=s.pk)


def at(s: DosingSession, minutes: int) -> None:
    """Move the clock to ``minutes`` after the session's first dose."""
    assert s.first_dose_at is not None
    target = s.first_dose_at + dt.timedelta(minutes=minutes)
    clock.advance(target - clock.now())


def infusion(world: Any, s: DosingSession, *, checks: bool = True) -> DosingSession:
    """The 40-minute IV infusion with the protocol's 10-minute checks (and the ~40-minute one), stopped
    at +40; dosing marked complete."""
    for minute in (10, 20, 30, 40):
        at(s, minute)
        if checks:
            services.vitals_record(nurse(world), s, FULL)
    s = fresh(s)
    services.infusion_stop_record(
        nurse(world), s, expected_version=s.version, stopped_at=clock.now(), actual_rate_ml_per_h=None
    )
    s = fresh(s)
    return services.session_transition(nurse(world), s, Event.START_MONITORING, expected_version=s.version)


def recovery(world: Any, s: DosingSession) -> DosingSession:
    s = fresh(s)
    return services.session_transition(nurse(world), s, Event.START_RECOVERY, expected_version=s.version)


def full_set(world: Any, s: DosingSession) -> None:
    services.vitals_record(nurse(world), s, FULL)
    services.rating_record(nurse(world), s, kind=ObservationKind.SEDATION, value=5)
    services.rating_record(nurse(world), s, kind=ObservationKind.DISSOCIATION, value=0)


def discharge(world: Any, s: DosingSession) -> DosingSession:
    s = fresh(s)
    return services.session_discharge(
        nurse(world), s, expected_version=s.version, escort_present=True, no_driving=True, signed=True,
        ready_to_leave_minutes=None, note="",
    )  # fmt: skip


def refusal(exc: pytest.ExceptionInfo[DomainError]) -> str:
    return " ".join(exc.value.messages)


# ---------------------------------------------------------------- recovery start, observation clock


def test_recovery_waits_for_the_minimum_after_the_end_of_administration(
    world: Any, clock_frozen: Any
) -> None:
    """IV stopped at +40 with a 120-minute minimum: recovery from +160, not from +120 (the first dose)."""
    clinic_values(world, IV, minimum_minutes=120, final_set_within_minutes=15)
    s = infusion(world, dosed(world))
    at(s, 120)
    with pytest.raises(DomainError) as exc:
        recovery(world, s)
    assert "Recovery: 80 of the protocol's 120 minutes of observation since the end of administration" in (
        refusal(exc)
    )
    assert "recovery can start from" in refusal(exc)
    at(s, 159)
    with pytest.raises(DomainError, match="119 of the protocol's 120 minutes"):
        recovery(world, s)
    at(s, 160)
    assert recovery(world, s).state == "recovery"


def test_im_recovery_refused_a_minute_after_the_injection(world: Any, clock_frozen: Any) -> None:
    """The observed IM session: 'Start recovery' one minute after the injection is refused; with no
    minimum set by the clinic the refusal says so (never a guessed number)."""
    im = "ketamine-im-racemic"
    clinic_values(world, im, minimum_minutes=None)
    s = dosed(world, im, route="IM")
    s = services.session_transition(nurse(world), s, Event.START_MONITORING, expected_version=s.version)
    at(s, 1)
    with pytest.raises(DomainError) as exc:
        recovery(world, s)
    assert "the clinic has not set a minimum observation time for this protocol" in refusal(exc)
    clinic_values(world, im, minimum_minutes=90)
    with pytest.raises(DomainError) as exc:
        recovery(world, s)
    assert "1 of the protocol's 90 minutes" in refusal(exc)
    at(s, 90)
    assert recovery(world, s).state == "recovery"


def test_status_panel_shows_the_observation_clock(world: Any, client: Any, clock_frozen: Any) -> None:
    clinic_values(world, IV, minimum_minutes=120)
    s = infusion(world, dosed(world))
    at(s, 70)
    client.force_login(world.nurse)
    page = client.get(
        reverse("sessions:detail", kwargs={"patient_id": s.patient_id, "session_id": s.pk})
    ).content.decode()
    assert "70 min since first dose" in page
    assert "Observation clock: <strong>30 of 120 min</strong> since the end of administration" in page
    assert "Recovery can start once the patient has been observed for 120 minutes" in page
    # ... and from when (issue 18): the infusion ended at +40 (09:40 in New York), so from +160.
    assert "after the end of administration (09:40): <strong>from 11:40</strong>." in page
    at(s, 160)
    page = client.get(
        reverse("sessions:detail", kwargs={"patient_id": s.patient_id, "session_id": s.pk})
    ).content.decode()
    assert "(09:40): <strong>the minimum has been met</strong>." in page


# ---------------------------------------------------------------- vitals schedule at discharge


def test_discharge_lists_the_missed_scheduled_checks_then_accepts_each_explained(
    world: Any, clock_frozen: Any
) -> None:
    """The observed IV session: last vitals and ratings at +1 minute, the +10 and +40 checks never done."""
    clinic_values(world, IV, minimum_minutes=120, final_set_within_minutes=15)
    s = dosed(world)
    at(s, 1)
    full_set(world, s)
    s = infusion(world, s, checks=False)
    at(s, 161)
    s = recovery(world, s)
    full_set(world, s)
    with pytest.raises(DomainError) as exc:
        discharge(world, s)
    text = refusal(exc)
    assert "Vitals schedule: the +10 min check (due" in text
    assert "Vitals schedule: the ~40 min (expected BP peak) check" in text
    assert "Vitals schedule: the +150 min check" in text
    missed = [m for m in exc.value.messages if m.startswith("Vitals schedule")]
    # +10 ... +160 every 10 minutes, the +40 one being the protocol's ~40 min; the set taken once
    # recovery has started (+161) is the pre-discharge set, not a late +160 check
    # (docs/clinical-reference.md#vitals-checks)
    assert "Vitals schedule: the +160 min check" in text
    assert len(missed) == 16
    assert all("record why it was missed before discharge" in m for m in missed)
    with pytest.raises(DomainError, match="Reason is required"):
        services.missed_check_explain(nurse(world), s, offset_minutes=10, text="  ")
    with pytest.raises(DomainError, match="not a missed check"):
        services.missed_check_explain(nurse(world), s, offset_minutes=15, text="not on the schedule")
    before = AuditEvent.objects.filter(detail="missed_check_explained").count()
    for minute in range(10, 170, 10):
        services.missed_check_explain(
            nurse(world), s, offset_minutes=minute, text="Patient asleep; not disturbed"
        )
    assert AuditEvent.objects.filter(detail="missed_check_explained").count() == before + 16
    with pytest.raises(DomainError, match="already explained"):
        services.missed_check_explain(nurse(world), s, offset_minutes=10, text="again")
    assert discharge(world, s).state == "discharged"


def test_missed_check_form_on_the_page(world: Any, client: Any, clock_frozen: Any) -> None:
    clinic_values(world, IV, minimum_minutes=120)
    s = infusion(world, dosed(world))
    at(s, 80)  # the +50, +60 and +70 checks were not done
    client.force_login(world.nurse)
    url = reverse("sessions:missed_check", kwargs={"patient_id": s.patient_id, "session_id": s.pk})
    detail = reverse("sessions:detail", kwargs={"patient_id": s.patient_id, "session_id": s.pk})
    page = client.get(detail).content.decode()
    assert "Why was the +50 min check (due" in page
    r = client.post(url, {"mc-offset": 50, "mc-text": ""})
    assert r.status_code == 400 and "Why was this check missed? Write the reason" in r.content.decode()
    r = client.post(url, {"mc-offset": 50, "mc-text": "Patient in the bathroom"})
    assert r.status_code == 302
    page = client.get(detail).content.decode()
    assert "Why was the +50 min check" not in page and "Why was the +60 min check" in page
    assert "+50 min check missed: Patient in the bathroom" in page


# ---------------------------------------------------------------- full set within the clinic's interval


def test_discharge_needs_a_recent_full_set_within_the_clinic_interval(world: Any, clock_frozen: Any) -> None:
    clinic_values(world, IV, minimum_minutes=120, final_set_within_minutes=None)
    s = infusion(world, dosed(world))
    for minute in range(50, 170, 10):
        at(s, minute)
        services.vitals_record(nurse(world), s, FULL)
    at(s, 161)
    s = recovery(world, s)
    at(s, 165)
    full_set(world, s)
    with pytest.raises(DomainError) as exc:
        discharge(world, s)
    assert refusal(exc).startswith(
        "Final full set: the clinic has not set how recent the last full set of vitals and ratings must be"
    )
    clinic_values(world, IV, final_set_within_minutes=15)
    at(s, 181)
    services.vitals_record(nurse(world), s, Reading(sbp=128, dbp=80))  # BP alone is not a full set
    with pytest.raises(DomainError) as exc:
        discharge(world, s)
    text = refusal(exc)
    assert "Final full set: the last full set of vitals (Systolic BP, Diastolic BP, Heart rate," in text
    assert "16 minutes ago; the clinic requires one within 15 minutes before discharge" in text
    assert "Final full set: the last MOAA/S rating was taken at" in text
    assert "Final full set: the last dissociation rating was taken at" in text
    full_set(world, s)
    assert discharge(world, s).state == "discharged"


# ---------------------------------------------------------------- double-check hand-off


def ordered(world: Any, protocol_id: str = IV) -> DosingSession:
    now = clock.now()
    s = DosingSession.objects.create(
        clinic=world.clinic,
        patient=world.patient,
        protocol_id=protocol_id,
        protocol_version="1.0.0",
        scheduled_for=now,
        created_by=world.prescriber,
        state="predose_passed",
        checked_in_at=now - dt.timedelta(minutes=30),
        predose_passed_at=now,
    )
    Administration.objects.create(
        session=s, product="Ketamine", route="IV", dose_mg=Decimal("35"), ordered_by=world.prescriber,
        ordered_at=now,
    )  # fmt: skip
    return s


def test_double_check_can_be_withdrawn_before_administration_not_after(world: Any, clock_frozen: Any) -> None:
    s = ordered(world)
    other = make_staff(world.clinic, "nurse", name="Second Nurse")
    services.dose_double_check(nurse(world), s)
    giver_checked = "the person who double-checked the dose cannot also be the one giving"
    with pytest.raises(DomainError, match=giver_checked):
        services.dosing_start(nurse(world), fresh(s), expected_version=fresh(s).version, lot_number="L1",
                              expiry_date=clock.today() + dt.timedelta(days=30))  # fmt: skip
    with pytest.raises(DomainError, match="Only the person who double-checked"):
        services.dose_double_check_withdraw(actor_for(other, world.clinic), s)
    before = AuditEvent.objects.filter(detail="dose_double_check_withdrawn").count()
    services.dose_double_check_withdraw(nurse(world), s)
    assert Administration.objects.get(session=s).double_checked_by is None
    assert AuditEvent.objects.filter(detail="dose_double_check_withdrawn").count() == before + 1
    with pytest.raises(DomainError, match="no double-check to withdraw"):
        services.dose_double_check_withdraw(nurse(world), s)
    services.dose_double_check(actor_for(other, world.clinic), s)
    s = services.dosing_start(nurse(world), fresh(s), expected_version=fresh(s).version, lot_number="L1",
                              expiry_date=clock.today() + dt.timedelta(days=30))  # fmt: skip
    assert s.state == "dosing"
    with pytest.raises(DomainError, match="already been given"):
        services.dose_double_check_withdraw(actor_for(other, world.clinic), s)
    assert Administration.objects.get(session=s).double_checked_by == other


def test_the_page_tells_each_person_their_part(world: Any, client: Any, clock_frozen: Any) -> None:
    s = ordered(world)
    Administration.objects.filter(session=s).delete()
    detail = reverse("sessions:detail", kwargs={"patient_id": s.patient_id, "session_id": s.pk})

    def page(user: Any) -> str:
        client.force_login(user)
        return html.unescape(client.get(detail).content.decode())

    nurse_page = page(world.nurse)
    assert "Waiting for the prescriber's order." in nurse_page
    assert "Nothing to do yet: a prescriber orders the dose here" in nurse_page
    assert "Your part: order the dose below" in page(world.prescriber)
    Administration.objects.create(
        session=s, product="Ketamine", route="IV", dose_mg=Decimal("35"), ordered_by=world.prescriber,
        ordered_at=clock.now(),
    )  # fmt: skip
    nurse_page = page(world.nurse)
    assert "Dose ordered: waiting for the double-check." in nurse_page
    assert "The person who double-checks cannot also give it" in nurse_page
    assert "You ordered this dose, so a second staff member (not you) must double-check it." in page(
        world.prescriber
    )
    client.force_login(world.nurse)
    r = client.post(reverse("sessions:double_check", kwargs={"patient_id": s.patient_id, "session_id": s.pk}))
    assert r.status_code == 302
    nurse_page = page(world.nurse)
    assert "You double-checked this dose, so another staff member must give it." in nurse_page
    assert "Withdraw my double-check" in nurse_page
    # She is not offered the step she may not take.
    assert "another staff member gives this dose, because you double-checked it" in nurse_page
    assert "Start dosing now" not in nurse_page
    # IV ketamine is drawn from a vial of the clinic's stock (issue 14): the container's lot and expiry
    # go on the record, so the giver is told to choose the container; this clinic has none on hand, and
    # the page (its stock part rendered) says so instead of offering the lot and expiry to type.
    prescriber_page = page(world.prescriber)
    assert "Your part: check the patient, choose the container the dose is drawn from" in prescriber_page
    assert "record the lot number and expiry" not in prescriber_page and "Lot number" not in prescriber_page
    assert "This clinic has no ketamine vials on hand" in prescriber_page
    client.force_login(world.nurse)
    r = client.post(
        reverse("sessions:double_check_withdraw", kwargs={"patient_id": s.patient_id, "session_id": s.pk})
    )
    assert r.status_code == 302
    assert "I have independently double-checked this dose" in page(world.nurse)


def test_chair_board_shows_the_hand_off(world: Any, client: Any, clock_frozen: Any) -> None:
    chair = Resource.objects.create(clinic=world.clinic, name="Chair 1", kind="chair")
    start = clock.now()
    appt = Appointment.objects.create(
        clinic=world.clinic, patient=world.patient, kind="dosing", starts_at=start,
        ends_at=start + dt.timedelta(minutes=180), staff=world.nurse, created_by=world.front_desk,
        resource=chair,
    )  # fmt: skip
    s = ordered(world)
    Administration.objects.filter(session=s).delete()
    DosingSession.objects.filter(pk=s.pk).update(appointment=appt)
    client.force_login(world.nurse)
    board = html.unescape(client.get(reverse("scheduling:chairs")).content.decode())
    assert "Waiting for the prescriber's order." in board
    client.force_login(world.front_desk)
    board = html.unescape(client.get(reverse("scheduling:chairs")).content.decode())
    assert "Waiting for the prescriber's order." not in board  # clinical detail: not for the front desk


def test_without_a_double_check_the_order_is_ready_to_give(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    from kapclinic.inventory.testing import stock_for_session

    s = ordered(world, "esketamine-in-trd")
    stock_for_session(s)  # the clinic has a pack to draw from (issue 14)
    client.force_login(world.nurse)
    detail = reverse("sessions:detail", kwargs={"patient_id": s.patient_id, "session_id": s.pk})
    page = html.unescape(client.get(detail).content.decode())
    assert "Dose ordered: ready to give." in page and "double-checked: ready" not in page
    assert "Start dosing now" in page


def test_checks_after_recovery_started_are_not_asked_for(world: Any, client: Any, clock_frozen: Any) -> None:
    clinic_values(world, IV, minimum_minutes=120, final_set_within_minutes=15)
    s = infusion(world, dosed(world))
    for minute in range(50, 170, 10):
        at(s, minute)
        services.vitals_record(nurse(world), s, FULL)
    s = recovery(world, s)
    at(s, 200)  # the +170 ... +190 interval checks are overdue on the schedule, but recovery has started
    client.force_login(world.nurse)
    page = client.get(
        reverse("sessions:detail", kwargs={"patient_id": s.patient_id, "session_id": s.pk})
    ).content.decode()
    assert "Why was the" not in page
    assert "Vitals schedule:" not in page


def test_the_giver_types_the_lot_only_when_the_dose_is_not_drawn_from_stock() -> None:
    """A lozenge's lot and expiry are typed; a vial's or a device pack's come from the chosen container
    (issue 14), so the giver's part names the container instead."""
    from types import SimpleNamespace

    from kapclinic.accounts.models import Role
    from kapclinic.sessions.selectors import dose_handoff

    admin = SimpleNamespace(double_checked_by_id=2, ordered_by_id=1)
    typed = dose_handoff(admin, double_check_required=True, user_id=3, role=Role.NURSE)
    assert typed.you == "Your part: check the patient, record the lot number and expiry, and give the dose."
    stocked = dose_handoff(admin, double_check_required=True, user_id=3, role=Role.NURSE, stocked=True)
    assert stocked.you == (
        "Your part: check the patient, choose the container the dose is drawn from, and give the dose."
    )
    assert stocked.step == typed.step == "give"
