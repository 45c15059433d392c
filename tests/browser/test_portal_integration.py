"""Issue #6 end to end on a phone: the patient writes an intention, the dosing session happens, the
patient writes a reflection and shares it, the therapist writes the integration note beside it and
signs it."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from playwright.sync_api import expect

from kapclinic.core import clock
from kapclinic.notes.models import Note
from kapclinic.portal.models import JournalEntry
from kapclinic.scheduling.models import Appointment, Resource
from kapclinic.testing.factories import make_clinic, make_patient, make_staff
from kapclinic.treatment.testing import make_dosing_ready

PASSWORD = "test-password-123"


def _world() -> dict[str, Any]:
    from kapclinic.accounts.models import User

    clinic = make_clinic("Harbor", phone="(555) 010-2040", address="200 Example Street")
    therapist = make_staff(clinic, "therapist", name="Theo Therapist", email="theo@p.test")
    nurse = make_staff(clinic, "nurse", name="Nadia Nurse", email="nadia@p.test")
    user = User.objects.create_user(email="robin@p.test", full_name="Robin Demo", password=PASSWORD)
    patient = make_patient(clinic, user=user, care_team=[therapist, nurse], legal_first_name="Robin",
                           pathway_status="active")  # fmt: skip
    # A signed esketamine plan: the preparation lines come from its protocol (issue 18).
    prescriber = make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="priya@p.test")
    make_dosing_ready(patient, prescriber, "esketamine-in-trd")
    chair = Resource.objects.create(clinic=clinic, name="Chair 1", kind="chair")
    start = clock.now().replace(second=0, microsecond=0) + dt.timedelta(days=1)
    appt = Appointment.objects.create(
        clinic=clinic, patient=patient, kind="dosing", starts_at=start,
        ends_at=start + dt.timedelta(minutes=180), staff=therapist, resource=chair, created_by=nurse,
    )  # fmt: skip
    return {"patient": patient, "appt": appt, "therapist": therapist, "nurse": nurse}


def test_intention_session_reflection_and_integration_note(
    browser: Any, phone_page: Any, page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    w = _world()
    appt = w["appt"]

    # 1. On her phone, the patient sees tomorrow's session with how to prepare, and writes an intention.
    login(phone_page, "robin@p.test")
    expect(phone_page.get_by_role("heading", name="Upcoming appointments")).to_be_visible()

    expect(phone_page.get_by_text("Do not eat for 2 hours").first).to_be_visible()

    expect(phone_page.get_by_role("heading", name="Not monitored in real time")).to_be_visible()

    width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the portal scrolls sideways on a phone ({width}px)"
    axe_check(phone_page, "portal-home-phone")
    shot(phone_page, "portal-1-home-phone")
    with phone_page.expect_navigation():
        phone_page.get_by_role("link", name="Write your intention for your dosing session").click()
    assert phone_page.get_by_label("Intention before a dosing session").is_checked()
    phone_page.get_by_label("Your words").fill("To meet the grief I have been avoiding, gently.")
    phone_page.get_by_label("Share this entry with my care team").check()
    axe_check(phone_page, "portal-journal-phone")
    shot(phone_page, "portal-2-intention-phone")
    with phone_page.expect_navigation():
        phone_page.get_by_role("button", name="Save entry").click()
    phone_page.wait_for_load_state("networkidle")
    expect(phone_page.get_by_text("Saved and shared with your care team.")).to_be_visible()

    intention = JournalEntry.objects.get(kind="intention")
    assert intention.appointment_id == appt.pk and intention.is_shared

    # 2. The session happens (moved into the past and marked completed).
    past = clock.now() - dt.timedelta(hours=6)
    Appointment.objects.filter(pk=appt.pk).update(
        starts_at=past, ends_at=past + dt.timedelta(minutes=180), status="completed"
    )

    # 3. That evening she writes a reflection (private first), then shares it from her journal.
    phone_page.goto(f"{server}/portal/")
    with phone_page.expect_navigation():
        phone_page.get_by_role("link", name="Write a reflection").click()
    assert phone_page.get_by_label("Reflection after a dosing session").is_checked()
    phone_page.get_by_label("Your words").fill(
        "I saw my grandmother's garden and felt held. I cried and it was okay."
    )
    with phone_page.expect_navigation():
        phone_page.get_by_role("button", name="Save entry").click()
    phone_page.wait_for_load_state("networkidle")
    expect(phone_page.get_by_text("Saved. Only you can read it.")).to_be_visible()

    with phone_page.expect_navigation():
        phone_page.get_by_role("button", name=re.compile(r"Share with my care team\W+reflection")).click()
    phone_page.wait_for_load_state("networkidle")
    expect(phone_page.get_by_text("Shared with your care team.")).to_be_visible()

    assert JournalEntry.objects.get(kind="reflection").is_shared
    axe_check(phone_page, "portal-journal-shared-phone")
    shot(phone_page, "portal-3-reflection-shared-phone")

    # 4. The therapist opens the session's thread, writes the integration note beside the entries, signs it.
    login(page, "theo@p.test")
    page.goto(f"{server}/notes/patient/{w['patient'].pk}/thread/{appt.pk}/")
    expect(page.get_by_text("To meet the grief I have been avoiding, gently.")).to_be_visible()

    expect(page.get_by_text("I saw my grandmother's garden")).to_be_visible()

    axe_check(page, "notes-thread")
    shot(page, "portal-4-therapist-thread")
    with page.expect_navigation():
        page.get_by_role("link", name="Write the integration note").click()
    assert page.get_by_label("Template").input_value() == "integration"
    with page.expect_navigation():
        page.get_by_role("button", name="Start the draft").click()
    page.wait_for_load_state("networkidle")
    beside = page.get_by_role("region", name="From the patient's journal")
    assert "grandmother's garden" in beside.inner_text()
    page.get_by_label("Experience review").fill("Garden imagery; felt held; tears with relief.")
    page.wait_for_selector("#save-status:has-text('Draft saved')")  # htmx autosave
    page.get_by_label("Insights linked to the intention").fill(
        "Grief can be met gently; it did not overwhelm her."
    )
    page.get_by_label("Commitments and homework").fill(
        "Visit the garden this weekend; two journal check-ins."
    )
    axe_check(page, "notes-integration-draft")
    shot(page, "portal-5-integration-note-beside-journal")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign note").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_text("Note signed.")).to_be_visible()

    note = Note.objects.get(kind="integration")
    assert note.is_signed and note.dosing_appointment_id == appt.pk
    texts = {s["key"]: s["text"] for s in note.sections}
    assert texts["review"].startswith("Garden imagery") and texts["commitments"].startswith(
        "Visit the garden"
    )
    axe_check(page, "notes-signed")
    shot(page, "portal-6-integration-note-signed")

    # The thread now shows the signed note; the patient's "who opened my record" lists the therapist role.
    page.goto(f"{server}/notes/patient/{w['patient'].pk}/thread/{appt.pk}/")
    expect(page.get_by_text("Signed").first).to_be_visible()

    phone_page.goto(f"{server}/portal/who-opened-my-record/")
    expect(phone_page.get_by_role("cell", name="Therapist").first).to_be_visible()

    axe_check(phone_page, "portal-access-log-phone")
    shot(phone_page, "portal-7-who-opened-my-record-phone")
