"""Issue 17 in the browser: a patient on a phone sends two files with a message (a pair where one file's
content lies about its name is refused first, with a sentence naming that file), the therapist sees both
and downloads one through the thread; the patient records consent to texts in the portal, is refused a
number that is not E.164, and withdraws consent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from kapclinic.conversations.models import Attachment, Thread
from kapclinic.documents.testing import tiny_pdf, tiny_png
from kapclinic.messaging.models import SmsPreference
from kapclinic.testing.factories import make_clinic, make_patient, make_staff

PASSWORD = "test-password-123"


@pytest.fixture
def store(settings: Any, tmp_path: Path) -> Path:
    root = tmp_path / "documents"
    settings.STORAGES = {
        **settings.STORAGES,
        "documents": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": root, "base_url": None},
        },
    }
    return root


def _world() -> dict[str, Any]:
    from kapclinic.accounts.models import User

    clinic = make_clinic("Harbor", phone="(555) 010-2040")
    therapist = make_staff(clinic, "therapist", name="Theo Therapist", email="theo@p.test")
    user = User.objects.create_user(email="robin@p.test", full_name="Robin Demo", password=PASSWORD)
    patient = make_patient(
        clinic, user=user, care_team=[therapist], legal_first_name="Robin", pathway_status="active"
    )
    return {"patient": patient, "therapist": therapist}


def _no_sideways(page: Any, what: str) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{what} scrolls sideways on a phone ({width}px)"


def test_patient_sends_a_file_the_therapist_downloads_it(
    phone_page: Any, page: Any, server: str, login: Any, axe_check: Any, shot: Any, store: Path
) -> None:
    _world()
    login(phone_page, "robin@p.test")
    phone_page.get_by_role("link", name="Messages", exact=True).click()
    phone_page.get_by_label("Subject").fill("My blood test")
    phone_page.get_by_label("Your message").fill("Here are the results from my doctor.")
    # Two files, the second a picture named like a PDF: refused with a sentence naming it, nothing kept,
    # what was typed is still there.
    files = phone_page.get_by_label("Attach files (optional)")
    files.set_input_files(
        files=[
            {"name": "results.pdf", "mimeType": "application/pdf", "buffer": tiny_pdf("Synthetic labs")},
            {"name": "scan.pdf", "mimeType": "application/pdf", "buffer": tiny_png()},
        ]
    )
    with phone_page.expect_navigation():
        phone_page.get_by_role("button", name="Send message").click()
    refused = "Attachment 2 of 2: “scan.pdf” is named like a PDF but its content is a PNG image"
    expect(phone_page.get_by_text(refused)).to_be_visible()
    expect(phone_page.get_by_label("Your message")).to_have_value("Here are the results from my doctor.")
    assert not Thread.objects.exists() and not Attachment.objects.exists()
    assert not [p for p in store.rglob("*") if p.is_file()]
    _no_sideways(phone_page, "the refused message form")
    axe_check(phone_page, "message-file-refused-phone")
    shot(phone_page, "message-files-1-refused-phone")

    files.set_input_files(
        files=[
            {"name": "results.pdf", "mimeType": "application/pdf", "buffer": tiny_pdf("Synthetic labs")},
            {"name": "rash.png", "mimeType": "image/png", "buffer": tiny_png()},
        ]
    )
    with phone_page.expect_navigation():
        phone_page.get_by_role("button", name="Send message").click()
    expect(phone_page.get_by_text("Sent to your care team.")).to_be_visible()
    expect(phone_page.get_by_role("link", name="results.pdf")).to_be_visible()
    expect(phone_page.get_by_role("link", name="rash.png")).to_be_visible()
    assert Attachment.objects.count() == 2
    _no_sideways(phone_page, "the thread with two files")
    axe_check(phone_page, "message-file-sent-phone")
    shot(phone_page, "message-files-2-sent-phone")

    login(page, "theo@p.test")
    thread = Thread.objects.get()
    page.goto(f"{server}/conversations/patient/{thread.patient_id}/{thread.pk}/")
    expect(page.get_by_text("Here are the results from my doctor.")).to_be_visible()
    expect(page.get_by_text("(PDF, ")).to_be_visible()
    expect(page.get_by_text("(PNG image, ")).to_be_visible()
    axe_check(page, "message-file-staff-thread")
    shot(page, "message-files-3-staff-thread")
    with page.expect_download() as info:
        page.get_by_role("link", name="results.pdf").click()
    download = info.value
    assert download.suggested_filename == "results.pdf"
    assert Path(download.path()).read_bytes() == tiny_pdf("Synthetic labs")


def test_patient_consents_to_texts_and_withdraws(
    phone_page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    w = _world()
    login(phone_page, "robin@p.test")
    phone_page.get_by_role("link", name="Reminders by text message").click()
    expect(phone_page.get_by_role("heading", name="Reminders by text message")).to_be_visible()
    expect(phone_page.get_by_text("The clinic does not text you.")).to_be_visible()
    phone_page.get_by_label("Mobile number").fill("202 555 0142")
    phone_page.get_by_label("Send my appointment reminders and questionnaire links by text").check()
    phone_page.get_by_label("I agree to receive these texts").check()
    with phone_page.expect_navigation():
        phone_page.get_by_role("button", name="Save").click()
    expect(
        phone_page.get_by_text("with + and your country code, e.g. +1 202 555 0142 (this is")
    ).to_be_visible()
    assert not SmsPreference.objects.exists()
    axe_check(phone_page, "texts-refused-phone")
    phone_page.get_by_label("Mobile number").fill("+1 202 555 0142")
    with phone_page.expect_navigation():
        phone_page.get_by_role("button", name="Save").click()
    expect(phone_page.get_by_text("Saved. You will get texts too.")).to_be_visible()
    expect(phone_page.get_by_text("You get texts")).to_be_visible()
    expect(phone_page.get_by_text("(by you)")).to_be_visible()
    assert SmsPreference.objects.get(patient=w["patient"]).may_text
    _no_sideways(phone_page, "the texts page")
    axe_check(phone_page, "texts-consented-phone")
    shot(phone_page, "texts-1-consented-phone")

    with phone_page.expect_navigation():
        phone_page.get_by_role("button", name="Withdraw my consent to texts").click()
    expect(phone_page.get_by_text("Consent withdrawn. The clinic will not text you.")).to_be_visible()
    expect(phone_page.get_by_text("you withdrew your consent here")).to_be_visible()
    pref = SmsPreference.objects.get(patient=w["patient"])
    assert not pref.may_text and pref.consent_at is not None and pref.stop_source == "portal"
    axe_check(phone_page, "texts-withdrawn-phone")
    shot(phone_page, "texts-2-withdrawn-phone")
