"""Issue 14: controlled-substance records. A prescriber receives a box of ketamine vials (labels to
print), doses a patient from a vial and wastes the residue with a witness, a nurse counts at close of
business with a witness and finds a discrepancy, the prescriber resolves it, and the administration log
is shown, printable and downloaded as CSV."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from kapclinic.core import clock
from kapclinic.inventory.models import Container, Discrepancy
from kapclinic.inventory.testing import dea_number, make_registration, make_vial_product
from kapclinic.testing.factories import PASSWORD, make_clinic, make_patient, make_staff


def test_receive_dose_waste_count_discrepancy_and_log(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    clinic = make_clinic("Harbor")
    make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="priya@s.test")
    make_staff(clinic, "nurse", name="Nadia Nurse", email="nadia@s.test")
    patient = make_patient(clinic)
    reg = make_registration(clinic)
    make_vial_product(clinic)
    today = clock.today()

    login(page, "priya@s.test")
    page.goto(f"{server}/inventory/")
    expect(page.get_by_role("heading", name="Controlled substances", level=1)).to_be_visible()
    page.get_by_role("link", name="Receive a delivery").click()
    page.get_by_label("Registration").select_option(label=str(reg))
    page.get_by_label("Product").select_option(index=1)
    page.get_by_label("Storage location").select_option(index=1)
    page.locator("#id_supplier").fill("Synthetic Wholesale Inc.")
    page.get_by_label("Supplier DEA number").fill("RS1234568")  # wrong check digit
    page.get_by_label("Invoice number").fill("INV-2041")
    page.get_by_label("Invoice date").fill(today.isoformat())
    page.get_by_label("Date actually received").fill(today.isoformat())
    page.locator("#id_lot").fill("LOT-7781")
    page.get_by_label("Expiry").fill((today + dt.timedelta(days=365)).isoformat())
    page.get_by_label("Number of containers").fill("2")
    with page.expect_navigation():
        page.get_by_role("button", name="Record the delivery").click()
    expect(page.get_by_text("check digit should be")).to_be_visible()
    assert Container.objects.count() == 0
    axe_check(page, "inventory-receive-refused")
    shot(page, "inventory-1-receive-refused")

    page.get_by_label("Supplier DEA number").fill(dea_number("RS"))
    with page.expect_navigation():
        page.get_by_role("button", name="Record the delivery").click()
    expect(page.get_by_text("Received 2 container(s)")).to_be_visible()
    expect(page.get_by_text("K-0001", exact=False).first).to_be_visible()
    expect(page.get_by_role("button", name="Print labels")).to_be_visible()
    axe_check(page, "inventory-receipt-labels")
    shot(page, "inventory-2-labels")

    # dose a patient from the vial, then waste the residue with a witness
    page.get_by_role("link", name="Ledger of K-0001").click()
    expect(page.locator("#balance")).to_contain_text("500 mg (10 mL)")
    page.get_by_label("Entry").select_option("administration")
    page.get_by_label("Amount").fill("35")
    page.get_by_label("Patient record number").fill(patient.mrn)
    page.get_by_label("Route").fill("IV")
    with page.expect_navigation():
        page.get_by_role("button", name="Add the line").click()
    expect(page.locator("#balance")).to_contain_text("465 mg")
    page.get_by_label("Entry").select_option("waste")
    page.get_by_label("Amount").fill("0.1")
    page.get_by_label("Unit").select_option("mL")
    with page.expect_navigation():
        page.get_by_role("button", name="Add the line").click()
    expect(page.get_by_text("A waste needs a second person as witness.")).to_be_visible()
    # the witness signs in on the form (issue 14): a wrong password is refused, nothing stored
    page.get_by_label("Witness (waste, adjustments): their email address").fill("nadia@s.test")
    page.get_by_label("Witness (waste, adjustments): their password").fill("wrong-password")
    with page.expect_navigation():
        page.get_by_role("button", name="Add the line").click()
    expect(page.get_by_text("sign-in was not accepted")).to_be_visible()
    expect(page.locator("#balance")).to_contain_text("465 mg")
    page.get_by_label("Witness (waste, adjustments): their password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Add the line").click()
    expect(page.locator("#balance")).to_contain_text("460 mg")
    expect(page.locator("#ledger")).to_contain_text(patient.mrn)
    axe_check(page, "inventory-ledger")
    shot(page, "inventory-3-ledger")

    # the nurse counts at close of business, witnessed; K-0001 is miscounted
    page.context.clear_cookies()
    login(page, "nadia@s.test")
    page.goto(f"{server}/inventory/counts/new/")
    page.get_by_label("Close of business").check()
    page.get_by_label("Witness: their email address").fill("priya@s.test")
    page.get_by_label("Witness: their password").fill(PASSWORD)
    page.get_by_label("K-0001 counted (mg)").fill("456")
    page.get_by_label("K-0001: opened container, estimated").check()
    page.get_by_label("K-0002 counted (mg)").fill("500")
    axe_check(page, "inventory-count-form")
    with page.expect_navigation():
        page.get_by_role("button", name="Record the count").click()
    expect(page.get_by_text("a discrepancy was opened")).to_be_visible()
    shot(page, "inventory-4-count")

    # the prescriber resolves it
    page.context.clear_cookies()
    login(page, "priya@s.test")
    page.goto(f"{server}/inventory/")
    page.get_by_role("link", name="K-0001: count differs from the ledger by -4 mg").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Resolve").click()
    expect(page.get_by_text("This field is required.")).to_be_visible()
    page.get_by_label("Written explanation").fill("Meniscus misread; recount with the witness: 460 mg.")
    with page.expect_navigation():
        page.get_by_role("button", name="Resolve").click()
    expect(page.locator("#status")).to_contain_text("resolved")
    assert not Discrepancy.objects.get().is_open
    axe_check(page, "inventory-discrepancy")
    shot(page, "inventory-5-resolved")

    # the stock page and the dashboard
    page.goto(f"{server}/inventory/")
    expect(page.get_by_text("no initial inventory recorded")).to_be_visible()
    axe_check(page, "inventory-stock")
    shot(page, "inventory-5b-stock")
    page.goto(f"{server}/home/")
    expect(page.get_by_role("link", name="Open the controlled-substance records")).to_be_visible()

    # the administration log: on screen, printable, CSV
    page.goto(f"{server}/inventory/reports/")
    page.get_by_label("Registration").select_option(label=str(reg))
    page.locator("#id_start").fill(today.isoformat())
    page.locator("#id_end").fill(today.isoformat())
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#admin-log")).to_contain_text(patient.mrn)
    expect(page.locator("#admin-log")).to_contain_text("(waste)")
    expect(page.get_by_role("button", name="Print")).to_be_visible()
    axe_check(page, "inventory-administration-log")
    shot(page, "inventory-6-administration-log")
    page.emulate_media(media="print")
    shot(page, "inventory-7-administration-log-print")
    page.emulate_media(media="screen")
    with page.expect_download() as download:
        page.locator("#csv-link").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert text.splitlines()[0].startswith("date and time,patient record number,product,lot,container,mg,mL")
    assert f"{patient.mrn},Ketamine HCl injection,LOT-7781,K-0001,35,0.7,IV" in text
