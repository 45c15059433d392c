"""Issue 16 (money): a dosing session run through the sessions services (the demo's path) up to recovery
is discharged by the nurse in the page; the front desk proposes its charges from the fee schedule, posts
them and takes a card payment, and the patient downloads the superbill in the portal. Screenshots and axe
on each page."""

from __future__ import annotations

import datetime as dt
import io
import random
import re
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
from kapclinic.testing.factories import actor_for, make_clinic, make_patient_user, make_staff
from kapclinic.treatment.testing import make_dosing_ready
from tests.browser.steps import sign_out

T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


@pytest.fixture
def in_recovery() -> Any:
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
    session = sessions_demo._completed(
        ctx, patient, "esketamine-in-trd", T0, 12, random.Random(16), discharge=False
    )
    assert session.state == "recovery" and session.recovery_started_at is not None
    # The nurse discharges 10 minutes into recovery, 5 minutes after the last vitals and ratings (as the
    # demo does); the live server shares this process, so it runs on this clock.
    clock.freeze(session.recovery_started_at + dt.timedelta(minutes=10))
    yield SimpleNamespace(patient=patient, session=session)
    clock.reset()


def discharge_in_the_page(page: Any, login: Any, axe_check: Any, shot: Any, session: Any) -> None:
    """Nadia Nurse finds the session under Dosing sessions and signs the discharge in the page."""
    login(page, "nurse@bill.test")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dosing sessions").click()
    today = page.get_by_role("region", name="Today's sessions table")
    row = today.get_by_role("row").filter(has_text="Robin")
    expect(row).to_contain_text("Recovery")
    row.get_by_role("link").click()
    state = page.locator(".session-head .badge")
    expect(state).to_have_text("Recovery")
    next_step = page.get_by_role("region", name="Next step")
    expect(next_step.get_by_role("heading", name="Discharge")).to_be_visible()
    expect(page.get_by_text("Before discharge:")).to_have_count(0)  # nothing left to do first
    next_step.get_by_label("Named escort is present to take the patient home").check()
    next_step.get_by_label(
        "Advised: no driving or operating machinery until the next day after restful sleep"
    ).check()
    next_step.get_by_label(re.compile(r"^Minutes after the start of dosing")).fill("90")
    next_step.get_by_label("Discharge note").fill("Alert and steady; left with escort.")
    next_step.get_by_label("I assessed the patient as clinically stable and sign this discharge").check()
    shot(page, "billing-0-discharge-form", full_page=False)
    with page.expect_navigation():
        next_step.get_by_role("button", name="Sign and discharge").click()
    expect(state).to_have_text("Discharged")
    expect(page.get_by_role("region", name="Discharged")).to_contain_text("by Nadia Nurse")
    axe_check(page, "billing-discharged")
    shot(page, "billing-0-discharged")
    session.refresh_from_db()
    assert session.state == "discharged" and session.discharged_at == clock.now()
    sign_out(page)


def test_discharge_post_charges_take_payment_patient_downloads_superbill(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any, in_recovery: Any
) -> None:
    patient, session = in_recovery.patient, in_recovery.session
    discharge_in_the_page(page, login, axe_check, shot, session)
    clock.reset()  # billing happens later, on today's date

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
        page.get_by_role("heading", name=f"{session.discharged_at:%Y-%m-%d} · G2082 · 400.00")
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
    day = f"{session.discharged_at:%Y-%m-%d}"
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
