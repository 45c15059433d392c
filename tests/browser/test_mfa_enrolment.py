"""Two-factor enrolment through the emailed single-use link (issue 12): with MFA required, a password
alone shows no authenticator secret and reaches nothing; the admin sends the link from the Staff page;
the link sets up the app once; opened again it is refused with a sentence. Screenshots and axe-core."""

from __future__ import annotations

import re
from typing import Any

from django.core import mail
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from kapclinic.testing.factories import PASSWORD, make_clinic, make_patient, make_staff

NEEDS_LINK = "open the enrolment link we emailed you, or ask an admin to send a new one"


def _code(page: Any, device: TOTPDevice) -> None:
    page.get_by_label("6-digit code from your authenticator app").fill(f"{totp(device.bin_key):06d}")
    with page.expect_navigation():
        page.get_by_role("button", name="Verify").click()


def test_enrolment_needs_the_emailed_link(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any, settings: Any
) -> None:
    settings.MFA_REQUIRED_FOR_STAFF = True
    clinic = make_clinic("Harbor")
    admin = make_staff(clinic, "admin", name="Ada Admin", email="admin@enrol.test")
    nurse = make_staff(clinic, "nurse", name="Nell Nurse", email="nurse@enrol.test")
    patient = make_patient(clinic, legal_first_name="Robin")
    admin_device = TOTPDevice.objects.create(user=admin, name="Authenticator app", confirmed=True)

    # The nurse's password alone: the enrolment page, no secret, and no way to any chart.
    login(page, "nurse@enrol.test")
    expect(page.get_by_role("heading", name="Set up two-factor sign-in")).to_be_visible()
    expect(page.get_by_text(NEEDS_LINK)).to_be_visible()
    expect(page.get_by_text("Or enter this key by hand")).to_have_count(0)
    axe_check(page, "mfa-enrol-needs-link")
    shot(page, "mfa-enrol-needs-link")
    page.goto(f"{server}/patients/{patient.pk}/")
    expect(page).to_have_url(re.compile(r"/account/mfa/"))
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()

    # The admin (verified with their own app) sends the link from the Staff page.
    login(page, "admin@enrol.test")
    _code(page, admin_device)
    page.goto(f"{server}/account/staff/")
    row = page.get_by_role("row", name=re.compile("Nell Nurse"))
    expect(row).to_contain_text("Not set up")
    mail.outbox.clear()
    with page.expect_navigation():
        row.get_by_role("button", name="Send enrolment link").click()
    expect(page.get_by_text(re.compile("Enrolment link sent to nurse@enrol.test"))).to_be_visible()
    axe_check(page, "staff-enrolment-link-sent")
    shot(page, "mfa-staff-enrolment-link-sent")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["nurse@enrol.test"]
    found = re.search(r"https?://\S+(/account/mfa/enrol/\S+/)", str(mail.outbox[0].body))
    assert found is not None
    link = f"{server}{found.group(1)}"
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()

    # The nurse opens the link from the email: sign in first, then set up the app.
    page.goto(link)
    expect(page).to_have_url(re.compile(r"/account/login/\?next=%2Faccount%2Fmfa%2Fenrol%2F$"))
    page.get_by_label("Email").fill("nurse@enrol.test")
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Or enter this key by hand")).to_be_visible()
    expect(page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    axe_check(page, "mfa-enrol-setup")
    shot(page, "mfa-enrol-setup")
    device = TOTPDevice.objects.get(user=nurse, confirmed=False)
    _code(page, device)
    expect(page.get_by_role("heading", name=re.compile("Backup codes", re.I))).to_be_visible()
    page.goto(f"{server}/patients/{patient.pk}/")
    expect(page.get_by_role("heading", name=re.compile("Robin"))).to_be_visible()

    # The same link again is refused with a sentence.
    page.goto(link)
    expect(page.get_by_text(re.compile("not needed: two-factor sign-in is already set up"))).to_be_visible()
    expect(page.get_by_role("link", name="Continue")).to_be_visible()
    axe_check(page, "mfa-enrol-link-used")
    shot(page, "mfa-enrol-link-used")


def test_portal_invitation_to_a_changed_address_and_revoking_it(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    """The security probe in the browser: front desk changes the email and is not offered the
    invitation; the prescriber sends it, then revokes it when the patient says it is not theirs."""
    from kapclinic.patients.models import Patient

    clinic = make_clinic("Harbor")
    make_staff(clinic, "front_desk", name="Fran Desk", email="desk@portal.test")
    make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="prescriber@portal.test")
    patient = make_patient(clinic, legal_first_name="Robin", email="robin@example.test")
    Patient.objects.filter(pk=patient.pk).update(email="someone.else@example.test")

    login(page, "desk@portal.test")
    page.goto(f"{server}/patients/{patient.pk}/")
    expect(page.get_by_text(re.compile("a clinician on the care team sends it"))).to_be_visible()
    expect(page.get_by_role("button", name="Invite to patient portal")).to_have_count(0)
    axe_check(page, "chart-portal-needs-clinician")
    shot(page, "portal-invite-needs-clinician")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()

    login(page, "prescriber@portal.test")
    page.goto(f"{server}/patients/{patient.pk}/")
    with page.expect_navigation():
        page.get_by_role("button", name="Invite to patient portal").click()
    expect(page.get_by_text("Portal invitation sent", exact=True)).to_be_visible()
    with page.expect_navigation():
        page.get_by_role("button", name="Withdraw invitation").click()
    expect(page.get_by_text(re.compile("Portal access revoked"))).to_be_visible()
    expect(page.get_by_role("button", name="Invite to patient portal")).to_be_visible()
    axe_check(page, "chart-portal-revoked")
    shot(page, "portal-invite-revoked", full_page=False)
