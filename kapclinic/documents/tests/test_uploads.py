"""Chart documents (issue 16): uploads checked by content, refused with a sentence and nothing stored,
served only through the policy (front desk: administrative documents only), audited on every view, and
the portal's upload queue."""

from __future__ import annotations

import html
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from kapclinic.audit.models import AuditEvent
from kapclinic.core.errors import DomainError
from kapclinic.documents import services
from kapclinic.documents.models import Document, Status
from kapclinic.documents.testing import add_document, tiny_jpeg, tiny_pdf, tiny_png
from kapclinic.documents.tests.conftest import stored_files
from kapclinic.testing.factories import actor_for, make_patient

pytestmark = pytest.mark.django_db

SVG_WITH_SCRIPT = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'


def upload_url(world: Any) -> str:
    return reverse("documents:patient", kwargs={"patient_id": world.patient.pk})


def post_file(client: Any, url: str, data: bytes, name: str, category: str = "lab_result") -> Any:
    f = SimpleUploadedFile(name, data, content_type="application/pdf")
    return client.post(url, {"file": f, "category": category, "title": ""})


def zip_bomb() -> bytes:
    """A small archive that unpacks to 64 MB of zeros (never unpacked by the code under test)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("bomb.bin", b"\0" * (64 * 1024 * 1024))
    return out.getvalue()


def test_staff_upload_is_stored_under_a_random_name_and_audited(world: Any, client: Any, store: Path) -> None:
    client.force_login(world.prescriber)
    response = post_file(client, upload_url(world), tiny_pdf(), "City Hospital labs.pdf")
    assert response.status_code == 302
    doc = Document.objects.get()
    assert (doc.name, doc.content_type, doc.status, doc.category) == (
        "City Hospital labs.pdf",
        "application/pdf",
        Status.FILED,
        "lab_result",
    )
    files = stored_files(store)
    assert len(files) == 1 and "City" not in files[0].name and files[0].suffix == ".pdf"
    assert files[0].read_bytes() == tiny_pdf()
    assert (
        AuditEvent.objects.filter(action="create", object_id=str(doc.pk), patient=world.patient).count() == 1
    )


@pytest.mark.parametrize(
    ("data", "name", "sentence"),
    [
        (tiny_png(), "report.pdf", "named like a PDF but its content is a PNG image"),
        (b"Just some text, not a PDF at all.", "report.pdf", "named like a PDF but its content is of a type"),
        (SVG_WITH_SCRIPT, "drawing.svg", "is not a PDF, PNG or JPEG file"),
        (SVG_WITH_SCRIPT, "photo.png", "its content is an SVG or XML drawing"),
        (b"<html><script>alert(1)</script></html>", "page.pdf", "its content is a web page"),
        (zip_bomb(), "records.pdf", "its content is a compressed archive"),
        (b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", "IMG_0001.heic", "HEIC photos are not accepted"),
        (b"II*\0" + b"\0" * 100, "scan.tiff", "TIFF files are not accepted"),
        (b"%PDF-1.7\n garbage that is not a PDF body", "broken.pdf", "cannot be opened as one"),
        (tiny_jpeg()[:40], "photo.jpg", "cannot be opened as one"),
        (b"", "empty.pdf", "The file is empty."),
    ],
)
def test_bad_files_are_refused_with_a_sentence_and_nothing_is_stored(
    world: Any, client: Any, store: Path, data: bytes, name: str, sentence: str
) -> None:
    client.force_login(world.prescriber)
    before = AuditEvent.objects.filter(action="create").count()
    response = post_file(client, upload_url(world), data, name)
    assert response.status_code == 400
    assert sentence in html.unescape(response.content.decode())
    assert not Document.objects.exists()
    assert stored_files(store) == []
    assert AuditEvent.objects.filter(action="create").count() == before


def test_oversized_file_is_refused(world: Any, client: Any, store: Path, settings: Any) -> None:
    settings.DOCUMENT_MAX_MB = 1
    client.force_login(world.prescriber)
    big = tiny_pdf() + b"\n%" + b"x" * (1024 * 1024)
    response = post_file(client, upload_url(world), big, "big.pdf")
    assert response.status_code == 400
    assert "the largest file accepted is 1 MB" in html.unescape(response.content.decode())
    assert not Document.objects.exists() and stored_files(store) == []


def test_a_huge_image_is_refused(world: Any, store: Path) -> None:
    from PIL import Image

    out = io.BytesIO()
    Image.new("1", (9000, 9000)).save(out, format="PNG")
    with pytest.raises(DomainError, match="million pixels accepted"):
        add_document(
            actor_for(world.nurse, world.clinic),
            world.patient,
            out.getvalue(),
            "x.png",
            category="lab_result",
        )
    assert stored_files(store) == []


@pytest.mark.parametrize("name", ["../../etc/passwd.pdf", "..\\..\\boot.pdf", "scans/id.pdf", "a\x00b.pdf"])
def test_a_path_in_the_file_name_is_refused(world: Any, store: Path, name: str) -> None:
    with pytest.raises(DomainError, match=r"folder path|control characters"):
        add_document(
            actor_for(world.prescriber, world.clinic), world.patient, tiny_pdf(), name, category="lab_result"
        )
    assert not Document.objects.exists() and stored_files(store) == []


def test_a_path_posted_by_a_browser_never_reaches_the_disk(world: Any, client: Any, store: Path) -> None:
    """Django's upload parser keeps only the last part of a posted file name before the app sees it;
    whatever it keeps, the file is stored under a random name inside the documents storage."""
    client.force_login(world.prescriber)
    response = post_file(client, upload_url(world), tiny_pdf(), "../../../../tmp/evil.pdf")
    assert response.status_code == 302
    doc = Document.objects.get()
    assert doc.name == "evil.pdf"
    [path] = stored_files(store)
    assert path.is_relative_to(store) and "evil" not in path.name


def test_no_orphan_file_when_the_row_cannot_be_written(world: Any, store: Path, monkeypatch: Any) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database unavailable")

    monkeypatch.setattr(Document, "save", fail)
    with pytest.raises(RuntimeError):
        add_document(
            actor_for(world.prescriber, world.clinic),
            world.patient,
            tiny_pdf(),
            "a.pdf",
            category="lab_result",
        )
    assert stored_files(store) == []


@pytest.mark.parametrize("portal", [False, True], ids=["staff", "portal"])
def test_no_orphan_file_when_the_work_fails_after_the_row_was_written(
    world: Any, store: Path, monkeypatch: Any, portal: bool
) -> None:
    """The file and its row are written, then the audit event fails: the row is rolled back and the
    file removed (documents.services.removed_on_failure)."""

    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit unavailable")

    monkeypatch.setattr(services, "record_event", fail)
    pdf = tiny_pdf()
    upload = services.Upload(io.BytesIO(pdf), "a.pdf", len(pdf))
    patient = actor_for(world.patient_user, world.clinic)
    staff = actor_for(world.prescriber, world.clinic)
    with pytest.raises(RuntimeError):
        if portal:
            services.portal_upload(patient, world.patient, upload=upload, category="lab_result", note="")
        else:
            services.upload(staff, world.patient, upload=upload, category="lab_result", title="")
    assert stored_files(store) == [] and not Document.objects.exists()


def test_another_clinics_document_is_404(world: Any, client: Any, store: Path) -> None:
    mine = add_document(
        actor_for(world.prescriber, world.clinic), world.patient, tiny_pdf(), "a.pdf", category="id_card"
    )
    theirs_patient = world.other_clinic_patient
    theirs = add_document(
        actor_for(world.other_clinic_staff, world.other_clinic),
        theirs_patient,
        tiny_pdf(),
        "b.pdf",
        category="id_card",
    )
    client.force_login(world.other_clinic_staff)
    for name in ("documents:detail", "documents:download"):
        url = reverse(name, kwargs={"patient_id": world.patient.pk, "document_id": mine.pk})
        assert client.get(url).status_code == 404
    client.force_login(world.prescriber)
    for patient_id in (world.patient.pk, theirs_patient.pk):
        url = reverse("documents:download", kwargs={"patient_id": patient_id, "document_id": theirs.pk})
        assert client.get(url).status_code == 404
    # another patient's document of the same clinic, named under this patient: 404 too
    other = make_patient(world.clinic, care_team=[world.prescriber])
    url = reverse("documents:download", kwargs={"patient_id": other.pk, "document_id": mine.pk})
    assert client.get(url).status_code == 404


def test_download_is_an_attachment_with_nosniff_and_audited(world: Any, client: Any, store: Path) -> None:
    doc = add_document(
        actor_for(world.prescriber, world.clinic), world.patient, tiny_png(), "card.png", category="id_card"
    )
    client.force_login(world.front_desk)
    url = reverse("documents:download", kwargs={"patient_id": world.patient.pk, "document_id": doc.pk})
    before = AuditEvent.objects.count()
    response = client.get(url)
    assert response.status_code == 200
    assert (
        response["Content-Disposition"].startswith("attachment;")
        and "card.png" in response["Content-Disposition"]
    )
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == tiny_png()
    events = list(AuditEvent.objects.filter(pk__gt=0).order_by("-pk")[: AuditEvent.objects.count() - before])
    assert [(e.action, e.object_id) for e in events] == [("view", str(doc.pk))]


def test_front_desk_sees_administrative_documents_only(world: Any, client: Any, store: Path) -> None:
    actor = actor_for(world.prescriber, world.clinic)
    card = add_document(
        actor, world.patient, tiny_png(), "card.png", category="id_card", title="Insurance card"
    )
    labs = add_document(
        actor, world.patient, tiny_pdf(), "labs.pdf", category="lab_result", title="Liver panel"
    )
    client.force_login(world.front_desk)
    page = client.get(upload_url(world)).content.decode()
    assert "Insurance card" in page and "Liver panel" not in page
    chart = client.get(reverse("patients:chart", kwargs={"patient_id": world.patient.pk})).content.decode()
    assert "Insurance card" in chart and "Liver panel" not in chart
    for name in ("documents:detail", "documents:download"):
        assert (
            client.get(
                reverse(name, kwargs={"patient_id": world.patient.pk, "document_id": labs.pk})
            ).status_code
            == 403
        )
        assert (
            client.get(
                reverse(name, kwargs={"patient_id": world.patient.pk, "document_id": card.pk})
            ).status_code
            == 200
        )
    # the upload form offers front desk the administrative categories only; a clinical one is refused
    assert 'value="lab_result"' not in page
    response = post_file(client, upload_url(world), tiny_pdf(), "x.pdf", category="lab_result")
    assert response.status_code == 400 and Document.objects.count() == 2
    client.force_login(world.nurse)
    assert "Liver panel" in client.get(upload_url(world)).content.decode()


def test_portal_upload_waits_in_the_queue_until_filed(world: Any, client: Any, store: Path) -> None:
    client.force_login(world.patient_user)
    f = SimpleUploadedFile("outside.pdf", tiny_pdf(), content_type="application/pdf")
    response = client.post(
        reverse("documents:my"), {"file": f, "category": "outside_record", "note": "From Dr A"}
    )
    assert response.status_code == 302
    doc = Document.objects.get()
    assert (doc.status, doc.source, doc.note) == (Status.PENDING, "portal", "From Dr A")
    assert "Waiting for the clinic" in client.get(reverse("documents:my")).content.decode()
    # front desk does not see a clinical upload in the queue; the therapist on the care team does
    client.force_login(world.front_desk)
    assert "outside.pdf" not in client.get(reverse("documents:queue")).content.decode()
    client.force_login(world.therapist)
    assert "outside.pdf" in client.get(reverse("documents:queue")).content.decode()
    kw = {"patient_id": world.patient.pk, "document_id": doc.pk}
    response = client.post(
        reverse("documents:file", kwargs=kw),
        {"category": "outside_record", "title": "Dr A letter", "version": doc.version},
    )
    assert response.status_code == 302
    doc.refresh_from_db()
    assert (doc.status, doc.title, doc.filed_by) == (Status.FILED, "Dr A letter", world.therapist)
    client.force_login(world.patient_user)
    assert "Filed in my chart" in client.get(reverse("documents:my")).content.decode()


def test_rejecting_an_upload_erases_its_file_and_tells_the_patient(
    world: Any, client: Any, store: Path, django_capture_on_commit_callbacks: Any
) -> None:
    doc = add_document(
        actor_for(world.patient_user, world.clinic),
        world.patient,
        tiny_jpeg(),
        "id.jpg",
        category="id_card",
        portal=True,
    )
    assert len(stored_files(store)) == 1
    client.force_login(world.front_desk)
    assert "id.jpg" in client.get(reverse("documents:queue")).content.decode()
    kw = {"patient_id": world.patient.pk, "document_id": doc.pk}
    response = client.post(reverse("documents:reject", kwargs=kw), {"reason": "", "version": doc.version})
    assert response.status_code == 302 and Document.objects.get().status == Status.PENDING
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("documents:reject", kwargs=kw),
            {"reason": "The photo is blurred; please send it again.", "version": doc.version},
        )
    assert response.status_code == 302
    doc.refresh_from_db()
    assert doc.status == Status.REJECTED and not doc.file
    assert stored_files(store) == []
    client.force_login(world.patient_user)
    assert "The photo is blurred" in client.get(reverse("documents:my")).content.decode()


def test_portal_upload_bad_file_is_refused(world: Any, client: Any, store: Path) -> None:
    client.force_login(world.patient_user)
    f = SimpleUploadedFile("record.pdf", zip_bomb(), content_type="application/pdf")
    response = client.post(reverse("documents:my"), {"file": f, "category": "outside_record"})
    assert response.status_code == 400
    assert "compressed archive" in html.unescape(response.content.decode())
    assert not Document.objects.exists() and stored_files(store) == []


def test_a_missing_file_is_a_sentence_not_an_error(world: Any, client: Any, store: Path) -> None:
    doc = add_document(
        actor_for(world.prescriber, world.clinic), world.patient, tiny_pdf(), "a.pdf", category="id_card"
    )
    for path in stored_files(store):
        path.unlink()
    client.force_login(world.prescriber)
    kw = {"patient_id": world.patient.pk, "document_id": doc.pk}
    response = client.get(reverse("documents:download", kwargs=kw), follow=True)
    assert "missing from the document storage" in response.content.decode()


def test_the_patient_reads_who_opened_their_documents(world: Any, client: Any, store: Path) -> None:
    doc = add_document(
        actor_for(world.prescriber, world.clinic), world.patient, tiny_pdf(), "a.pdf", category="id_card"
    )
    client.force_login(world.front_desk)
    client.get(reverse("documents:detail", kwargs={"patient_id": world.patient.pk, "document_id": doc.pk}))
    client.force_login(world.patient_user)
    assert "your documents" in client.get(reverse("portal:access_log")).content.decode()


def test_filing_is_refused_when_stale_or_beyond_the_role(world: Any, client: Any, store: Path) -> None:
    doc = add_document(
        actor_for(world.patient_user, world.clinic),
        world.patient,
        tiny_pdf(),
        "form.pdf",
        category="admin_form",
        portal=True,
    )
    kw = {"patient_id": world.patient.pk, "document_id": doc.pk}
    client.force_login(world.front_desk)
    # front desk cannot file it as clinical data (the category is not offered, and the service refuses it)
    with pytest.raises(DomainError, match="a clinician files clinical documents"):
        services.file_document(
            actor_for(world.front_desk, world.clinic),
            doc,
            expected_version=doc.version,
            category="lab_result",
            title="",
        )
    response = client.post(
        reverse("documents:file", kwargs=kw), {"category": "lab_result", "version": doc.version}, follow=True
    )
    assert Document.objects.get().status == Status.PENDING
    # a stale version (someone else changed it since the page was opened) is refused with the sentence
    Document.objects.filter(pk=doc.pk).update(version=doc.version + 1)
    response = client.post(
        reverse("documents:file", kwargs=kw), {"category": "admin_form", "version": doc.version}, follow=True
    )
    assert "Someone else changed this record" in html.unescape(response.content.decode())
    assert Document.objects.get().status == Status.PENDING
