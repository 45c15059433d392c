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
