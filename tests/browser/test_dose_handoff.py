"""Issue 18 on a tablet (768x1024), an IV session: after the pre-dose checks the nurse's dose card and
the chair board say the session waits for the prescriber's order; the prescriber orders; a nurse
double-checks, learns she then cannot give it, withdraws her double-check (audited) and a second nurse
double-checks; the first nurse gives it; "Start recovery" is refused until the protocol's minimum has
passed since the end of the infusion (the observation clock), then accepted; the vitals schedule is
completed (one missed check explained in writing); discharge needs a fresh full set of vitals and
ratings. The application clock is frozen and advanced by the test (the live server shares the process)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from kapclinic.audit.models import AuditEvent
from kapclinic.clinical.session_state import Event
from kapclinic.clinical.vitals import Reading
from kapclinic.core import clock
from kapclinic.measures.services import response_submit
from kapclinic.scheduling.models import Appointment, Resource
from kapclinic.sessions import services
from kapclinic.sessions.models import Administration, ClinicProtocolSetting, DosingSession
from kapclinic.testing.factories import actor_for, make_clinic, make_patient, make_staff
from kapclinic.treatment.testing import make_dosing_ready
from tests.browser.steps import htmx_click, sign_out, start_dosing

T0 = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)
IV = "ketamine-iv-racemic"


@pytest.fixture
def ready() -> Any:
    clock.freeze(T0)
    yield
    clock.reset()


def vitals(page: Any, sbp: str = "128", dbp: str = "80") -> None:
    page.get_by_label("Systolic BP (mmHg)").fill(sbp)
    page.get_by_label("Diastolic BP (mmHg)").fill(dbp)
    page.get_by_label("Heart rate (/min)").fill("74")
    page.get_by_label("SpO2 (%)").fill("98")
    page.get_by_label("Respiratory rate (/min)").fill("14")
    htmx_click(page, page.get_by_role("button", name="Save vitals"))


def until(minutes: int) -> None:
    """Move the application clock to ``minutes`` after the first dose (T0 + 30 min here)."""
    clock.advance(START + dt.timedelta(minutes=minutes) - clock.now())


START = T0 + dt.timedelta(minutes=30)


def test_dose_handoff_recovery_and_discharge_on_tablet(
    tablet_page: Any, server: str, login: Any, axe_check: Any, shot: Any, ready: Any
) -> None:
    page = tablet_page
    clinic = make_clinic("Harbor")
    prescriber = make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="rx@handoff.test")
    nadia = make_staff(clinic, "nurse", name="Nadia Nurse", email="nadia@handoff.test")
    make_staff(clinic, "nurse", name="Nora Nurse", email="nora@handoff.test")
    patient = make_patient(clinic, care_team=[prescriber], legal_first_name="Robin")
    make_dosing_ready(patient, prescriber, IV)
    response_submit(
        actor_for(nadia, clinic), patient, instrument="PHQ-9", version=None,
        answers=[2, 2, 1, 1, 1, 0, 1, 0, 0], source="paper", entered_by=nadia,
    )  # fmt: skip
    # The medical director's values (synthetic) for what the reference leaves open.
    for key, value in (
        ("observation.minimum_minutes", "120"),
        ("observation.final_set_within_minutes", "15"),
    ):
        ClinicProtocolSetting.objects.update_or_create(
            clinic=clinic, protocol_id=IV, key=key, defaults={"value": value, "set_by": prescriber}
        )
    chair = Resource.objects.create(clinic=clinic, name="Chair 1", kind="chair")
    appt = Appointment.objects.create(
        clinic=clinic, patient=patient, kind="dosing", starts_at=T0, ends_at=T0 + dt.timedelta(hours=4),
        staff=nadia, resource=chair, created_by=nadia,
    )  # fmt: skip
    # Check-in and the pre-dose details as the nurse entered them (the gate itself is pressed below).
    nurse = actor_for(nadia, clinic)
    s, _ = services.session_start_from_appointment(nurse, appt)
    s = services.session_transition(nurse, s, Event.CHECK_IN, expected_version=s.version)
    s = services.gate_update(
        nurse, s, expected_version=s.version,
        values={
            "weight_kg": 70, "last_food_at": T0 - dt.timedelta(hours=4),
            "last_liquid_at": T0 - dt.timedelta(hours=2),
            "escort_name": "Sam Escort", "escort_phone": "", "medication_changes_reviewed": True,
            "flagged_medication_classes": [], "pregnancy_status": "not_applicable", "intention": "Curiosity",
        },
    )  # fmt: skip
    services.vitals_record(nurse, s, Reading(sbp=124, dbp=80, hr=72, rr=14, spo2=98))
    detail = f"{server}/sessions/patient/{patient.pk}/{s.pk}/"

    # --- Nadia passes the pre-dose checks: her dose card says what the session waits for
    login(page, "nadia@handoff.test")
    page.goto(detail)
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm pre-dose checks", exact=True).click()
    card = page.locator("#dose-handoff")
    expect(card).to_contain_text("Waiting for the prescriber's order.")
    expect(card).to_contain_text("Nothing to do yet: a prescriber orders the dose here")
    axe_check(page, "handoff-1-waiting-for-order")
    shot(page, "handoff-1-waiting-for-order")
    page.goto(f"{server}/schedule/chairs/")
    expect(page.get_by_role("region", name="Chair 1")).to_contain_text("Waiting for the prescriber's order.")
    axe_check(page, "handoff-2-chair-board")
    shot(page, "handoff-2-chair-board")
    sign_out(page)

    # --- the prescriber is told her part and orders 0.5 mg/kg over 40 minutes
    clock.advance(dt.timedelta(minutes=10))
    login(page, "rx@handoff.test")
    page.goto(detail)
    expect(page.locator("#dose-handoff")).to_contain_text("Your part: order the dose below")
    page.get_by_label("Dose (mg/kg)").fill("0.5")
    page.get_by_label("Vial concentration (mg/mL)").fill("10")
    page.get_by_label("Diluent volume (mL)").fill("100")
    with page.expect_navigation():
        page.get_by_role("button", name="Calculate and order dose").click()
    expect(page.locator("#dose-handoff")).to_contain_text(
        "You ordered this dose, so a second staff member (not you) must double-check it."
    )
    shot(page, "handoff-3-ordered")
    sign_out(page)

    # --- Nadia is told before she acts that the double-checker cannot give the dose; she ticks it, is
    # then told to withdraw if she gives it, and withdraws
    login(page, "nadia@handoff.test")
    page.goto(detail)
    expect(page.locator("#dose-handoff")).to_contain_text("The person who double-checks cannot also give it")
    with page.expect_navigation():
        page.get_by_role("button", name="I have independently double-checked this dose").click()
    expect(page.locator("#dose-handoff")).to_contain_text(
        "You double-checked this dose, so another staff member must give it."
    )
    axe_check(page, "handoff-4-double-checked")
    shot(page, "handoff-4-double-checked")
    with page.expect_navigation():
        page.get_by_role("button", name="Withdraw my double-check").click()
    expect(page.get_by_role("button", name="I have independently double-checked this dose")).to_be_visible()
    assert Administration.objects.get(session=s).double_checked_by is None
    assert AuditEvent.objects.filter(detail="dose_double_check_withdrawn", actor=nadia).count() == 1
    shot(page, "handoff-5-withdrawn")
    sign_out(page)

    # --- Nora double-checks; the chair board says it is ready to give
    login(page, "nora@handoff.test")
    page.goto(detail)
    with page.expect_navigation():
        page.get_by_role("button", name="I have independently double-checked this dose").click()
    page.goto(f"{server}/schedule/chairs/")
    expect(page.get_by_role("region", name="Chair 1")).to_contain_text(
        "Dose ordered and double-checked: ready to give."
    )
    sign_out(page)

    # --- Nadia gives it at T0 + 30 min (clock zero of the vitals schedule)
    until(0)
    login(page, "nadia@handoff.test")
    page.goto(detail)
    # the IV dose is drawn from the clinic's stock (issue 14): she chooses the container, no lot to type
    expect(page.locator("#dose-handoff")).to_contain_text(
        "Your part: check the patient, choose the container the dose is drawn from"
    )
    start_dosing(page, detail, lot="LOT-2026")
    expect(page.get_by_role("heading", name="Live monitoring")).to_be_visible()
    s.refresh_from_db()
    assert s.state == "dosing" and s.first_dose_at == START
    for minute in (10, 20, 30, 40):  # every 10 minutes during the infusion [S15]
        until(minute)
        vitals(page)
    page.goto(detail)  # the stop time is pre-filled with "now" when the page renders
    with page.expect_navigation():
        page.get_by_role("button", name="Record infusion stop").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Dosing complete: start monitoring").click()
    until(50)
    page.goto(detail)
    vitals(page)

    # --- +120 after the first dose is only 80 minutes after the infusion ended: recovery refused
    nurse_actor = actor_for(nadia, clinic)
    for minute in range(70, 130, 10):  # the nurse's further checks (entered through the service)
        until(minute)
        services.vitals_record(nurse_actor, s, Reading(sbp=126, dbp=80, hr=72, rr=14, spo2=98))
    until(120)
    page.goto(detail)
    expect(page.locator("#monitor-status")).to_contain_text("Observation clock: 80 of 120 min")
    # +60 was not done: the nurse writes why
    page.get_by_label(re.compile(r"Why was the \+60 min check")).scroll_into_view_if_needed()
    shot(page, "handoff-5b-missed-check", full_page=False)
    page.get_by_label(re.compile(r"Why was the \+60 min check")).fill("Patient asleep; not woken")
    htmx_click(page, page.get_by_role("button", name=re.compile(r"^Record the reason")))
    expect(page.get_by_text("+60 min check missed: Patient asleep; not woken").first).to_be_visible()
    with page.expect_navigation():
        page.get_by_role("button", name="Start recovery").click()
    msg = page.get_by_role("alert").inner_text()
    assert "Recovery: 80 of the protocol's 120 minutes of observation since the end of administration" in msg
    assert "(10:10:00)" in msg and "recovery can start from 12:10:00" in msg  # local time (UTC-5)
    axe_check(page, "handoff-6-recovery-refused")
    shot(page, "handoff-6-recovery-refused")
    shot(page, "handoff-6a-recovery-refused-top", full_page=False)
    page.locator("#monitor-status").scroll_into_view_if_needed()
    shot(page, "handoff-6b-observation-clock", full_page=False)

    # --- the schedule goes on until recovery; at +160 recovery starts
    for minute in range(130, 170, 10):
        until(minute)
        services.vitals_record(nurse_actor, s, Reading(sbp=124, dbp=80, hr=70, rr=14, spo2=98))
    page.goto(detail)
    with page.expect_navigation():
        page.get_by_role("button", name="Start recovery").click()
    s.refresh_from_db()
    assert s.state == "recovery" and s.recovery_started_at == START + dt.timedelta(minutes=160)
    shot(page, "handoff-7-recovery")

    # --- 20 minutes later the last full set is too old: discharge refused, then a fresh set
    until(180)
    page.goto(detail)

    def discharge() -> None:
        page.get_by_label("Named escort is present to take the patient home").check()
        page.get_by_label(
            "Advised: no driving or operating machinery until the next day after restful sleep"
        ).check()
        page.get_by_label("I assessed the patient as clinically stable and sign this discharge").check()
        with page.expect_navigation():
            page.get_by_role("button", name="Sign and discharge").click()

    discharge()
    msg = page.get_by_role("alert").inner_text()
    assert "Final full set: the last full set of vitals" in msg and "20 minutes ago" in msg
    assert "Vitals schedule" not in msg  # every check done or explained
    axe_check(page, "handoff-8-discharge-refused")
    shot(page, "handoff-8-discharge-refused")
    shot(page, "handoff-8a-discharge-refused-top", full_page=False)
    vitals(page, "122", "78")
    page.get_by_label("5 – Responds promptly to name in a normal voice").check()
    htmx_click(page, page.get_by_role("button", name="Save MOAA/S"))
    page.wait_for_selector("text=Latest MOAA/S: 5")
    page.get_by_label("0 – None: oriented, no altered perception observed or reported").check()
    htmx_click(page, page.get_by_role("button", name="Save dissociation rating"))
    page.wait_for_selector("text=Latest dissociation: 0")
    page.goto(detail)
    discharge()
    expect(page.get_by_role("heading", name="Discharged")).to_be_visible()
    assert DosingSession.objects.get(pk=s.pk).state == "discharged"
    axe_check(page, "handoff-9-discharged")
    shot(page, "handoff-9-discharged")
