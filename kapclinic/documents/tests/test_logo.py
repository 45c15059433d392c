"""Issue 16: the clinic's logo on its PDFs. An admin uploads a PNG or JPEG (checked by content with the
chart documents' validation, a small size limit); superbills, statements and clinical records print it
(read back from the PDF with pypdf, and seen in the rendered HTML)."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.template.loader import render_to_string
from django.urls import reverse
from pypdf import PdfReader

from kapclinic.audit.models import AuditEvent
from kapclinic.billing import documents as billing_documents
from kapclinic.billing import selectors as billing_selectors
from kapclinic.core.pdf import render_pdf
from kapclinic.documents import logo, records
from kapclinic.documents.models import ClinicLogo
from kapclinic.documents.services import Upload
from kapclinic.documents.testing import signed_consent, tiny_jpeg, tiny_pdf, tiny_png
from kapclinic.documents.tests.conftest import stored_files
from kapclinic.testing.factories import actor_for

pytestmark = pytest.mark.django_db

URL = "documents:logo"


def _post(client: Any, data: bytes, name: str) -> Any:
    return client.post(reverse(URL), {"action": "upload", "file": SimpleUploadedFile(name, data)})


def _images(pdf: bytes) -> list[Any]:
    return list(PdfReader(io.BytesIO(pdf)).pages[0].images)


def _set_logo(world: Any, data: bytes | None = None, name: str = "logo.png") -> ClinicLogo:
    data = data or tiny_png((120, 40), (10, 120, 80))
    return logo.logo_set(actor_for(world.admin, world.clinic), Upload(io.BytesIO(data), name, len(data)))


def test_admin_uploads_a_logo_kept_in_the_documents_storage_and_audited(
    world: Any, client: Any, store: Path, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(world.admin)
    details = client.get(reverse("accounts:clinic_details")).content.decode()
    assert reverse(URL) in details
    page = client.get(reverse(URL))
    assert page.status_code == 200 and "No logo" in page.content.decode()
    response = _post(client, tiny_png((120, 40)), "Clinic logo.png")
    assert response.status_code == 302
    row = ClinicLogo.objects.get(clinic=world.clinic)
    assert (row.name, row.content_type) == ("Clinic logo.png", "image/png")
    files = stored_files(store)
    assert len(files) == 1 and "Clinic" not in str(files[0]) and files[0].suffix == ".png"
    assert AuditEvent.objects.filter(action="update", object_type="documents.cliniclogo").exists()
    html = client.get(reverse(URL)).content.decode()
    assert 'src="data:image/png;base64,' in html and "Clinic logo.png" in html
    # Replacing it leaves one file; removing it leaves none.
    with django_capture_on_commit_callbacks(execute=True):  # the old file goes once the new row is in
        assert _post(client, tiny_jpeg((90, 30)), "new.jpg").status_code == 302
    assert [f.suffix for f in stored_files(store)] == [".jpg"]
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(reverse(URL), {"action": "remove"}).status_code == 302
    assert not ClinicLogo.objects.exists() and stored_files(store) == []


@pytest.mark.parametrize(
    ("data", "name", "sentence"),
    [
        (tiny_jpeg(), "logo.png", "named like a PNG image but its content is a JPEG image"),
        (tiny_pdf(), "logo.pdf", "is not a PNG or JPEG file. Upload a PNG or JPEG file."),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>x()</script></svg>', "logo.png", "an SVG"),
        (tiny_png((4200, 10)), "wide.png", "at most 4000 pixels either way"),
    ],
)
def test_a_bad_logo_is_refused_with_a_sentence_and_nothing_is_stored(
    world: Any, client: Any, store: Path, data: bytes, name: str, sentence: str
) -> None:
    client.force_login(world.admin)
    response = _post(client, data, name)
    assert response.status_code == 400 and sentence in response.content.decode()
    assert not ClinicLogo.objects.exists() and stored_files(store) == []


def test_a_logo_over_the_small_size_limit_is_refused(world: Any, client: Any, store: Path) -> None:
    from PIL import Image

    out = io.BytesIO()
    noise = bytes(i * 7919 % 251 for i in range(500 * 500 * 3))  # compresses badly: about 750 KB
    Image.frombytes("RGB", (500, 500), noise).save(out, format="PNG", compress_level=0)
    assert len(out.getvalue()) > logo.LOGO_MAX_BYTES
    client.force_login(world.admin)
    response = _post(client, out.getvalue(), "big.png")
    assert response.status_code == 400 and "the largest file accepted is" in response.content.decode()
    assert "Save the logo smaller." in response.content.decode()
    assert not ClinicLogo.objects.exists() and stored_files(store) == []


def test_only_admins_change_the_logo(world: Any, client: Any, store: Path) -> None:
    client.force_login(world.prescriber)
    assert _post(client, tiny_png(), "logo.png").status_code == 403
    assert not ClinicLogo.objects.exists()


def test_superbill_statement_and_clinical_record_print_the_logo(world: Any, store: Path) -> None:
    patient = world.patient
    today = dt.date(2026, 3, 2)
    without = billing_documents.superbill_pdf(billing_selectors.superbill(patient, today, today))
    assert _images(without) == []

    _set_logo(world)
    superbill = billing_documents.superbill_pdf(billing_selectors.superbill(patient, today, today))
    statement = billing_documents.statement_pdf(patient, today, today)
    consent = records.consent_record(signed_consent(patient))
    record = render_pdf(consent.template, consent.context)
    for pdf in (superbill, statement, record):
        images = _images(pdf)
        assert len(images) == 1
        assert images[0].image.size == (120, 40)  # the logo itself, decoded back out of the PDF
    html = render_to_string(consent.template, {**consent.context, "paper": "A4"})
    assert '<img class="logo" src="data:image/png;base64,' in html
    assert f'alt="{world.clinic.name} logo"' in html
    # Another clinic's documents do not print it.
    other = records.consent_record(signed_consent(world.other_clinic_patient))
    assert _images(render_pdf(other.template, other.context)) == []


def test_the_renderer_takes_only_png_or_jpeg_inline_images(tmp_path: Path, settings: Any) -> None:
    template = (
        '{% extends "pdf/base.html" %}{% block body %}'
        '<img src="data:image/svg+xml;base64,PHN2Zy8+" alt="x"><p>still renders</p>{% endblock %}'
    )
    (tmp_path / "t.html").write_text(template)
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}]
    pdf = render_pdf("t.html", {})
    assert "still renders" in PdfReader(io.BytesIO(pdf)).pages[0].extract_text() and _images(pdf) == []


Box = tuple[float, float, float, float]


def _placements(page: Any) -> tuple[list[Box], list[tuple[str, float, float, float]]]:
    """Where a page draws its images ((left, bottom, right, top) in points) and its text runs
    ((text, x, baseline y, glyph height)), read from the content stream with pypdf."""
    boxes: list[Box] = []
    texts: list[tuple[str, float, float, float]] = []

    def before(op: bytes, args: Any, cm: list[float], tm: list[float]) -> None:
        if op == b"Do":  # an image is the unit square mapped by the current matrix
            xs, ys = (cm[4], cm[4] + cm[0]), (cm[5], cm[5] + cm[3])
            boxes.append((min(xs), min(ys), max(xs), max(ys)))

    def text(t: str, cm: list[float], tm: list[float], font: Any, size: float) -> None:
        if t.strip():
            x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
            y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
            texts.append((t.strip(), x, y, abs(size * tm[3] * cm[3])))

    page.extract_text(visitor_operand_before=before, visitor_text=text)
    return boxes, texts


@pytest.mark.parametrize(("paper", "size"), [("Letter", (120, 40)), ("A4", (60, 300))])
def test_the_logo_is_in_the_running_header_of_every_page_clear_of_the_text(
    world: Any, store: Path, paper: Any, size: tuple[int, int]
) -> None:
    """A statement and a signed note long enough for several pages print the logo in the top margin of
    every page (not only the first), no taller than 18 mm, with no text drawn over it."""
    from kapclinic.billing import services as billing
    from kapclinic.billing.models import Method
    from kapclinic.documents.testing import signed_note

    _set_logo(world, tiny_png(size))
    desk = actor_for(world.front_desk, world.clinic)
    for _ in range(30):
        billing.record_payment(desk, world.patient, method=Method.CASH, amount="1.00")
    today = dt.date.today()
    statement = billing_documents.statement_pdf(world.patient, today, today, paper=paper)
    long_addendum = "\n".join(f"Synthetic addendum line {i}." for i in range(1, 121))
    note = records.note_record(
        signed_note(world.patient, world.prescriber, world.clinic, addendum=long_addendum)
    )
    note_pdf = render_pdf(note.template, note.context, paper=paper)

    mm = 72 / 25.4
    for pdf in (statement, note_pdf):
        pages = PdfReader(io.BytesIO(pdf)).pages
        assert len(pages) >= 2
        for number, page in enumerate(pages, start=1):
            assert [i.image.size for i in page.images if i.image] == [size], f"page {number}"
            (box,), texts = _placements(page)
            _left, bottom, right, top = box
            page_top = float(page.mediabox.top)
            assert bottom >= page_top - 32 * mm, f"page {number}: the logo reaches into the text area"
            assert top - bottom <= 18 * mm + 0.1
            over = [
                t
                for t, x, y, h in texts
                if x < right and y < top and y + h > bottom  # a run starting left of the logo's right edge
            ]
            assert over == [], f"page {number}: text over the logo: {over}"
            under = [t for t, x, y, h in texts if y + h < bottom and x < right]
            assert under, f"page {number}: no text under the logo"
