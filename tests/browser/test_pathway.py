"""The whole pathway joined up, for real: a signed eligibility decision, current consent and a signed
esketamine plan (made through the intake, consent and treatment services), the patient's PHQ-9 answered
in the portal (measures app), then a dosing session run in the browser: the gate passes with no override
because everything is in order, the prescriber orders the dose, the nurse gives it and monitors, and
recovery is refused before the protocol's minimum from the end of administration and accepted after it,
then discharge (controllable clock). Finally
the prescriber opens the clinic-settings page. Screenshots and axe-core at every step."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from playwright.sync_api import expect

from kapclinic.clinical.vitals import Reading
from kapclinic.core import clock
from kapclinic.measures.models import InstrumentResponse
from kapclinic.sessions import services
from kapclinic.sessions.models import ClinicProtocolSetting, DosingSession, GateOverride
from kapclinic.testing.factories import actor_for, make_clinic, make_patient_user, make_staff
from kapclinic.treatment.testing import make_dosing_ready
from tests.browser.steps import (
    check_in_esketamine,
    htmx_click,
    record_device_disposal,
    record_remaining_devices,
    sign_out,
    start_dosing,
)

T0 = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)  # 09:00 in the clinic's time zone
PHQ9 = [1, 2, 1, 1, 1, 0, 1, 0, 0]  # total 7, item 9 "Not at all"


def interval_checks(nurse: Any, session: DosingSession, *minutes: int) -> None:
    """The nurse's interval checks, each on time (entered through the service; the application clock is
    left at the last one)."""
    for minute in minutes:
        clock.freeze(T0 + dt.timedelta(minutes=minute))
        session.refresh_from_db()
        services.vitals_record(
            actor_for(nurse, session.clinic), session, Reading(sbp=132, dbp=82, hr=78, rr=15, spo2=97)
        )


@pytest.fixture
def frozen() -> Any:
    clock.freeze(T0)
    yield
    clock.reset()


def test_signed_plan_to_discharge(
    tablet_page: Any, server: str, login: Any, axe_check: Any, shot: Any, frozen: Any
) -> None:
    page = tablet_page
    clinic = make_clinic("Harbor", phone="(555) 010-2040")
    prescriber = make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="prescriber@path.test")
    nurse = make_staff(clinic, "nurse", name="Nadia Nurse", email="nurse@path.test")
    user, patient = make_patient_user(clinic, care_team=[prescriber], legal_first_name="Robin")
    plan = make_dosing_ready(patient, prescriber, "esketamine-in-trd")
    # The medical director's value (synthetic) for how recent the last full set must be at discharge.
    ClinicProtocolSetting.objects.update_or_create(
        clinic=clinic, protocol_id="esketamine-in-trd", key="observation.final_set_within_minutes",
        defaults={"value": "15", "set_by": prescriber},
    )  # fmt: skip

    # --- the patient answers the pre-session PHQ-9 in the portal (measures app)
    login(page, user.email)
    page.goto(f"{server}/measures/my/take/PHQ-9/")
    for number, value in enumerate(PHQ9, start=1):
        page.locator(f"input[name='item_{number}'][value='{value}']").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Send my answers").click()
    page.wait_for_load_state("networkidle")
    response = InstrumentResponse.objects.get(patient=patient)
    assert (response.total, response.item9, response.source) == (7, 0, "portal")
    sign_out(page)

    # --- the nurse schedules the session on the plan's protocol, checks in and records the checks
    login(page, "nurse@path.test")
    page.goto(f"{server}/sessions/patient/{patient.pk}/new/")
    assert plan.protocol_title in page.locator(".notice").inner_text()
    axe_check(page, "pathway-new-session")
    with page.expect_navigation():
        page.get_by_role("button", name="Schedule session").click()
    session = DosingSession.objects.get(patient=patient)
    assert session.protocol_id == plan.protocol_id
    detail = f"{server}/sessions/patient/{patient.pk}/{session.pk}/"
    check_in_esketamine(page, systolic="126", diastolic="80", heart_rate="74")
    checklist = page.locator("ul.checklist").inner_text()
    assert "All checks pass" in page.content()
    assert "Blocked" not in checklist and "Hard stop" not in checklist and "Overridden" not in checklist
    assert "Signed treatment plan" in checklist and plan.protocol_title in checklist
    assert "Consent version 1 signed on" in checklist
    assert "PHQ-9 completed 2026-03-02 09:00, total 7. Item 9: 0" in checklist
    axe_check(page, "pathway-gate-passes")
    shot(page, "pathway-1-gate-passes-no-override")
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm pre-dose checks", exact=True).click()
    session.refresh_from_db()
    assert session.state == "predose_passed" and session.phq9_response_id == response.pk
    assert not GateOverride.objects.filter(session=session).exists()
    sign_out(page)

    # --- the prescriber orders 56 mg (2 x 28 mg devices)
    login(page, "prescriber@path.test")
    page.goto(detail)
    page.get_by_label("Dose (mg)").fill("56")
    with page.expect_navigation():
        page.get_by_role("button", name="Calculate and order dose").click()
    assert "2 × 28 mg device" in page.content()
    axe_check(page, "pathway-dose-ordered")
    shot(page, "pathway-2-dose-ordered")
    sign_out(page)

    # --- the nurse gives it, monitors, and records vitals and ratings on schedule
    login(page, "nurse@path.test")
    start_dosing(page, detail, lot="LOT-2026-03")
    record_remaining_devices(page, detail, ordered=2)  # 56 mg = 2 devices, 5 min apart
    with page.expect_navigation():
        page.get_by_role("button", name="Dosing complete: start monitoring").click()
    # The label's checkpoints (baseline, ~40 min, pre-discharge) with the medical director's 15-minute
    # interval checks between them (synthetic demo value, docs/clinical-reference-dosing.md §6): the
    # interval checks through the service, the ~40 min one in the browser, exactly at +40
    interval_checks(nurse, session, 15, 30)
    clock.freeze(T0 + dt.timedelta(minutes=40))
    page.goto(detail)
    page.get_by_label("Systolic BP (mmHg)").fill("144")
    page.get_by_label("Diastolic BP (mmHg)").fill("88")
    page.get_by_label("Heart rate (/min)").fill("82")
    page.get_by_label("SpO2 (%)").fill("97")
    page.get_by_label("Respiratory rate (/min)").fill("15")
    htmx_click(page, page.get_by_role("button", name="Save vitals"))
    page.wait_for_selector("text=No open alerts.")
    page.get_by_label("4 – Sluggish response to name in a normal voice").check()
    htmx_click(page, page.get_by_role("button", name="Save MOAA/S"))
    page.wait_for_selector("text=Latest MOAA/S: 4")
    axe_check(page, "pathway-monitoring")
    shot(page, "pathway-3-monitoring")
    page.goto(detail)  # the +40 reading is the ~40 min check, not the +45 interval check
    schedule = page.locator("#monitor-status li")
    expect(schedule.filter(has_text="~40 min after dosing")).to_contain_text("Done")
    expect(schedule.filter(has_text="~40 min after dosing")).to_contain_text("(taken 09:40)")
    expect(schedule.filter(has_text="+45 min")).to_contain_text("Due now")

    interval_checks(nurse, session, 45, 60)
    clock.freeze(T0 + dt.timedelta(minutes=70))  # +70 min: too early for recovery (issue 18)
    page.goto(detail)
    with page.expect_navigation():
        page.get_by_role("button", name="Start recovery").click()
    msg = page.get_by_role("alert").inner_text()
    assert "Recovery: 65 of the protocol's 120 minutes of observation since the end of administration" in msg
    shot(page, "pathway-4-recovery-refused-before-minimum")
    interval_checks(nurse, session, 75, 90, 105, 120)
    clock.freeze(T0 + dt.timedelta(minutes=125))  # +125 min: 120 minutes after the second device
    page.goto(detail)
    with page.expect_navigation():
        page.get_by_role("button", name="Start recovery").click()
    page.get_by_label("Systolic BP (mmHg)").fill("130")
    page.get_by_label("Diastolic BP (mmHg)").fill("82")
    page.get_by_label("Heart rate (/min)").fill("74")
    page.get_by_label("SpO2 (%)").fill("98")
    page.get_by_label("Respiratory rate (/min)").fill("14")
    htmx_click(page, page.get_by_role("button", name="Save vitals"))
    page.wait_for_selector("text=Vitals (recovery)")
    page.get_by_label("5 – Responds promptly to name in a normal voice").check()
    htmx_click(page, page.get_by_role("button", name="Save MOAA/S"))
    page.wait_for_selector("text=Latest MOAA/S: 5")
    page.get_by_label("0 – None: oriented, no altered perception observed or reported").check()
    htmx_click(page, page.get_by_role("button", name="Save dissociation rating"))
    page.wait_for_selector("text=Latest dissociation: 0")
    # the used devices' disposal, witnessed by the prescriber signing in on the form (issue 14)
    record_device_disposal(page, detail, email="prescriber@path.test", password="test-password-123")

    def discharge() -> None:
        page.goto(detail)
        page.get_by_label("Named escort is present to take the patient home").check()
        page.get_by_label(
            "Advised: no driving or operating machinery until the next day after restful sleep"
        ).check()
        page.get_by_label("I assessed the patient as clinically stable and sign this discharge").check()
        with page.expect_navigation():
            page.get_by_role("button", name="Sign and discharge").click()

    discharge()
    expect(page.get_by_role("heading", name="Discharged")).to_be_visible()

    session.refresh_from_db()
    assert session.state == "discharged" and session.first_dose_at == T0
    assert session.discharged_at == T0 + dt.timedelta(minutes=125)
    page.get_by_text("Pre-dose checks as passed").click()
    axe_check(page, "pathway-discharged")
    shot(page, "pathway-5-discharged")
    sign_out(page)

    # --- the prescriber reviews the clinic settings behind those rules
    login(page, "prescriber@path.test")
    page.goto(f"{server}/sessions/settings/?protocol=esketamine-in-trd")
    expect(page.get_by_role("heading", name="Clinic settings")).to_be_visible()

    assert "may be lengthened, never shortened" in page.content()
    axe_check(page, "pathway-clinic-settings")
    shot(page, "pathway-6-clinic-settings")
