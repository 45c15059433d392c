"""A clinic's day without dead ends (issue 18): small journeys a person takes in the browser."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from kapclinic.intake.models import Assessment
from kapclinic.testing.factories import make_clinic, make_patient, make_staff


def test_assessment_none_of_these_answers_only_what_is_still_unknown(
    server: str, page: Any, login: Any, shot: Any, axe_check: Any
) -> None:
    clinic = make_clinic("Daybreak")
    rx = make_staff(clinic, "prescriber", email="rx@day.test")
    patient = make_patient(clinic, care_team=[rx])
    login(page, "rx@day.test")
    page.goto(f"{server}/intake/patients/{patient.pk}/assessment/")
    first = page.locator("section[data-checklist]").first
    radios_yes = first.locator('input[type="radio"][value="yes"]')
    radios_yes.first.check()  # one question answered "Yes" before the shortcut
    first.get_by_role("button", name="None of these").click()
    expect(first.get_by_role("status")).to_contain_text("set to No; 1 already answered")
    assert radios_yes.first.is_checked()
    unknown_left = first.locator('input[type="radio"][value="unknown"]:checked').count()
    assert unknown_left == 0
    axe_check(page, "assessment none of these")
    shot(page, "day-assessment-none-of-these")
    no_count = first.locator('input[type="radio"][value="no"]:checked').count()
    page.get_by_label("Current medication list reviewed with the patient").select_option("yes")
    with page.expect_navigation():
        page.get_by_role("button", name="Save assessment").click()
    answers = Assessment.objects.get(patient=patient).answers
    assert list(answers.values()).count("yes") == 1
    assert list(answers.values()).count("no") == no_count


def test_phone_portal_summary_first_and_journal_confirmation_in_view(
    server: str, phone_page: Any, login: Any, shot: Any, axe_check: Any
) -> None:
    from kapclinic.testing.factories import make_patient_user

    clinic = make_clinic("Daybreak")
    therapist = make_staff(clinic, "therapist")
    user, _patient = make_patient_user(clinic, care_team=[therapist])
    page = phone_page
    login(page, user.email)
    page.goto(f"{server}/portal/")
    glance = page.get_by_role("heading", name="At a glance")
    expect(glance).to_be_in_viewport()
    shot(page, "day-portal-phone-glance", full_page=False)
    axe_check(page, "portal home on a phone")
    page.goto(f"{server}/portal/journal/")
    page.get_by_label("Your words").fill("A calmer morning than last week.")
    with page.expect_navigation():
        page.get_by_role("button", name="Save entry").click()
    confirmation = page.get_by_text("Saved. Only you can read it.")
    expect(confirmation).to_be_in_viewport()
    shot(page, "day-portal-phone-journal-saved", full_page=False)
    axe_check(page, "journal after saving on a phone")


def test_consent_kiosk_on_a_tablet(
    server: str, tablet_page: Any, login: Any, shot: Any, axe_check: Any
) -> None:
    from kapclinic.consent import services as consent_services
    from kapclinic.consent.models import ConsentSignature
    from kapclinic.core.actor import Actor

    clinic = make_clinic("Daybreak")
    rx = make_staff(clinic, "prescriber")
    desk = make_staff(clinic, "front_desk", email="desk@day.test", name="Dana Desk")
    patient = make_patient(clinic, care_team=[rx])
    consent_services.document_publish(
        Actor(rx, clinic, "prescriber"), title="KAP consent", body="Risks, alternatives, no driving that day."
    )
    page = tablet_page
    login(page, "desk@day.test")
    page.goto(f"{server}/consent/patients/{patient.pk}/")
    page.get_by_role("link", name="Sign on the tablet in the clinic").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Hand the tablet to the patient").click()
    expect(page.get_by_role("heading", name="Consent to treatment", exact=True)).to_be_visible()
    assert page.get_by_role("navigation").count() == 0 and "Dana Desk" not in page.content()
    axe_check(page, "consent kiosk")
    shot(page, "day-kiosk-document")
    # the patient tries to leave: every staff address leads back to the document
    page.goto(f"{server}/patients/")
    expect(page).to_have_url(f"{server}/consent/kiosk/")
    page.get_by_label("I have read this consent document").check()
    page.get_by_label("Type your full legal name to sign").fill(patient.legal_name)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign consent").click()
    expect(page.get_by_text("Please hand the tablet back")).to_be_visible()
    shot(page, "day-kiosk-signed")
    assert ConsentSignature.objects.get(patient=patient).witnessed_by == desk
    page.get_by_text("Staff: return to the staff view").click()
    page.get_by_label("Staff password").fill("test-password-123")
    with page.expect_navigation():
        page.get_by_role("button", name="Return to staff view").click()
    expect(page.get_by_role("heading", name=f"Consent: {patient.display_name}")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
