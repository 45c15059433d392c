"""Issue 14, partial doses in the browser. Esketamine: three devices taken out of a pack, two used; the
nurse completes dosing with the reason and returns the unused device to stock with a witness who signs in
on the form (a same-person witness refused first). IV: the infusion stopped after 20 of 40 minutes; the
nurse enters what the pump delivered (mL) with a witness, the ledger's dose line is reversed and the
amount infused written anew, and the rest in the bag is wasted with a witness. IV aborted mid-infusion:
the abort form asks the same (amount, witness) and wastes the rest in the same step. The set-up before the
page (check-in, pre-dose checks, the order and its double check) goes through the services."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import expect

from kapclinic.core import clock
from kapclinic.inventory.models import Container, LedgerEntry, SessionDraw
from kapclinic.inventory.testing import stock_for_session
from kapclinic.sessions import services
from kapclinic.sessions.models import Administration, DosingSession
from kapclinic.sessions.testing import past_the_gate
from kapclinic.testing.factories import PASSWORD, actor_for, make_clinic, make_patient, make_staff
from kapclinic.treatment.testing import make_dosing_ready

T0 = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)
ESK = "esketamine-in-trd"
IV = "ketamine-iv-racemic"
RETURN = "Record the witnessed return or disposal"


@pytest.fixture
def ready() -> Any:
    clock.freeze(T0)
    yield
    clock.reset()


def _ordered(
    protocol: str, inputs: dict[str, str], extra_gate: dict[str, Any]
) -> tuple[Any, Any, DosingSession]:
    """Harbor's session at T0 on ``protocol``, pre-dose checks passed, the dose ordered by Dr. Priya and
    double-checked by Nora: (nadia, nora, session)."""
    clinic = make_clinic("Harbor")
    rx = make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="rx@partial.test")
    nadia = make_staff(clinic, "nurse", name="Nadia Nurse", email="nadia@partial.test")
    nora = make_staff(clinic, "nurse", name="Nora Nurse", email="nora@partial.test")
    patient = make_patient(clinic, care_team=[rx])
    make_dosing_ready(patient, rx, protocol)
    nurse = actor_for(nadia, clinic)
    s = past_the_gate(actor_for(rx, clinic), nurse, patient, protocol, T0, **extra_gate)
    services.dose_order(actor_for(rx, clinic), s, expected_version=s.version, inputs=inputs)
    services.dose_double_check(actor_for(nora, clinic), s)
    s.refresh_from_db()
    return nadia, nora, s


def _witness(form: Any, email: str, password: str = PASSWORD, label: str = "Witness") -> None:
    form.get_by_label(f"{label}: their email address").fill(email)
    form.get_by_label(f"{label}: their password").fill(password)


def test_partial_esketamine_dose_unused_device_returned_through_the_page(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any, ready: Any
) -> None:
    nadia, nora, s = _ordered(ESK, {"fixed_mg": "84"}, {"rems_enrolled": True, "nasal_steroid": "none"})
    pack = stock_for_session(s)  # a pack of 3 devices
    detail = f"{server}/sessions/patient/{s.patient_id}/{s.pk}/"
    login(page, "nadia@partial.test")
    page.goto(detail)
    page.get_by_label("Container the dose is drawn from").select_option(str(pack))
    with page.expect_navigation():
        page.get_by_role("button", name="Start dosing now").click()
    table = page.get_by_role("region", name="Stock drawn table")
    expect(table).to_contain_text("2 devices still to use")
    # device 2, five minutes later; the patient declines the third
    clock.advance(dt.timedelta(minutes=5))
    page.goto(detail)
    with page.expect_navigation():
        page.get_by_role("button", name="Record device 2").click()
    expect(page.locator(".device-times")).to_contain_text("Device 2 at")
    page.get_by_label("Reason for a partial dose (only when fewer devices than ordered were used)").fill(
        "Patient declined the third device"
    )
    with page.expect_navigation():
        page.get_by_role("button", name="Dosing complete: start monitoring").click()
    expect(page.get_by_text("Partial dose", exact=True)).to_be_visible()
    heading = page.get_by_role("heading", name="Record what happened to the 1 unused device from S-0001")
    expect(heading).to_be_visible()
    form = page.locator("form", has=page.get_by_role("button", name=RETURN))
    # Nadia cannot witness herself: refused on the witness's field, nothing stored
    form.get_by_label("Returned to stock, unopened").check()
    _witness(form, "nadia@partial.test")
    with page.expect_navigation():
        form.get_by_role("button", name=RETURN).click()
    form = page.locator("form", has=page.get_by_role("button", name=RETURN))
    expect(form).to_contain_text("must be a different person")
    assert SessionDraw.objects.get(session=s).returned == 0
    form.get_by_label("Returned to stock, unopened").check()
    _witness(form, "nora@partial.test")
    axe_check(page, "partial-esketamine-return-form")
    shot(page, "partial-1-esketamine-return-form")
    with page.expect_navigation():
        form.get_by_role("button", name=RETURN).click()
    table = page.get_by_role("region", name="Stock drawn table")
    expect(table).to_contain_text("witnessed by Nora Nurse")
    expect(heading).to_have_count(0)
    axe_check(page, "partial-esketamine-returned")
    shot(page, "partial-2-esketamine-returned")
    draw = SessionDraw.objects.get(session=s)
    assert (draw.drawn, draw.given, draw.returned, draw.return_witness_id) == (3, 2, 1, nora.pk)
    # two administration lines (one a device), no waste: the returned device never left the balance
    assert [e.kind for e in LedgerEntry.objects.filter(container_id=pack).order_by("seq")] == [
        "receipt", "administration", "administration",
    ]  # fmt: skip
    assert Container.objects.get(pk=pack).balance == 1
    assert nadia.pk == draw.returned_by_id


def test_iv_infusion_stopped_early_then_bag_residue_wasted_through_the_page(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any, ready: Any
) -> None:
    _nadia, nora, s = _ordered(IV, {"mg_per_kg": "0.5", "concentration": "10", "diluent_ml": "100"}, {})
    vial = stock_for_session(s)
    detail = f"{server}/sessions/patient/{s.patient_id}/{s.pk}/"
    login(page, "nadia@partial.test")
    page.goto(detail)
    page.get_by_label("Container the dose is drawn from").select_option(str(vial))
    with page.expect_navigation():
        page.get_by_role("button", name="Start dosing now").click()
    expect(page.get_by_role("heading", name="Infusion")).to_be_visible()
    clock.advance(dt.timedelta(minutes=20))
    page.goto(detail)  # the stop time is pre-filled with "now": 20 of the 40 minutes ordered
    form = page.locator("form", has=page.get_by_role("button", name="Record infusion stop"))
    form.get_by_label("Reason, if the infusion stopped before the ordered infusion time").fill(
        "Dissociation stronger than the patient wanted"
    )
    # without the amount infused: refused with the pump's estimate, nothing stored
    with page.expect_navigation():
        form.get_by_role("button", name="Record infusion stop").click()
    form = page.locator("form", has=page.get_by_role("button", name="Record infusion stop"))
    expect(form).to_contain_text("the infusion stopped early, so enter what it delivered")
    expect(form).to_contain_text("about 51.8 mL (17.52 mg)")
    assert Administration.objects.get(session=s).infusion_stopped_at is None
    form.get_by_label("Amount infused, if less than the dose (stopped early)").fill("51.75")
    form.get_by_label("Amount infused in").select_option("mL")
    _witness(form, "nora@partial.test", label="Witness, when less than the dose was infused")
    axe_check(page, "partial-iv-stop-form")
    shot(page, "partial-3-iv-stop-form")
    with page.expect_navigation():
        form.get_by_role("button", name="Record infusion stop").click()
    expect(page.locator("#given")).to_contain_text("17.50 mg of the 35 mg ordered")
    assert Administration.objects.get(session=s).infused_mg == Decimal("17.5")
    assert [e.kind for e in LedgerEntry.objects.filter(container_id=vial).order_by("seq")] == [
        "receipt", "administration", "reversal", "administration",
    ]  # fmt: skip
    # the bag's 17.5 mg is waste to record with a witness before discharge
    waste = page.locator("form", has=page.get_by_role("button", name="Record the witnessed waste"))
    expect(page.get_by_role("heading", name="Record the waste of 17.5 mg from K-0001")).to_be_visible()
    waste.get_by_label("Amount wasted (mg)").fill("17.5")
    waste.get_by_label("What was wasted").fill("Left in the infusion bag")
    _witness(waste, "nora@partial.test")
    with page.expect_navigation():
        waste.get_by_role("button", name="Record the witnessed waste").click()
    expect(page.get_by_role("region", name="Stock drawn table")).to_contain_text("None")
    axe_check(page, "partial-iv-wasted")
    shot(page, "partial-4-iv-wasted")
    w = LedgerEntry.objects.get(container_id=vial, kind="waste")
    assert (w.amount, w.witness_id, w.session_id) == (Decimal("17.5"), nora.pk, s.pk)
    assert Container.objects.get(pk=vial).balance == Decimal(465)
    # the container's ledger page shows the reversal with its reason
    page.goto(f"{server}/inventory/containers/{vial}/")
    expect(page.locator("#ledger")).to_contain_text("stopped after 20 of 40 min")
    shot(page, "partial-5-iv-ledger")
    assert DosingSession.objects.get(pk=s.pk).state == "dosing"


def test_iv_session_aborted_mid_infusion_records_the_amount_and_wastes_the_rest_through_the_page(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any, ready: Any
) -> None:
    """The session is aborted 20 minutes into the 40-minute infusion: the abort form asks what the pump
    delivered and a witness (the nurse herself refused first); the dose line is reversed, the amount
    infused written anew and the rest of the bag wasted in the same step, so the aborted record owes no
    drug (docs/controlled-substances.md §10)."""
    _nadia, nora, s = _ordered(IV, {"mg_per_kg": "0.5", "concentration": "10", "diluent_ml": "100"}, {})
    vial = stock_for_session(s)
    detail = f"{server}/sessions/patient/{s.patient_id}/{s.pk}/"
    login(page, "nadia@partial.test")
    page.goto(detail)
    page.get_by_label("Container the dose is drawn from").select_option(str(vial))
    with page.expect_navigation():
        page.get_by_role("button", name="Start dosing now").click()
    clock.advance(dt.timedelta(minutes=20))
    page.goto(detail)  # the abort form's stop time is pre-filled with "now": 20 of the 40 minutes
    section = page.get_by_role("region", name="Abort session")
    expect(section).to_contain_text("The IV infusion is running")
    form = section.locator("form")
    form.get_by_label("Reason for aborting").fill("Patient distressed, asked to stop")
    form.get_by_label("Amount infused before the infusion was stopped").fill("51.75")
    form.get_by_label("Amount infused in").select_option("mL")
    label = "Witness to the amount infused and the waste of the rest"
    _witness(form, "nadia@partial.test", label=label)
    with page.expect_navigation():
        form.get_by_role("button", name="Abort session").click()
    form = page.get_by_role("region", name="Abort session").locator("form")
    expect(form).to_contain_text("must be a different person")
    assert DosingSession.objects.get(pk=s.pk).state == "dosing"
    assert LedgerEntry.objects.filter(container_id=vial).count() == 2  # receipt, the dose: nothing stored
    form.get_by_label("Amount infused before the infusion was stopped").fill("51.75")
    form.get_by_label("Amount infused in").select_option("mL")
    _witness(form, "nora@partial.test", label=label)
    axe_check(page, "partial-iv-abort-form")
    shot(page, "partial-6-iv-abort-form")
    with page.expect_navigation():
        form.get_by_role("button", name="Abort session").click()
    expect(page.get_by_role("heading", name="Aborted", exact=True)).to_be_visible()
    expect(page.locator("#given")).to_contain_text("17.50 mg of the 35 mg ordered")
    expect(page.locator("#given")).to_contain_text("Session aborted: Patient distressed, asked to stop")
    table = page.get_by_role("region", name="Stock drawn table")
    expect(table).to_contain_text("None")  # nothing drawn is left unaccounted for
    expect(page.get_by_role("heading", name="Record the waste of 17.5 mg from K-0001")).to_have_count(0)
    axe_check(page, "partial-iv-aborted")
    shot(page, "partial-7-iv-aborted")
    assert [(e.kind, e.delta) for e in LedgerEntry.objects.filter(container_id=vial).order_by("seq")] == [
        ("receipt", Decimal(500)),
        ("administration", Decimal(-35)),
        ("reversal", Decimal(35)),
        ("administration", Decimal("-17.5")),
        ("waste", Decimal("-17.5")),
    ]
    w = LedgerEntry.objects.get(container_id=vial, kind="waste")
    assert w.witness_id == nora.pk and Container.objects.get(pk=vial).balance == Decimal(465)
    assert DosingSession.objects.get(pk=s.pk).state == "aborted"
