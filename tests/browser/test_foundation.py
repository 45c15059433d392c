"""Each role signs in and sees what their role should; axe-core on every page visited."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from kapclinic.testing.factories import make_clinic, make_patient, make_patient_user, make_staff


def _world() -> dict[str, Any]:
    clinic = make_clinic("Harbor", is_public=True)
    prescriber = make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="prescriber@b.test")
    therapist = make_staff(clinic, "therapist", name="Theo Therapist", email="therapist@b.test")
    nurse = make_staff(clinic, "nurse", name="Nadia Nurse", email="nurse@b.test")
    front = make_staff(clinic, "front_desk", name="Frankie Frontdesk", email="front@b.test")
    admin = make_staff(clinic, "admin", name="Alex Admin", email="admin@b.test")
    _, patient = make_patient_user(clinic, care_team=[prescriber, therapist], legal_first_name="Robin")
    from kapclinic.patients.models import Diagnosis

    Diagnosis.objects.create(
        patient=patient,
        icd10="F33.1",
        snomed="310496002",
        description="Major depressive disorder, recurrent, moderate",
        recorded_by=prescriber,
    )
    unrelated = make_patient(clinic, legal_first_name="Casey", care_team=[prescriber])
    return {
        "patient": patient,
        "unrelated": unrelated,
        "admin": admin,
        "front": front,
        "nurse": nurse,
        "patient_email": patient.user.email,
    }


def test_prescriber_sees_full_chart(page: Any, server: str, login: Any, axe_check: Any, shot: Any) -> None:
    w = _world()
    login(page, "prescriber@b.test")
    axe_check(page, "dashboard")
    with page.expect_navigation():
        page.get_by_role("link", name="Patients").first.click()
    with page.expect_navigation():
        page.get_by_role("link", name="Synthetic, Robin").click()
    expect(page.get_by_role("heading", name="Diagnoses")).to_be_visible()

    assert "F33.1" in page.content()
    axe_check(page, "chart-prescriber")
    shot(page, "foundation-chart-prescriber")
    assert w["patient"].pk


def test_front_desk_sees_no_clinical_content(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    w = _world()
    login(page, "front@b.test")
    page.goto(f"{server}/patients/{w['patient'].pk}/")
    expect(page.get_by_role("heading", name="Contact")).to_be_visible()

    assert page.get_by_role("heading", name="Diagnoses").count() == 0
    assert "F33.1" not in page.content()
    axe_check(page, "chart-front-desk")
    shot(page, "foundation-chart-front-desk")


def test_therapist_sees_only_caseload(page: Any, server: str, login: Any, axe_check: Any, shot: Any) -> None:
    w = _world()
    login(page, "therapist@b.test")
    page.goto(f"{server}/patients/")
    expect(page.get_by_role("link", name="Synthetic, Robin")).to_be_visible()

    assert page.get_by_role("link", name="Synthetic, Casey").count() == 0
    axe_check(page, "patient-list-therapist")
    response = page.goto(f"{server}/patients/{w['unrelated'].pk}/")
    assert response is not None and response.status == 403
    axe_check(page, "403")
    shot(page, "foundation-403")


def test_nurse_on_a_tablet(tablet_page: Any, server: str, login: Any, axe_check: Any, shot: Any) -> None:
    w = _world()
    page = tablet_page
    login(page, "nurse@b.test")
    page.goto(f"{server}/patients/{w['unrelated'].pk}/")  # nurses cover the whole clinic
    expect(page.get_by_role("heading", name="Current medications")).to_be_visible()

    assert page.get_by_role("link", name="Audit log").count() == 0
    axe_check(page, "chart-nurse-tablet")
    shot(page, "foundation-chart-nurse-tablet")


def test_admin_sees_audit_and_staff(page: Any, server: str, login: Any, axe_check: Any, shot: Any) -> None:
    from kapclinic.patients.services import patient_update_demographics
    from kapclinic.testing.factories import actor_for

    w = _world()
    patient = w["patient"]
    front = actor_for(w["front"], patient.clinic)
    patient_update_demographics(
        front, patient, expected_version=patient.version, changes={"phone": "+1 555 0142"}
    )
    login(page, "admin@b.test")
    with page.expect_navigation():
        page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    # Issue 13: each event names its action; a change names the fields it changed, never their values.
    page.get_by_role("textbox", name="Event:").fill("patient.update")
    with page.expect_navigation():
        page.get_by_role("button", name="Filter").click()
    row = page.get_by_role("row").filter(has_text="patient.update")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("changed: phone")
    expect(page.locator("main")).not_to_contain_text("555 0142")
    axe_check(page, "audit-log-event-filter")
    shot(page, "foundation-audit-event-filter")
    with page.expect_navigation():
        page.get_by_role("link", name="Audit log").click()

    axe_check(page, "audit-log")
    shot(page, "foundation-audit-log")
    with page.expect_navigation():
        page.get_by_role("link", name="Staff").click()
    axe_check(page, "staff")
    shot(page, "foundation-staff")


def test_patient_lands_in_portal_and_404_page(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    w = _world()
    login(page, w["patient_email"])
    assert "/portal/" in page.url
    axe_check(page, "portal-home")
    response = page.goto(f"{server}/patients/{w['patient'].pk}/")
    assert response is not None and response.status == 403
    response = page.goto(f"{server}/no-such-page/")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="We could not find that page")).to_be_visible()

    axe_check(page, "404")


def test_login_error_is_clear(page: Any, server: str, axe_check: Any, shot: Any) -> None:
    page.goto(f"{server}/account/login/")
    page.get_by_label("Email").fill("nobody@example.test")
    page.get_by_label("Password").fill("wrong-password")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()

    axe_check(page, "login-error")
    shot(page, "foundation-login-error")
