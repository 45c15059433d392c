"""Issue 18 in the browser: a prescriber orders an IV dose above the protocol maximum with a written
reason and sees that a second prescriber must co-sign before dosing can start; the second prescriber
co-signs; an order above the hard ceiling (the low end of the label's IV induction range, 1 mg/kg) is
refused whatever the reason, and the co-signed order stands. The application clock is frozen."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from playwright.sync_api import expect

from kapclinic.clinical.session_state import Event
from kapclinic.clinical.vitals import Reading
from kapclinic.core import clock
from kapclinic.inventory.testing import stock_for_session
from kapclinic.measures.services import response_submit
from kapclinic.sessions import services
from kapclinic.sessions.models import Administration
from kapclinic.testing.factories import actor_for, make_clinic, make_patient, make_staff
from kapclinic.treatment.testing import make_dosing_ready
from tests.browser.steps import sign_out

T0 = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)


@pytest.fixture
def frozen() -> Any:
    clock.freeze(T0)
    yield
    clock.reset()


def test_over_maximum_cosign_and_hard_ceiling(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any, frozen: Any
) -> None:
    clinic = make_clinic("Harbor")
    first = make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="first@ceiling.test")
    second = make_staff(clinic, "prescriber", name="Dr. Sam Second", email="second@ceiling.test")
    nurse = make_staff(clinic, "nurse", name="Nadia Nurse", email="nurse@ceiling.test")
    patient = make_patient(clinic, care_team=[first], legal_first_name="Robin")
    make_dosing_ready(patient, first, "ketamine-iv-racemic")
    response_submit(
        actor_for(nurse, clinic), patient, instrument="PHQ-9", version=None,
        answers=[2, 2, 1, 1, 1, 0, 1, 0, 0], source="paper", entered_by=nurse,
    )  # fmt: skip
    # The nurse's part (check-in, pre-dose details, baseline vitals, gate) through the services.
    na = actor_for(nurse, clinic)
    s = services.session_create(na, patient, protocol_key="ketamine-iv-racemic", scheduled_for=T0)
    s = services.session_transition(na, s, Event.CHECK_IN, expected_version=s.version)
    s = services.gate_update(
        na, s, expected_version=s.version,
        values={
            "weight_kg": "70", "last_food_at": T0 - dt.timedelta(hours=6),
            "last_liquid_at": T0 - dt.timedelta(hours=2), "escort_name": "Sam Escort",
            "medication_changes_reviewed": True, "pregnancy_status": "not_applicable",
            "intention": "Stay curious",
        },
    )  # fmt: skip
    services.vitals_record(na, s, Reading(sbp=124, dbp=80, hr=72, spo2=98, rr=14))
    s.refresh_from_db()
    services.gate_pass(na, s, expected_version=s.version)
    detail = f"{server}/sessions/patient/{patient.pk}/{s.pk}/"
    stock_for_session(s)  # the clinic's ketamine vials (issue 14)

    # --- first prescriber: 0.9 mg/kg is above the 0.75 mg/kg maximum; refused without a reason
    login(page, "first@ceiling.test")
    page.goto(detail)
    expect(page.get_by_role("heading", name="Dose", exact=True)).to_be_visible()
    page.get_by_label("Dose (mg/kg)").fill("0.9")
    page.get_by_label("Vial concentration (mg/mL)").fill("10")
    page.get_by_label("Diluent volume (mL)").fill("100")
    with page.expect_navigation():
        page.get_by_role("button", name="Calculate and order dose").click()
    expect(page.get_by_role("alert")).to_contain_text("above the protocol maximum")
    page.get_by_label("Dose (mg/kg)").fill("0.9")
    page.get_by_label("Vial concentration (mg/mL)").fill("10")
    page.get_by_label("Diluent volume (mL)").fill("100")
    page.get_by_label("Override reason", exact=False).fill("Partial response at 0.75 mg/kg twice")
    with page.expect_navigation():
        page.get_by_role("button", name="Calculate and order dose").click()
    expect(page.get_by_text("Awaiting a second prescriber")).to_be_visible()
    expect(page.get_by_text("Hard ceiling", exact=True)).to_be_visible()
    assert page.get_by_role("button", name="Co-sign the dose above the maximum").count() == 0
    axe_check(page, "ceiling-1-awaiting-cosign")
    shot(page, "ceiling-1-awaiting-cosign")
    # dosing cannot start yet: the card says so instead of offering "Start dosing" (the service still
    # refuses a start before the co-signature: kapclinic/sessions/tests/test_dose_safety.py)
    expect(
        page.get_by_text("Start dosing: once a second prescriber has co-signed this order")
    ).to_be_visible()
    assert page.get_by_role("button", name="Start dosing now").count() == 0
    sign_out(page)

    # --- second prescriber: co-signs
    login(page, "second@ceiling.test")
    page.goto(detail)
    with page.expect_navigation():
        page.get_by_role("button", name="Co-sign the dose above the maximum").click()
    expect(page.get_by_text("Co-signed", exact=True)).to_be_visible()
    expect(page.get_by_text("by Dr. Sam Second")).to_be_visible()
    axe_check(page, "ceiling-2-cosigned")
    shot(page, "ceiling-2-cosigned")

    # --- an order above the hard ceiling (1 mg/kg x 70 kg = 70 mg) is refused whatever the reason
    page.get_by_label("Dose (mg/kg)").fill("1.2")
    page.get_by_label("Vial concentration (mg/mL)").fill("10")
    page.get_by_label("Diluent volume (mL)").fill("100")
    page.get_by_label("Override reason", exact=False).fill("Test of override path")
    page.get_by_label("Why the earlier order is replaced", exact=False).fill("Try a higher dose")
    with page.expect_navigation():
        page.get_by_role("button", name="Calculate and order dose").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("above this protocol's hard ceiling of 70 mg")
    expect(alert).to_contain_text("no override reason or co-signature can pass the ceiling")
    axe_check(page, "ceiling-3-refused")
    shot(page, "ceiling-3-refused")
    adm = Administration.objects.get(session=s)
    assert adm.dose_mg == 63 and adm.cosigned_by == second  # the co-signed order stands


def test_unconfigured_protocol_blocks_the_plan_and_links_to_the_setting(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any, frozen: Any
) -> None:
    """A clinic whose medical director has set nothing: the new-plan page names what each protocol still
    needs and links to the clinic settings page where it is set."""
    from kapclinic.treatment.testing import sign_consent, sign_eligible

    clinic = make_clinic("Harbor", configured=False)
    prescriber = make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="md@ceiling.test")
    patient = make_patient(clinic, care_team=[prescriber], legal_first_name="Robin")
    sign_eligible(patient, prescriber)
    sign_consent(patient, witness=prescriber)
    login(page, "md@ceiling.test")
    page.goto(f"{server}/treatment/patients/{patient.pk}/plans/new/")
    region = page.get_by_role("region", name="Protocol not ready for use")
    expect(region).to_contain_text("IM racemic ketamine")
    expect(region).to_contain_text("Maximum dose per kg")
    axe_check(page, "ceiling-4-plan-blocked")
    shot(page, "ceiling-4-plan-blocked")
    with page.expect_navigation():
        region.get_by_role("link", name="Set these values for IM racemic ketamine", exact=False).click()
    assert page.url.endswith("/sessions/settings/?protocol=ketamine-im-racemic")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    expect(page.get_by_text("Hard ceiling per kg (no override passes)").first).to_be_visible()
    axe_check(page, "ceiling-5-settings")
    shot(page, "ceiling-5-settings")
