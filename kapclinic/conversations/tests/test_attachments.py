"""Issue 17: files sent with secure messages follow the chart's document rules (documents/validation.py
and documents/services.py, reused): type by content, the size limit setting, the documents storage
under a random name, opened only through the thread's policy, audited on every view."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from kapclinic.audit.models import AuditEvent
from kapclinic.conversations import services
from kapclinic.conversations.models import Attachment, Message, Thread, ThreadKind
from kapclinic.documents.services import Upload
from kapclinic.documents.testing import tiny_pdf, tiny_png
from kapclinic.testing.factories import actor_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def store(settings: Any, tmp_path: Path) -> Path:
    """The documents storage in a fresh folder, so a test sees every file written (or not)."""
    root = tmp_path / "documents"
    settings.STORAGES = {
        **settings.STORAGES,
        "documents": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": root, "base_url": None},
        },
    }
    return root


def files_in(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _send(client: Any, world: Any, data: bytes, name: str, content_type: str = "application/pdf") -> Any:
    client.force_login(world.patient_user)
    upload = SimpleUploadedFile(name, data, content_type=content_type)
    return client.post(
        reverse("conversations:my"), {"subject": "My results", "body": "Here they are", "file": upload}
    )


def _staff_url(world: Any, att: Attachment) -> str:
    return reverse(
        "conversations:attachment",
        kwargs={"patient_id": world.patient.pk, "thread_id": att.message.thread_id, "attachment_id": att.pk},
    )


def test_patient_attaches_a_pdf_kept_under_a_random_name_and_each_view_is_audited(
    world: Any, client: Any, store: Path
) -> None:
    response = _send(client, world, tiny_pdf("Synthetic lab"), "City labs.pdf")
    assert response.status_code == 302
    att = Attachment.objects.select_related("message__thread").get()
    assert (att.name, att.content_type, att.size) == (
        "City labs.pdf",
        "application/pdf",
        len(tiny_pdf("Synthetic lab")),
    )
    files = files_in(store)
    assert len(files) == 1 and "City" not in str(files[0]) and files[0].suffix == ".pdf"
    assert files[0].read_bytes() == tiny_pdf("Synthetic lab")
    assert AuditEvent.objects.filter(
        action="create", object_type="conversations.thread", detail__endswith="attachments=1"
    ).exists()

    # The patient's thread lists it; the link goes through the policy.
    thread_page = client.get(reverse("conversations:my_thread", kwargs={"thread_id": att.message.thread_id}))
    own = reverse(
        "conversations:my_attachment", kwargs={"thread_id": att.message.thread_id, "attachment_id": att.pk}
    )
    assert own in thread_page.content.decode() and "City labs.pdf" in thread_page.content.decode()
    mine = client.get(own)
    assert mine.status_code == 200 and b"".join(mine.streaming_content) == tiny_pdf("Synthetic lab")

    client.force_login(world.therapist)
    page = client.get(
        reverse(
            "conversations:thread",
            kwargs={"patient_id": world.patient.pk, "thread_id": att.message.thread_id},
        )
    )
    assert _staff_url(world, att) in page.content.decode()
    before = AuditEvent.objects.filter(action="view", object_type="conversations.attachment").count()
    for _ in range(2):
        response = client.get(_staff_url(world, att))
        assert response.status_code == 200
        assert response["Content-Disposition"].startswith("attachment")
        assert response["X-Content-Type-Options"] == "nosniff"
        assert b"".join(response.streaming_content) == tiny_pdf("Synthetic lab")
    events = AuditEvent.objects.filter(action="view", object_type="conversations.attachment")
    assert events.count() == before + 2
    assert set(events.values_list("patient_id", flat=True)) == {world.patient.pk}


def test_a_file_whose_content_lies_about_its_name_is_refused_and_nothing_is_stored(
    world: Any, client: Any, store: Path
) -> None:
    response = _send(client, world, tiny_png(), "labs.pdf")
    html = response.content.decode()
    assert response.status_code == 400
    assert "named like a PDF but its content is a PNG image" in html
    assert 'enctype="multipart/form-data"' in html
    assert not Thread.objects.exists() and not Message.objects.exists() and not Attachment.objects.exists()
    assert files_in(store) == []


@pytest.mark.parametrize(
    ("data", "name", "sentence"),
    [
        (b"<html><script>alert(1)</script></html>", "letter.pdf", "its content is a web page"),
        (b"MZ\x90\x00" + b"\x00" * 200, "photo.jpg", "Upload a PDF, PNG or JPEG file."),
        (b"%PDF-1.7 not really", "scan.docx", "is not a PDF, PNG or JPEG file"),
        (b"", "empty.pdf", "The file is empty."),
    ],
)
def test_other_bad_files_are_refused_with_a_sentence(
    world: Any, client: Any, store: Path, data: bytes, name: str, sentence: str
) -> None:
    thread = services.thread_start(
        actor_for(world.patient_user, world.clinic), world.patient, kind="patient", subject="S", body="B"
    )
    client.force_login(world.patient_user)
    response = client.post(
        reverse("conversations:my_thread", kwargs={"thread_id": thread.pk}),
        {"body": "see attached", "file": SimpleUploadedFile(name, data)},
    )
    assert response.status_code == 400 and sentence in response.content.decode()
    assert Message.objects.count() == 1 and not Attachment.objects.exists() and files_in(store) == []


def test_the_size_limit_is_the_document_setting(world: Any, client: Any, store: Path, settings: Any) -> None:
    settings.DOCUMENT_MAX_MB = 1
    from PIL import Image

    out = io.BytesIO()
    Image.frombytes("RGB", (800, 800), bytes(range(256)) * 7500).save(out, format="PNG", compress_level=0)
    big = out.getvalue()
    assert len(big) > 1024 * 1024
    response = _send(client, world, big, "big.png", "image/png")
    assert response.status_code == 400 and "the largest file accepted is 1 MB" in response.content.decode()
    assert not Thread.objects.exists() and files_in(store) == []


def test_staff_reply_with_an_image_and_staff_only_files_stay_out_of_the_portal(
    world: Any, client: Any, store: Path
) -> None:
    nurse = actor_for(world.nurse, world.clinic)
    png = tiny_png()
    thread = services.thread_start(
        nurse, world.patient, kind="patient", subject="Aftercare", body="See the sheet",
        attachments=[Upload(io.BytesIO(png), "aftercare.png", len(png))],
    )  # fmt: skip
    staff = services.thread_start(
        nurse, world.patient, kind=ThreadKind.STAFF, subject="Internal", body="ECG attached",
        attachments=[Upload(io.BytesIO(png), "ecg.png", len(png))],
    )  # fmt: skip
    shared = Attachment.objects.get(message__thread=thread)
    hidden = Attachment.objects.get(message__thread=staff)
    client.force_login(world.patient_user)
    ok = client.get(
        reverse("conversations:my_attachment", kwargs={"thread_id": thread.pk, "attachment_id": shared.pk})
    )
    assert ok.status_code == 200 and ok["Content-Type"] == "image/png"
    # The staff thread's file: not through the patient's thread, not through another thread's address.
    assert (
        client.get(
            reverse("conversations:my_attachment", kwargs={"thread_id": staff.pk, "attachment_id": hidden.pk})
        ).status_code
        == 404
    )
    assert (
        client.get(
            reverse(
                "conversations:my_attachment", kwargs={"thread_id": thread.pk, "attachment_id": hidden.pk}
            )
        ).status_code
        == 404
    )


def test_another_clinics_attachment_id_is_not_found(world: Any, client: Any, store: Path) -> None:
    pdf = tiny_pdf()
    other_staff = actor_for(world.other_clinic_staff, world.other_clinic)
    theirs = services.thread_start(
        other_staff, world.other_clinic_patient, kind="patient", subject="Theirs", body="B",
        attachments=[Upload(io.BytesIO(pdf), "theirs.pdf", len(pdf))],
    )  # fmt: skip
    their_att = Attachment.objects.get(message__thread=theirs)
    ours = services.thread_start(
        actor_for(world.prescriber, world.clinic), world.patient, kind="patient", subject="Ours", body="B"
    )
    client.force_login(world.prescriber)
    # Their attachment id through our patient's thread, and their thread through our patient: 404.
    assert client.get(reverse("conversations:attachment", kwargs={
        "patient_id": world.patient.pk, "thread_id": ours.pk, "attachment_id": their_att.pk,
    })).status_code == 404  # fmt: skip
    assert client.get(reverse("conversations:attachment", kwargs={
        "patient_id": world.other_clinic_patient.pk, "thread_id": theirs.pk, "attachment_id": their_att.pk,
    })).status_code == 404  # fmt: skip
    client.force_login(world.patient_user)
    assert client.get(reverse("conversations:my_attachment", kwargs={
        "thread_id": theirs.pk, "attachment_id": their_att.pk,
    })).status_code == 404  # fmt: skip
    assert not AuditEvent.objects.filter(action="view", object_type="conversations.attachment").exists()


def test_front_desk_cannot_open_an_attachment(world: Any, client: Any, store: Path) -> None:
    pdf = tiny_pdf()
    thread = services.thread_start(
        actor_for(world.patient_user, world.clinic), world.patient, kind="patient", subject="S", body="B",
        attachments=[Upload(io.BytesIO(pdf), "a.pdf", len(pdf))],
    )  # fmt: skip
    att = Attachment.objects.select_related("message").get(message__thread=thread)
    client.force_login(world.front_desk)
    response = client.get(_staff_url(world, att))
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="denied", patient=world.patient).count() == 1


def test_a_missing_file_is_said_in_a_sentence(world: Any, client: Any, store: Path) -> None:
    pdf = tiny_pdf()
    thread = services.thread_start(
        actor_for(world.patient_user, world.clinic), world.patient, kind="patient", subject="S", body="B",
        attachments=[Upload(io.BytesIO(pdf), "a.pdf", len(pdf))],
    )  # fmt: skip
    att = Attachment.objects.select_related("message").get(message__thread=thread)
    for f in files_in(store):
        f.unlink()
    client.force_login(world.prescriber)
    response = client.get(_staff_url(world, att), follow=True)
    assert "missing from the document storage" in response.content.decode()


def test_the_fhir_export_describes_the_attachment(world: Any, store: Path) -> None:
    from kapclinic.interop.fhir import build_bundle

    pdf = tiny_pdf()
    services.thread_start(
        actor_for(world.patient_user, world.clinic), world.patient, kind="patient", subject="S", body="B",
        attachments=[Upload(io.BytesIO(pdf), "labs.pdf", len(pdf))],
    )  # fmt: skip
    bundle = build_bundle(world.patient)  # validated by fhir.resources
    (comm,) = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Communication"]
    assert comm["payload"][1]["contentAttachment"] | {"creation": None} == {
        "contentType": "application/pdf",
        "title": "labs.pdf",
        "size": len(pdf),
        "creation": None,
    }


def test_filing_a_message_to_the_chart_names_its_file(world: Any, store: Path) -> None:
    pdf = tiny_pdf()
    thread = services.thread_start(
        actor_for(world.patient_user, world.clinic), world.patient, kind="patient", subject="S", body="B",
        attachments=[Upload(io.BytesIO(pdf), "labs.pdf", len(pdf))],
    )  # fmt: skip
    note = services.file_to_chart(actor_for(world.therapist, world.clinic), thread.messages.get())
    assert "Attached: labs.pdf (PDF)" in note.sections[0]["text"]


def test_a_clinician_files_a_message_file_into_the_chart_documents_once(
    world: Any, client: Any, store: Path
) -> None:
    from kapclinic.documents.models import Document, Status

    pdf = tiny_pdf("Synthetic outside labs")
    thread = services.thread_start(
        actor_for(world.patient_user, world.clinic), world.patient, kind="patient", subject="S", body="B",
        attachments=[Upload(io.BytesIO(pdf), "labs.pdf", len(pdf))],
    )  # fmt: skip
    att = Attachment.objects.select_related("message").get(message__thread=thread)
    url = reverse(
        "conversations:file_attachment",
        kwargs={"patient_id": world.patient.pk, "thread_id": thread.pk, "attachment_id": att.pk},
    )
    client.force_login(world.therapist)
    page = client.get(_staff_url(world, att).rsplit("attachments", 1)[0])
    assert url in page.content.decode()
    assert client.post(url, {"category": "id_card"}).status_code == 302  # administrative: refused
    assert not Document.objects.exists()
    response = client.post(url, {"category": "lab_result"})
    doc = Document.objects.get()
    assert response["Location"] == reverse(
        "documents:detail", kwargs={"patient_id": world.patient.pk, "document_id": doc.pk}
    )
    assert (doc.category, doc.status, doc.name, doc.patient) == (
        "lab_result",
        Status.FILED,
        "labs.pdf",
        world.patient,
    )
    assert doc.sha256 == att.sha256 and len(files_in(store)) == 2  # a copy under the chart's rules
    assert AuditEvent.objects.filter(action="create", object_type="documents.document").count() == 1
    att.refresh_from_db()
    assert att.document == doc
    client.post(url, {"category": "lab_result"})
    assert Document.objects.count() == 1
    page = client.get(_staff_url(world, att).rsplit("attachments", 1)[0]).content.decode()
    assert "In the chart&#x27;s documents" in page or "In the chart's documents" in page


# --- several files with one message ------------------------------------------------------------------


def test_patient_sends_two_files_with_one_message(world: Any, client: Any, store: Path) -> None:
    client.force_login(world.patient_user)
    response = client.post(
        reverse("conversations:my"),
        {
            "subject": "My results",
            "body": "Two pages",
            "file": [
                SimpleUploadedFile("page 1.pdf", tiny_pdf("Synthetic page 1"), "application/pdf"),
                SimpleUploadedFile("page 2.png", tiny_png(), "image/png"),
            ],
        },
    )
    assert response.status_code == 302
    message = Message.objects.get()
    names = list(message.attachments.values_list("name", "content_type"))
    assert names == [("page 1.pdf", "application/pdf"), ("page 2.png", "image/png")]
    assert len(files_in(store)) == 2
    assert AuditEvent.objects.filter(
        action="create", object_type="conversations.thread", detail__endswith="attachments=2"
    ).exists()
    page = client.get(response["Location"]).content.decode()
    for att in message.attachments.all():
        own = reverse(
            "conversations:my_attachment", kwargs={"thread_id": message.thread_id, "attachment_id": att.pk}
        )
        assert own in page and att.name in page


def test_staff_reply_carries_two_files(world: Any, client: Any, store: Path) -> None:
    thread = services.thread_start(
        actor_for(world.patient_user, world.clinic), world.patient, kind="patient", subject="S", body="B"
    )
    client.force_login(world.therapist)
    url = reverse("conversations:thread", kwargs={"patient_id": world.patient.pk, "thread_id": thread.pk})
    response = client.post(
        url,
        {
            "body": "The aftercare sheets",
            "file": [
                SimpleUploadedFile("sheet a.pdf", tiny_pdf("Synthetic A")),
                SimpleUploadedFile("sheet b.pdf", tiny_pdf("Synthetic B")),
            ],
        },
    )
    assert response.status_code == 302
    reply = Message.objects.get(from_patient=False)
    assert sorted(reply.attachments.values_list("name", flat=True)) == ["sheet a.pdf", "sheet b.pdf"]
    assert len(files_in(store)) == 2
    assert AuditEvent.objects.filter(
        action="create", object_type="conversations.message", detail=f"thread={thread.pk} attachments=2"
    ).exists()


@pytest.mark.parametrize(
    ("files", "sentence"),
    [
        (
            [("good.pdf", tiny_pdf()), ("empty.pdf", b""), ("also good.png", tiny_png())],
            "Attachment 2 of 3, “empty.pdf”: The file is empty. Nothing was sent; choose the files again.",
        ),
        (
            [("good.pdf", tiny_pdf()), ("photo.pdf", tiny_png())],
            "Attachment 2 of 2: “photo.pdf” is named like a PDF but its content is a PNG image",
        ),
        (
            [(f"p{n}.pdf", tiny_pdf()) for n in range(6)],
            "Attachments: at most 5 files with one message (you chose 6). Nothing was sent",
        ),
    ],
)
def test_one_refused_file_refuses_the_message_naming_it_and_nothing_is_stored(
    world: Any, client: Any, store: Path, files: list[tuple[str, bytes]], sentence: str
) -> None:
    thread = services.thread_start(
        actor_for(world.patient_user, world.clinic), world.patient, kind="patient", subject="S", body="B"
    )
    for who, url in [
        (world.patient_user, reverse("conversations:my_thread", kwargs={"thread_id": thread.pk})),
        (
            world.therapist,
            reverse("conversations:thread", kwargs={"patient_id": world.patient.pk, "thread_id": thread.pk}),
        ),
    ]:
        client.force_login(who)
        uploads = [SimpleUploadedFile(name, data) for name, data in files]
        response = client.post(url, {"body": "see attached", "file": uploads})
        assert response.status_code == 400
        assert sentence in response.content.decode().replace("&#x27;", "'")
        assert Message.objects.count() == 1 and not Attachment.objects.exists() and files_in(store) == []


def test_a_refused_files_name_is_shown_without_control_characters(world: Any, store: Path) -> None:
    from kapclinic.core.errors import DomainError

    with pytest.raises(DomainError) as caught:
        services.check_attachments(
            [
                Upload(io.BytesIO(tiny_pdf()), "ok.pdf", len(tiny_pdf())),
                Upload(io.BytesIO(b""), "bad\u202ename\x07.pdf", 0),
            ]
        )
    text = str(caught.value.field_errors["file"][0])
    assert "\u202e" not in text and "\x07" not in text and "badname.pdf" in text


# --- a failure after the files were stored leaves no file behind ---------------------------------------


class Boom(Exception):
    pass


def _fail_on_second_row(monkeypatch: Any) -> None:
    """The second attachment row cannot be written (as a database error would)."""
    from django.db import IntegrityError

    calls = {"n": 0}
    real = Attachment.save

    def save(self: Attachment, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise IntegrityError("synthetic failure")
        real(self, *args, **kwargs)

    monkeypatch.setattr(Attachment, "save", save)


def _fail_audit(monkeypatch: Any) -> None:
    def record_event(*args: Any, **kwargs: Any) -> None:
        raise Boom

    monkeypatch.setattr(services, "record_event", record_event)


def _fail_notify(monkeypatch: Any) -> None:
    def notify(*args: Any, **kwargs: Any) -> None:
        raise Boom

    monkeypatch.setattr(services, "_notify", notify)


@pytest.mark.parametrize("fail", [_fail_on_second_row, _fail_audit, _fail_notify])
@pytest.mark.parametrize("start", [True, False], ids=["new thread", "reply"])
def test_files_stored_before_the_message_save_fails_are_removed(
    world: Any, store: Path, monkeypatch: Any, fail: Any, start: bool
) -> None:
    from django.db import IntegrityError

    patient = actor_for(world.patient_user, world.clinic)
    thread = services.thread_start(patient, world.patient, kind="patient", subject="S", body="B")
    pdf, png = tiny_pdf(), tiny_png()
    uploads = [Upload(io.BytesIO(pdf), "a.pdf", len(pdf)), Upload(io.BytesIO(png), "b.png", len(png))]
    stored: list[str] = []
    from kapclinic.documents import services as documents

    real_store = documents.store_checked

    def spy(*args: Any, **kwargs: Any) -> None:
        real_store(*args, **kwargs)
        stored.append(args[0].file.name)

    monkeypatch.setattr(documents, "store_checked", spy)
    fail(monkeypatch)
    messages_before = Message.objects.count()
    with pytest.raises((Boom, IntegrityError)):
        if start:
            services.thread_start(
                patient, world.patient, kind="patient", subject="S2", body="B2", attachments=uploads
            )
        else:
            services.message_post(patient, thread, body="B2", attachments=uploads)
    assert stored, "the failure must come after a file reached the storage"
    assert files_in(store) == []
    assert Message.objects.count() == messages_before and not Attachment.objects.exists()
