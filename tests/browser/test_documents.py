"""Issue 16, paper: front desk files an ID card into a chart and opens it; the patient sends an outside
record from the portal on a phone and a clinician files it; the clinician downloads a dosing-session
record as PDF (the patient's name and record number on every page)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader

from kapclinic.documents.models import Document, Status
from kapclinic.documents.testing import session_with_monitoring, tiny_pdf, tiny_png
from kapclinic.testing.factories import make_clinic, make_patient, make_staff
from tests.browser.steps import sign_out

PASSWORD = "test-password-123"


@pytest.fixture
def store(settings: Any, tmp_path: Path) -> Path:
    root = tmp_path / "documents"
    settings.STORAGES = {
        **settings.STORAGES,
        "documents": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": root},
        },
    }
    return root


def _world() -> dict[str, Any]:
    from kapclinic.accounts.models import User

    clinic = make_clinic("Harbor", phone="(555) 010-2040", address="200 Example Street")
    prescriber = make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="priya@d.test")
    nurse = make_staff(clinic, "nurse", name="Nadia Nurse", email="nadia@d.test")
    make_staff(clinic, "front_desk", name="Frankie Frontdesk", email="frankie@d.test")
    user = User.objects.create_user(email="robin@d.test", full_name="Robin Demo", password=PASSWORD)
    patient = make_patient(
        clinic, user=user, care_team=[prescriber, nurse], legal_first_name="Robin", pathway_status="active"
    )
    session = session_with_monitoring(patient, prescriber, nurse, clinic)
    return {"patient": patient, "session": session}


def test_chart_documents_portal_queue_and_session_pdf(
    phone_page: Any, page: Any, server: str, login: Any, axe_check: Any, shot: Any, store: Path
) -> None:
    w = _world()
    patient = w["patient"]

    # 1. Front desk adds the patient's insurance card to the chart from the chart's Documents panel.
    login(page, "frankie@d.test")
    page.goto(f"{server}/patients/{patient.pk}/")
    documents = page.get_by_role("region", name="Documents")
    documents.get_by_role("link", name="All documents and upload").click()
    expect(page.get_by_role("heading", name=f"Documents of {patient.display_name}")).to_be_visible()
    expect(page.get_by_text("Your role sees administrative documents only")).to_be_visible()
    page.locator("input[type=file]").set_input_files(
        {"name": "insurance-card.png", "mimeType": "image/png", "buffer": tiny_png()}
    )
    page.get_by_label("What is it?").select_option("id_card")
    page.get_by_label("Title").fill("Insurance card (front)")
    page.get_by_role("button", name="Upload to the chart").click()
    expect(page.get_by_text("“Insurance card (front)” is filed in the chart.")).to_be_visible()
    axe_check(page, "documents-detail")
    shot(page, "documents-detail")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download insurance-card.png").click()
    assert download.value.suggested_filename == "insurance-card.png"
    # A file that is not what its name says is refused with a sentence.
    page.goto(f"{server}/documents/patients/{patient.pk}/")
    page.locator("input[type=file]").set_input_files(
        {"name": "card.pdf", "mimeType": "application/pdf", "buffer": tiny_png()}
    )
    page.get_by_role("button", name="Upload to the chart").click()
    expect(page.get_by_text("“card.pdf” is named like a PDF but its content is a PNG image")).to_be_visible()
    axe_check(page, "documents-upload-refused")
    shot(page, "documents-upload-refused")
    sign_out(page)

    # 2. On her phone, the patient sends an outside record from the portal.
    login(phone_page, "robin@d.test")
    phone_page.get_by_role("link", name="Documents").click()
    expect(phone_page.get_by_role("heading", name="Send a document to the clinic")).to_be_visible()
    phone_page.get_by_label("File from your phone or computer").set_input_files(
        {"name": "hospital-summary.pdf", "mimeType": "application/pdf", "buffer": tiny_pdf("Synthetic")}
    )
    phone_page.get_by_label("A record from another doctor or hospital").check()
    phone_page.get_by_label("A note for the clinic (optional)").fill("From my stay last year.")
    phone_page.get_by_role("button", name="Send to the clinic").click()
    expect(phone_page.get_by_text("Sent. The clinic will file it in your chart.")).to_be_visible()
    expect(phone_page.get_by_text("Waiting for the clinic")).to_be_visible()
    width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the documents page scrolls sideways on a phone ({width}px)"
    axe_check(phone_page, "portal-documents-phone")
    shot(phone_page, "portal-documents-phone")

    # 3. The prescriber files it from "Uploads to file", then downloads the session record as PDF.
    login(page, "priya@d.test")
    page.get_by_role("link", name="Uploads to file").click()
    expect(page.get_by_role("heading", name="Uploads to file")).to_be_visible()
    axe_check(page, "documents-queue")
    page.get_by_role("link", name="Outside medical record").click()
    expect(page.get_by_text("From my stay last year.")).to_be_visible()
    page.get_by_label("Title").fill("Hospital discharge summary")
    page.get_by_role("button", name="File into the chart").click()
    expect(page.get_by_text("“Hospital discharge summary” is filed in the chart.")).to_be_visible()
    doc = Document.objects.get(name="hospital-summary.pdf")
    assert doc.status == Status.FILED

    page.goto(f"{server}/patients/{patient.pk}/")
    page.get_by_role("region", name="Documents").get_by_role("link", name="Print records (PDF)").click()
    expect(page.get_by_role("heading", name=f"Print records of {patient.display_name}")).to_be_visible()
    axe_check(page, "documents-records")
    shot(page, "documents-records")
    with page.expect_download() as download:
        page.get_by_role("link", name="Session record").first.click()
    path = download.value.path()
    assert download.value.suggested_filename.endswith(".pdf")
    texts = [p.extract_text() for p in PdfReader(io.BytesIO(Path(path).read_bytes())).pages]
    assert all(patient.mrn in t and patient.legal_name in t for t in texts)
    assert "Dosing session record" in texts[0] and "LOT-SYN-1" in "\n".join(texts)
