"""Issue 18, the dose hand-off live, on two devices: the nurse's tablet shows the dose card "Waiting for
the prescriber's order."; the prescriber orders on her own computer; the nurse's card shows the order
without a reload (the card refreshes itself while it offers nothing to type into), then, once a
colleague has double-checked, offers "Start dosing" and stops refreshing. The refresh interval is
shortened for the test (DOSE_CARD_POLL_SECONDS; 12 s in use)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from playwright.sync_api import expect

from kapclinic.core import clock
from kapclinic.inventory.testing import stock_for_session
from kapclinic.sessions import services
from kapclinic.sessions.models import ClinicProtocolSetting
from kapclinic.sessions.testing import past_the_gate
from kapclinic.sessions.views import page as session_page
from kapclinic.testing.factories import actor_for, make_clinic, make_patient, make_staff
from kapclinic.treatment.testing import make_dosing_ready

T0 = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)
IV = "ketamine-iv-racemic"


@pytest.fixture
def frozen() -> Any:
    clock.freeze(T0)
    yield
    clock.reset()


def test_the_nurse_sees_the_order_arrive_without_reloading(
    browser: Any, tablet_page: Any, server: str, login: Any, axe_check: Any, shot: Any, frozen: Any,
    monkeypatch: Any,
) -> None:  # fmt: skip
    monkeypatch.setattr(session_page, "DOSE_CARD_POLL_SECONDS", 1)  # read in views.page
    clinic = make_clinic("Harbor")
    prescriber = make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="rx@live.test")
    nadia = make_staff(clinic, "nurse", name="Nadia Nurse", email="nadia@live.test")
    nora = make_staff(clinic, "nurse", name="Nora Nurse", email="nora@live.test")
    patient = make_patient(clinic, care_team=[prescriber], legal_first_name="Robin")
    make_dosing_ready(patient, prescriber, IV)
    for key, value in (
        ("observation.minimum_minutes", "120"),
        ("observation.final_set_within_minutes", "15"),
    ):
        ClinicProtocolSetting.objects.update_or_create(
            clinic=clinic, protocol_id=IV, key=key, defaults={"value": value, "set_by": prescriber}
        )
    nurse = actor_for(nadia, clinic)
    s = past_the_gate(nurse, nurse, patient, IV, T0)
    vial = stock_for_session(s)  # the clinic's stock: a vial to draw the dose from (issue 14)
    detail = f"{server}/sessions/patient/{patient.pk}/{s.pk}/"

    # --- Nadia's tablet: the card waits for the order
    page = tablet_page
    login(page, "nadia@live.test")
    page.goto(detail)
    card = page.locator("#dose-card")
    expect(card).to_contain_text("Waiting for the prescriber's order.")
    axe_check(page, "dose-live-1-waiting")

    # --- the prescriber, on her own computer, orders the dose
    rx_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        rx = rx_ctx.new_page()
        login(rx, "rx@live.test")
        rx.goto(detail)
        rx.get_by_label("Dose (mg/kg)").fill("0.5")
        rx.get_by_label("Vial concentration (mg/mL)").fill("10")
        rx.get_by_label("Diluent volume (mL)").fill("100")
        with rx.expect_navigation():
            rx.get_by_role("button", name="Calculate and order dose").click()
        expect(rx.locator("#dose-handoff")).to_contain_text("You ordered this dose")
        # Her card has the order form: it does not refresh under her typing.
        assert rx.locator("#dose-card[hx-get]").count() == 0
    finally:
        rx_ctx.close()

    # --- Nadia's card shows the order without a reload; it still waits (for the double-check)
    expect(card).to_contain_text("Dose ordered: waiting for the double-check.", timeout=10000)
    expect(page.get_by_role("button", name="I have independently double-checked this dose")).to_be_visible()
    expect(card).to_contain_text("once a second staff member has double-checked this dose")
    shot(page, "dose-live-2-order-arrived")
    axe_check(page, "dose-live-2-order-arrived")

    # --- Nora double-checks (her own device: the service): Nadia's card offers "Start dosing", and stops
    services.dose_double_check(actor_for(nora, clinic), s)
    expect(page.get_by_role("button", name="Start dosing now")).to_be_visible(timeout=10000)
    expect(card).to_contain_text("Dose ordered and double-checked: ready to give.")
    assert page.locator("#dose-card[hx-get]").count() == 0  # no refresh under her typing
    page.get_by_label("Container the dose is drawn from").select_option(str(vial))
    shot(page, "dose-live-3-ready-to-give")
