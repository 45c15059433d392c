"""Issue 14: dosing draws from stock. The nurse chooses the vial when dosing starts (lot and expiry
shown, the amount drawn up entered); the session page shows the 2 mg drawn but not given; discharge is
refused until it is wasted; the witness signs in on the waste form (a wrong password is refused and
changes nothing); then discharge. The monitoring in between is entered through the services."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import expect

from kapclinic.clinical.session_state import Event
from kapclinic.clinical.vitals import Reading
from kapclinic.core import clock
from kapclinic.inventory.models import Container, LedgerEntry
from kapclinic.inventory.testing import stock_for_session
from kapclinic.sessions import services
from kapclinic.sessions.models import ClinicProtocolSetting, DosingSession
from kapclinic.sessions.testing import past_the_gate
from kapclinic.testing.factories import PASSWORD, actor_for, make_clinic, make_patient, make_staff
from kapclinic.treatment.testing import make_dosing_ready

T0 = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)
IV = "ketamine-iv-racemic"


@pytest.fixture
def ready() -> Any:
    clock.freeze(T0)
    yield
    clock.reset()


def _ordered_iv_session() -> tuple[Any, Any, Any, Any, Any, DosingSession]:
    """Harbor's IV session at T0, pre-dose checks passed, 35 mg ordered by Dr. Priya and double-checked
    by Nora: (clinic, rx, nadia, nora, patient, session)."""
    clinic = make_clinic("Harbor")
    rx = make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="rx@stock.test")
    nadia = make_staff(clinic, "nurse", name="Nadia Nurse", email="nadia@stock.test")
    nora = make_staff(clinic, "nurse", name="Nora Nurse", email="nora@stock.test")
    patient = make_patient(clinic, care_team=[rx])
    make_dosing_ready(patient, rx, IV)
    nurse = actor_for(nadia, clinic)
    for key, value in (("observation.minimum_minutes", "60"), ("observation.final_set_within_minutes", "15")):
        ClinicProtocolSetting.objects.update_or_create(
            clinic=clinic, protocol_id=IV, key=key, defaults={"value": value, "set_by": rx}
        )
    s = past_the_gate(actor_for(rx, clinic), nurse, patient, IV, T0)
    services.dose_order(
        actor_for(rx, clinic),
        s,
        expected_version=s.version,
        inputs={"mg_per_kg": "0.5", "concentration": "10", "diluent_ml": "100"},
    )
    services.dose_double_check(actor_for(nora, clinic), s)
    return clinic, rx, nadia, nora, patient, s


def test_dose_from_a_chosen_vial_waste_with_signed_in_witness_then_discharge(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any, ready: Any
) -> None:
    clinic, _rx, nadia, nora, patient, s = _ordered_iv_session()
    nurse = actor_for(nadia, clinic)
    # the clinic's stock: two vials, the one expiring first is offered first
    later = stock_for_session(s, lot="LOT-LATE", expiry=clock.today() + dt.timedelta(days=500))
    first = stock_for_session(s, lot="LOT-7781", expiry=clock.today() + dt.timedelta(days=200))
    detail = f"{server}/sessions/patient/{patient.pk}/{s.pk}/"

    # --- Nadia chooses the vial and enters what she drew up: 37 mg for a 35 mg dose
    login(page, "nadia@stock.test")
    page.goto(detail)
    choice = page.get_by_label("Container the dose is drawn from")
    expect(choice).to_be_visible()
    options = choice.locator("option").all_inner_texts()
    assert options[1].startswith("K-0002: lot LOT-7781, expires")
    assert options[2].startswith("K-0001: lot LOT-LATE")
    choice.select_option(str(first))
    page.get_by_label("Amount drawn up (mg), including what stays in the syringe").fill("37")
    axe_check(page, "stock-1-choose-container")
    shot(page, "stock-1-choose-container")
    with page.expect_navigation():
        page.get_by_role("button", name="Start dosing now").click()
    expect(page.get_by_role("heading", name="Controlled substances")).to_be_visible()
    expect(page.get_by_role("region", name="Stock drawn table")).to_contain_text("2 mg")
    assert Container.objects.get(pk=first).balance == Decimal(465)
    assert Container.objects.get(pk=later).balance == Decimal(500)

    # --- monitoring through the services: infusion 40 min, observation 60 min after it, recovery
    s.refresh_from_db()

    def at(minutes: int) -> None:
        clock.advance(T0 + dt.timedelta(minutes=minutes) - clock.now())

    for minute in range(10, 50, 10):
        at(minute)
        services.vitals_record(nurse, s, Reading(sbp=126, dbp=80, hr=72, rr=14, spo2=98))
    s.refresh_from_db()
    services.infusion_stop_record(
        nurse, s, expected_version=s.version, stopped_at=clock.now(), actual_rate_ml_per_h=None
    )
    s.refresh_from_db()
    s = services.session_transition(nurse, s, Event.START_MONITORING, expected_version=s.version)
    for minute in range(50, 110, 10):
        at(minute)
        services.vitals_record(nurse, s, Reading(sbp=124, dbp=80, hr=70, rr=14, spo2=98))
    s.refresh_from_db()
    s = services.session_transition(nurse, s, Event.START_RECOVERY, expected_version=s.version)
    at(110)
    services.vitals_record(nurse, s, Reading(sbp=122, dbp=78, hr=70, rr=14, spo2=98))
    services.rating_record(nurse, s, kind="sedation", value=5)
    services.rating_record(nurse, s, kind="dissociation", value=0)
    assert DosingSession.objects.get(pk=s.pk).state == "recovery"

    # --- discharge refused while 2 mg drawn but not given is unaccounted for
    def discharge() -> None:
        page.get_by_label("Named escort is present to take the patient home").check()
        page.get_by_label(
            "Advised: no driving or operating machinery until the next day after restful sleep"
        ).check()
        page.get_by_label("I assessed the patient as clinically stable and sign this discharge").check()
        with page.expect_navigation():
            page.get_by_role("button", name="Sign and discharge").click()

    page.goto(detail)
    discharge()
    expect(page.get_by_role("alert")).to_contain_text("2 mg drawn from K-0002 (lot LOT-7781) was not given")
    expect(page.get_by_role("link", name="Record it under Controlled substances")).to_be_visible()
    shot(page, "stock-2-discharge-refused")

    # --- the waste, witnessed by Nora signing in on the form: a wrong password first
    form = page.locator("form", has=page.get_by_role("button", name="Record the witnessed waste"))
    form.get_by_label("Amount wasted (mg)").fill("2")
    form.get_by_label("Witness: their email address").fill("nora@stock.test")
    form.get_by_label("Witness: their password").fill("not-noras-password")
    with page.expect_navigation():
        form.get_by_role("button", name="Record the witnessed waste").click()
    # the refusal is a field error on the witness's email address (the form keeps what was typed)
    form = page.locator("form", has=page.get_by_role("button", name="Record the witnessed waste"))
    expect(form).to_contain_text("The witness's sign-in was not accepted")
    expect(form.get_by_label("Witness: their email address")).to_have_attribute("aria-invalid", "true")
    assert not LedgerEntry.objects.filter(kind="waste").exists()
    form = page.locator("form", has=page.get_by_role("button", name="Record the witnessed waste"))
    form.get_by_label("Amount wasted (mg)").fill("2")
    form.get_by_label("Witness: their email address").fill("nora@stock.test")
    form.get_by_label("Witness: their password").fill(PASSWORD)
    axe_check(page, "stock-3-waste-form")
    shot(page, "stock-3-waste-form")
    with page.expect_navigation():
        form.get_by_role("button", name="Record the witnessed waste").click()
    expect(page.get_by_role("region", name="Stock drawn table")).to_contain_text("None")
    waste = LedgerEntry.objects.get(kind="waste")
    assert waste.witness_id == nora.pk and waste.session_id == s.pk and waste.amount == 2
    assert Container.objects.get(pk=first).balance == Decimal(463)

    discharge()
    expect(page.get_by_role("heading", name="Discharged")).to_be_visible()
    axe_check(page, "stock-4-discharged")
    shot(page, "stock-4-discharged")
    # the container's ledger: the administration and the witnessed waste, linked to the patient
    page.goto(f"{server}/inventory/containers/{first}/")
    expect(page.locator("#ledger")).to_contain_text("Nora Nurse")
    expect(page.locator("#ledger")).to_contain_text(patient.mrn)
    shot(page, "stock-5-ledger")


def test_dose_split_across_two_vials_when_the_first_holds_less(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any, ready: Any
) -> None:
    """The first vial holds 20 mg of a 35 mg dose: one vial is refused with a sentence, nothing stored;
    Nadia chooses a second vial of the same strength and enters what she drew up from each."""
    clinic, _rx, nadia, _nora, patient, s = _ordered_iv_session()
    first = stock_for_session(s, lot="LOT-7781")
    from kapclinic.inventory import services as inventory

    inventory.record_entry(actor_for(nadia, clinic), first, kind="administration", amount=480, unit="mg")
    second = stock_for_session(s, lot="LOT-8802")
    detail = f"{server}/sessions/patient/{patient.pk}/{s.pk}/"
    login(page, "nadia@stock.test")
    page.goto(detail)
    page.get_by_label("Container the dose is drawn from").select_option(str(first))
    with page.expect_navigation():
        page.get_by_role("button", name="Start dosing now").click()
    expect(page.get_by_role("alert").first).to_contain_text(
        "K-0001 holds 20 mg; 35 mg cannot be drawn from it"
    )
    assert not LedgerEntry.objects.filter(session=s).exists()
    shot(page, "stock-6-one-vial-too-little")
    page.get_by_label("Container the dose is drawn from").select_option(str(first))
    page.get_by_label("Amount drawn up (mg), including what stays in the syringe").fill("20")
    page.get_by_label("Second container, only when the first holds less than the dose").select_option(
        str(second)
    )
    page.get_by_label("Amount drawn up from the second container (mg)").fill("17")
    axe_check(page, "stock-7-two-vials")
    shot(page, "stock-7-two-vials")
    with page.expect_navigation():
        page.get_by_role("button", name="Start dosing now").click()
    table = page.get_by_role("region", name="Stock drawn table")
    expect(table).to_contain_text("K-0001")
    expect(table).to_contain_text("K-0002")
    assert Container.objects.get(pk=first).balance == 0
    assert Container.objects.get(pk=second).balance == Decimal(485)
    expect(page.get_by_role("heading", name="Record the waste of 2 mg from K-0002")).to_be_visible()
    shot(page, "stock-8-two-vials-drawn")
