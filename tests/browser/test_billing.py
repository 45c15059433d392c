"""Issue 16 (money): a dosing session is discharged (through the sessions services, the path the demo and
the dosing journey use), the front desk proposes its charges from the fee schedule, posts them and takes a
card payment, and the patient downloads the superbill in the portal. Screenshots and axe on each page."""

from __future__ import annotations

import datetime as dt
import io
import random
from types import SimpleNamespace
from typing import Any

import pytest
from faker import Faker
from playwright.sync_api import expect
from pypdf import PdfReader

from kapclinic.billing import services
from kapclinic.billing.testing import add_diagnosis, npi, starter_fee_schedule
from kapclinic.core import clock
from kapclinic.sessions import demo as sessions_demo
from kapclinic.sessions.models import DosingSession
from kapclinic.testing.factories import actor_for, make_clinic, make_patient_user, make_staff
from kapclinic.treatment.testing import make_dosing_ready

T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


@pytest.fixture
def discharged() -> Any:
    clock.freeze(T0 - dt.timedelta(hours=1))
    clinic = make_clinic("Harbor")
    prescriber = make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="prescriber@bill.test")
    nurse = make_staff(clinic, "nurse", name="Nadia Nurse", email="nurse@bill.test")
    desk = make_staff(clinic, "front_desk", name="Frankie Frontdesk", email="desk@bill.test")
    admin = make_staff(clinic, "admin", name="Alex Admin", email="admin@bill.test")
    user, patient = make_patient_user(clinic, care_team=[prescriber], legal_first_name="Robin")
    type(user).objects.filter(pk=user.pk).update(email="robin@bill.test")
    make_dosing_ready(patient, prescriber, "esketamine-in-trd")
    if not patient.diagnoses.exists():
        add_diagnosis(patient, prescriber, "F33.2", "Synthetic: major depressive disorder, recurrent")
    a = actor_for(admin, clinic)
    starter_fee_schedule(a)
    services.save_profile(
        a,
        expected_version=None,
        legal_name="Harbor KAP PLLC",
        organisation_npi=npi("123456789"),
        tax_id="12-3456789",
        billing_address="1 Synthetic Way, Portland OR 97201",
    )
    services.save_provider(
        a,
        prescriber,
        expected_version=None,
        credentials="MD",
        licence_number="MD-1",
        licence_state="OR",
        npi=npi("198765430"),
    )
    # the demo's staff keys: the sessions demo books the appointment (front desk) and draws from stock
    staff = {"nurse": nurse, "prescriber": prescriber, "frontdesk": desk}
    ctx = SimpleNamespace(
        clinic=clinic,
        demo_patient=patient,
        faker=Faker(),
        rng=random.Random(16),
        staff=staff,
        rng_for=lambda *keys: random.Random(":".join(str(k) for k in keys)),
        staff_actor=lambda key: actor_for(staff[key], clinic),
    )
    sessions_demo._completed(ctx, patient, "esketamine-in-trd", T0, 12, random.Random(16))
    session = DosingSession.objects.get(patient=patient)
    assert session.state == "discharged"
    clock.reset()
    yield SimpleNamespace(patient=patient, session=session)
    clock.reset()


def test_post_charges_take_payment_patient_downloads_superbill(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any, discharged: Any
) -> None:
    patient = discharged.patient
    login(page, "desk@bill.test")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Billing").click()
    expect(page.get_by_role("heading", name="Billing", exact=True)).to_be_visible()
    work = page.get_by_role("region", name="Work to bill table")
    expect(work.get_by_role("cell", name="Dosing session, esketamine-in-trd")).to_be_visible()
    axe_check(page, "billing-index")
    with page.expect_navigation():
        work.get_by_role("button", name="Propose charges").click()
    expect(page.get_by_role("heading", name="Proposed charges: review, then post")).to_be_visible()
    expect(
        page.get_by_role("heading", name=f"{discharged.session.discharged_at:%Y-%m-%d} · G2082 · 400.00")
    ).to_be_visible()
    shot(page, "billing-1-proposed")
    axe_check(page, "billing-proposed")
    with page.expect_navigation():
        page.get_by_role("button", name="Post 1 charge").click()
    expect(page.get_by_text("1 charge(s) posted.")).to_be_visible()
    expect(page.get_by_text("Owes 400.00")).to_be_visible()

    page.get_by_label("Method").select_option("card")
    page.get_by_label("Amount").first.fill("400.00")
    page.get_by_label("Reference").first.fill("AUTH-5521")
    with page.expect_navigation():
        page.get_by_role("button", name="Record payment").click()
    expect(page.get_by_text("Payment of 400.00 recorded.")).to_be_visible()
    expect(page.get_by_text("Owes 0.00")).to_be_visible()
    ledger = page.get_by_role("region", name="Ledger table")
    expect(ledger.get_by_role("cell", name="AUTH-5521")).to_be_visible()
    shot(page, "billing-2-paid")
    axe_check(page, "billing-paid")
    page.get_by_role("button", name="Sign out").click()

    # --- the patient, in the portal
    login(page, "robin@bill.test")
    page.get_by_role("navigation", name="Portal").get_by_role("link", name="Bills and receipts").click()
    expect(page.get_by_role("heading", name="Bills and receipts")).to_be_visible()
    expect(page.get_by_text("Nothing to pay")).to_be_visible()
    day = f"{discharged.session.discharged_at:%Y-%m-%d}"
    page.get_by_label("From").fill(day)
    page.get_by_label("To").fill(day)
    shot(page, "billing-3-portal")
    axe_check(page, "billing-portal")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download superbill (PDF)").click()
    with open(info.value.path(), "rb") as fh:
        data = fh.read()
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
    for field in (
        "Superbill",
        "G2082",
        patient.mrn,
        "Paid in full",
        "Dr. Priya Prescriber",
        "Provider signature",
    ):
        assert field in text, field
