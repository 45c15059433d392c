"""Issue 17 end to end: the patient, on a phone, writes to the care team; the therapist's bell shows the
new message; the therapist answers and files the message to the chart; the patient sees the reply. Every
page says messages are not monitored in real time and shows the crisis resources."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from kapclinic.conversations.models import Message, Thread
from kapclinic.notes.models import Note
from kapclinic.testing.factories import make_clinic, make_patient, make_staff

PASSWORD = "test-password-123"


def _world() -> dict[str, Any]:
    from kapclinic.accounts.models import User

    clinic = make_clinic("Harbor", phone="(555) 010-2040")
    therapist = make_staff(clinic, "therapist", name="Theo Therapist", email="theo@p.test")
    user = User.objects.create_user(email="robin@p.test", full_name="Robin Demo", password=PASSWORD)
    patient = make_patient(
        clinic, user=user, care_team=[therapist], legal_first_name="Robin", pathway_status="active"
    )
    return {"patient": patient, "therapist": therapist}


def test_patient_messages_therapist_answers_and_files_to_chart(
    phone_page: Any, page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    w = _world()

    # 1. The patient, on a phone, opens Messages from the portal menu and writes.
    login(phone_page, "robin@p.test")
    phone_page.get_by_role("link", name="Messages", exact=True).click()
    expect(phone_page.get_by_role("heading", name="Messages with your care team")).to_be_visible()
    expect(phone_page.get_by_text("Messages are not monitored in real time.")).to_be_visible()
    expect(phone_page.get_by_role("heading", name="Not monitored in real time")).to_be_visible()
    expect(phone_page.get_by_text("48 hours")).to_be_visible()
    phone_page.get_by_label("Subject").fill("Sleep since Tuesday")
    text = "I have been sleeping badly since the session. <b>Is that usual?</b>"
    phone_page.get_by_label("Your message").fill(text)
    width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the message page scrolls sideways on a phone ({width}px)"
    axe_check(phone_page, "messages-compose-phone")
    shot(phone_page, "messages-1-compose-phone")
    with phone_page.expect_navigation():
        phone_page.get_by_role("button", name="Send message").click()
    expect(phone_page.get_by_text("Sent to your care team.")).to_be_visible()
    expect(phone_page.get_by_text("Is that usual?</b>")).to_be_visible()  # shown as typed, not as markup
    thread = Thread.objects.get()
    assert thread.awaiting_since is not None

    # 2. The therapist sees it in Messages, answers, and files the patient's message to the chart.
    login(page, "theo@p.test")
    # The bell in the header shows the new message (filled by its htmx poll) and links to it.
    bell = page.locator("#bell")
    expect(bell).to_contain_text("1 new")
    shot(page, "messages-2a-bell", full_page=False)
    bell.click()
    expect(page.get_by_role("heading", name="Notifications")).to_be_visible()
    item = page.get_by_role("link", name="New message: Robin Synthetic · Sleep since Tuesday")
    expect(item).to_be_visible()
    axe_check(page, "notifications")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Messages").click()
    expect(page.get_by_role("heading", name="Messages", exact=True)).to_be_visible()
    expect(page.get_by_text("Unread", exact=True)).to_be_visible()
    axe_check(page, "messages-inbox")
    shot(page, "messages-2-inbox")
    page.get_by_role("link", name="Sleep since Tuesday").click()
    expect(page.get_by_text("I have been sleeping badly since the session.")).to_be_visible()
    expect(page.get_by_text("not monitored in real time")).to_be_visible()
    page.get_by_label("Your reply").fill("Thank you for telling us. This is common; let's talk on Friday.")
    with page.expect_navigation():
        page.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_text("Reply sent.")).to_be_visible()
    axe_check(page, "messages-thread-staff")
    shot(page, "messages-3-thread-staff")
    with page.expect_navigation():
        page.get_by_role("button", name="File to chart").first.click()
    expect(page.get_by_text("A draft note quoting the message was added to the chart")).to_be_visible()
    first = Message.objects.filter(from_patient=True).get()
    assert first.note_id is not None
    note = Note.objects.get(pk=first.note_id)
    assert "sleeping badly" in note.sections[0]["text"] and note.patient_id == w["patient"].pk

    # 3. The patient sees the reply.
    phone_page.get_by_role("link", name="Messages", exact=True).click()
    expect(phone_page.get_by_text("New reply")).to_be_visible()
    phone_page.get_by_role("link", name="Sleep since Tuesday").click()
    expect(phone_page.get_by_text("let's talk on Friday")).to_be_visible()
    expect(phone_page.get_by_role("heading", name="Not monitored in real time")).to_be_visible()
    axe_check(phone_page, "messages-thread-phone")
    shot(phone_page, "messages-4-reply-phone")
