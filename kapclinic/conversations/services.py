"""Every write of secure messaging: start a thread, post, read marks, assign, done, file to the chart.

Views open the patient through `kapclinic.policy.open_patient` first (view_clinical / edit_clinical for
staff, self_service for the patient); these services then check the thread belongs to that patient and
write one audit event in the transaction of the change. Emails say only that a message is waiting:
the text never leaves the application (messaging.services.queue)."""

from __future__ import annotations

import datetime as dt
import io
import unicodedata
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from kapclinic.accounts.models import CLINICAL_ROLES, Membership, Role, User
from kapclinic.audit.services import record_event
from kapclinic.conversations.models import (
    DEFAULT_REPLY_HOURS,
    MAX_ATTACHMENTS,
    MAX_MESSAGE_CHARS,
    Attachment,
    ConversationSettings,
    Message,
    ReadMark,
    Thread,
    ThreadKind,
    ThreadStatus,
)
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.errors import DomainError
from kapclinic.core.forms import strip_bidi
from kapclinic.documents import services as documents
from kapclinic.documents import validation
from kapclinic.patients.models import Patient
from kapclinic.policy import Action, can


def _refused(message: str, field: str | None = None) -> DomainError:
    """A refusal: the sentence on ``field`` of the form when there is one, else at the top."""
    return DomainError(field_errors={field: [message]}) if field else DomainError(message)


def reply_hours(clinic: Any) -> int:
    row = ConversationSettings.objects.filter(clinic=clinic).values_list("reply_hours", flat=True).first()
    return int(row) if row else DEFAULT_REPLY_HOURS


@transaction.atomic
def settings_update(actor: Actor, *, hours: int) -> ConversationSettings:
    if not 1 <= hours <= 24 * 14:
        raise _refused("Reply time: enter a number of hours from 1 to 336 (two weeks).", "reply_hours")
    row, _ = ConversationSettings.objects.select_for_update().get_or_create(clinic=actor.clinic)
    old = row.reply_hours
    row.reply_hours = hours
    row.updated_at = clock.now()
    row.updated_by = actor.user
    row.save()
    record_event(actor, "update", obj=row, detail=f"reply_hours {old}->{hours}")
    return row


def clean_body(text: str) -> str:
    """The message text as stored: bidi controls gone, line ends normalised, size checked.
    HTML is kept as typed and escaped wherever it is shown (templates autoescape)."""
    body = strip_bidi(text or "").replace("\r\n", "\n").strip()
    if not body:
        raise _refused("Message: write something before sending.", "body")
    if len(body) > MAX_MESSAGE_CHARS:
        raise _refused(
            f"Message: at most {MAX_MESSAGE_CHARS} characters (this one has {len(body)}). "
            "Split it in two, or bring it to your next session.",
            "body",
        )
    return body


def _may_write(actor: Actor, thread: Thread) -> bool:
    patient = thread.patient
    if actor.role == Role.PATIENT:
        return thread.kind == ThreadKind.PATIENT and can(actor, Action.SELF_SERVICE, patient)
    return can(actor, Action.EDIT_CLINICAL, patient)


#: A file that passed the checks: the upload, what it is, its SHA-256.
Checked = tuple[documents.Upload, validation.Checked, str]


def _shown_name(raw: str) -> str:
    """A refused file's name as it may be shown back: control characters gone, at most 60 characters."""
    name = "".join(ch for ch in (raw or "") if not unicodedata.category(ch).startswith("C")).strip()
    return (name[:59] + "…" if len(name) > 60 else name) or "(no name)"


def check_attachments(uploads: Sequence[documents.Upload]) -> list[Checked]:
    """The chart's document rules on every file sent with a message (documents.services.check_upload:
    PDF, PNG or JPEG by content, settings.DOCUMENT_MAX_MB each), at most MAX_ATTACHMENTS of them. All are
    checked before anything is written; the first refused one is named in a sentence on the form's file
    field, and nothing is kept (neither the message nor the other files)."""
    total = len(uploads)
    if total > MAX_ATTACHMENTS:
        raise _refused(
            f"Attachments: at most {MAX_ATTACHMENTS} files with one message (you chose {total}). "
            f"Nothing was sent: choose {MAX_ATTACHMENTS} or fewer, and send the rest in another message.",
            "file",
        )
    checked: list[Checked] = []
    for number, upload in enumerate(uploads, 1):
        try:
            info, sha256 = documents.check_upload(upload)
        except DomainError as exc:
            sentence = str(exc)
            name = _shown_name(upload.name)
            which = f"Attachment {number} of {total}" if total > 1 else "Attachment"
            if f"“{name}”" not in sentence:
                which += f", “{name}”"
            again = "the files" if total > 1 else "the file"
            raise _refused(f"{which}: {sentence} Nothing was sent; choose {again} again.", "file") from None
        checked.append((upload, info, sha256))
    return checked


def _attach(actor: Actor, message: Message, checked: list[Checked], kept: list[str]) -> int:
    """Keep the checked files with the message (documents storage, random names; `kept` remembers them
    so a later failure removes them). Returns how many."""
    for upload, info, sha256 in checked:
        row = Attachment(
            message=message,
            clinic_id=message.thread.clinic_id,
            name=info.name,
            content_type=info.content_type,
            size=info.size,
            sha256=sha256,
            uploaded_by=actor.require_user(),
            uploaded_at=message.created_at,
        )
        documents.store_checked(row, "file", upload=upload, checked=info, kept=kept)
    return len(checked)


def thread_start(
    actor: Actor,
    patient: Patient,
    *,
    kind: str,
    subject: str,
    body: str,
    attachments: Sequence[documents.Upload] = (),
) -> Thread:
    checked = check_attachments(attachments)
    with documents.removed_on_failure() as kept:
        return _thread_start(actor, patient, kind, subject, body, checked, kept)


@transaction.atomic
def _thread_start(
    actor: Actor,
    patient: Patient,
    kind: str,
    subject: str,
    body: str,
    checked: list[Checked],
    kept: list[str],
) -> Thread:
    user = actor.require_user()
    subject = strip_bidi(subject or "").strip()
    if not subject:
        raise _refused("Subject: give the message a short subject.", "subject")
    if len(subject) > 120:
        raise _refused("Subject: at most 120 characters.", "subject")
    if kind not in ThreadKind.values:
        raise _refused("Choose who the thread is with.", "kind")
    if actor.role == Role.PATIENT and kind != ThreadKind.PATIENT:
        raise _refused("Choose who the thread is with.", "kind")
    text = clean_body(body)
    now = clock.now()
    thread = Thread(
        clinic_id=patient.clinic_id,
        patient=patient,
        kind=kind,
        subject=subject,
        created_by=user,
        created_at=now,
        last_message_at=now,
        last_message_by=user,
    )
    thread.patient = patient
    if not _may_write(actor, thread):
        raise _refused("Your role does not allow writing to this patient's messages.")
    thread.save()
    message = _add(actor, thread, text, now)
    files = _attach(actor, message, checked, kept)
    record_event(
        actor, "create", patient=patient, obj=thread, detail=f"thread kind={kind} attachments={files}"
    )
    _notify(actor, thread, message)
    return thread


def _add(actor: Actor, thread: Thread, text: str, now: dt.datetime) -> Message:
    user = actor.require_user()
    from_patient = actor.role == Role.PATIENT
    message = Message.objects.create(
        thread=thread, author=user, from_patient=from_patient, body=text, created_at=now
    )
    fields: dict[str, Any] = {"last_message_at": now, "last_message_by": user}
    if from_patient:
        if thread.awaiting_since is None:
            fields["awaiting_since"] = now
        fields["status"] = ThreadStatus.OPEN  # a new patient message reopens a thread marked done
        fields["done_at"] = None
        fields["done_by"] = None
    elif thread.kind == ThreadKind.PATIENT:
        fields["awaiting_since"] = None  # answered
    Thread.objects.filter(pk=thread.pk).update(**fields)
    for name, value in fields.items():
        setattr(thread, name, value)
    ReadMark.objects.update_or_create(thread=thread, user=user, defaults={"read_at": now})
    return message


def message_post(
    actor: Actor, thread: Thread, *, body: str, attachments: Sequence[documents.Upload] = ()
) -> Message:
    text = clean_body(body)
    checked = check_attachments(attachments)
    with documents.removed_on_failure() as kept:
        return _message_post(actor, thread, text, checked, kept)


@transaction.atomic
def _message_post(
    actor: Actor, thread: Thread, text: str, checked: list[Checked], kept: list[str]
) -> Message:
    thread = Thread.objects.select_for_update().select_related("patient", "patient__clinic").get(pk=thread.pk)
    if not _may_write(actor, thread):
        raise _refused("Your role does not allow writing to this patient's messages.")
    message = _add(actor, thread, text, clock.now())
    files = _attach(actor, message, checked, kept)
    record_event(
        actor,
        "create",
        patient=thread.patient,
        obj=message,
        detail=f"thread={thread.pk} attachments={files}",
    )
    _notify(actor, thread, message)
    return message


def open_attachment(actor: Actor, attachment: Attachment, *, patient: Patient) -> Any:
    """The attachment's file, opened for reading; audited as a view (the view checked the thread)."""
    fh = documents.open_stored(attachment.file.name)
    record_event(actor, "view", patient=patient, obj=attachment, detail=f"download {attachment.content_type}")
    return fh


def attachment_to_chart(actor: Actor, attachment: Attachment, *, patient: Patient, category: str) -> Any:
    """File a copy of a message's file into the chart's documents (documents.services.upload: the same
    checks, storage and audit as any chart document; a clinical category). Filed once."""
    from kapclinic.documents.models import is_clinical

    if attachment.document_id is not None:
        raise _refused("This file is already in the chart's documents.")
    if not is_clinical(category):
        raise _refused("File it as: choose a clinical kind of document.", "category")
    with documents.open_stored(attachment.file.name) as fh:
        data = fh.read()
    upload = documents.Upload(io.BytesIO(data), attachment.name, len(data))
    with transaction.atomic():
        row = Attachment.objects.select_for_update().get(pk=attachment.pk)
        if row.document_id is not None:
            raise _refused("This file is already in the chart's documents.")
        doc = documents.upload(
            actor, patient, upload=upload, category=category, title=f"From a message: {row.name}"
        )
        Attachment.objects.filter(pk=row.pk).update(document=doc)
    attachment.document = doc
    return doc


def mark_read(user: User, thread: Thread) -> None:
    """Called by the view that shows the thread (its audit event is the view's)."""
    ReadMark.objects.update_or_create(thread=thread, user=user, defaults={"read_at": clock.now()})


@transaction.atomic
def assign(actor: Actor, thread: Thread, *, user: User | None) -> Thread:
    if user is not None:
        ok = Membership.objects.filter(
            clinic_id=thread.clinic_id, user=user, role__in=CLINICAL_ROLES, is_active=True
        ).exists()
        member_actor = Actor(user=user, clinic=actor.clinic, role=_role_of(user, thread.clinic_id))
        if not ok or not can(member_actor, Action.VIEW_CLINICAL, thread.patient):
            raise _refused(
                "Assign to: choose a clinician who can open this patient's chart "
                "(a therapist must be on the care team first).",
                "assigned_to",
            )
    Thread.objects.filter(pk=thread.pk).update(assigned_to=user)
    thread.assigned_to = user
    record_event(actor, "update", patient=thread.patient, obj=thread, detail="assign")
    return thread


def _role_of(user: User, clinic_id: int) -> str | None:
    return (
        Membership.objects.filter(clinic_id=clinic_id, user=user, is_active=True)
        .values_list("role", flat=True)
        .first()
    )


@transaction.atomic
def set_done(actor: Actor, thread: Thread, *, done: bool) -> Thread:
    now = clock.now()
    fields: dict[str, Any] = (
        {"status": ThreadStatus.DONE, "done_at": now, "done_by": actor.require_user(), "awaiting_since": None}
        if done
        else {"status": ThreadStatus.OPEN, "done_at": None, "done_by": None}
    )
    Thread.objects.filter(pk=thread.pk).update(**fields)
    for name, value in fields.items():
        setattr(thread, name, value)
    record_event(actor, "update", patient=thread.patient, obj=thread, detail="done" if done else "reopen")
    return thread


@transaction.atomic
def file_to_chart(actor: Actor, message: Message) -> Any:
    """A draft progress note (DAP) whose Data section quotes the message; the clinician completes and
    signs it in the notes editor. The message remembers its note, so it is filed once."""
    from kapclinic.notes.models import Note
    from kapclinic.notes.services import note_create

    message = (
        Message.objects.select_for_update().select_related("thread__patient", "author").get(pk=message.pk)
    )
    if message.note_id is not None:
        raise _refused("This message is already filed to the chart.")
    patient = message.thread.patient
    note = note_create(actor, patient, template_key="dap", service_date=clock.today())
    when = timezone.localtime(message.created_at, patient.clinic.zone).strftime("%d %b %Y %H:%M")
    who = "the patient" if message.from_patient else message.author.full_name
    sections = [dict(s) for s in note.sections]
    files = "".join(
        f"\n\nAttached: {a.name} ({a.type_label}), kept with the message in the thread."
        for a in message.attachments.all()
    )
    sections[0]["text"] = f"Secure message from {who}, {when}:\n\n{message.body}{files}"
    Note.objects.filter(pk=note.pk).update(sections=sections)
    note.sections = sections
    Message.objects.filter(pk=message.pk).update(note=note)
    message.note = note
    return note


def _notify(actor: Actor, thread: Thread, message: Message) -> None:
    """Tell the other side a message waits. The email says only that; never the text, the subject or
    the patient's name (an email is not a secure channel)."""
    from kapclinic.messaging.models import MessageKind
    from kapclinic.messaging.services import queue

    clinic = thread.patient.clinic
    if message.from_patient or thread.kind == ThreadKind.STAFF:
        url = settings.SITE_URL + reverse("conversations:inbox")
        recipients: list[User]
        if thread.assigned_to_id is not None:
            recipients = list(User.objects.filter(pk=thread.assigned_to_id))
        else:
            recipients = list(
                User.objects.filter(caseload__patient=thread.patient, is_active=True).distinct()
            )
        for user in recipients:
            if user.pk == message.author_id or not user.email:
                continue
            queue(
                kind=MessageKind.SECURE_MESSAGE,
                to_email=user.email,
                to_user=user,
                clinic=clinic,
                related=thread,
                subject="You have a new secure message",
                body=(
                    f"You have a new secure message in {clinic.name}'s system.\n\nSign in to read it: {url}\n"
                ),
            )
        return
    email = thread.patient.email
    if not email:
        return
    url = settings.SITE_URL + reverse("conversations:my")
    queue(
        kind=MessageKind.SECURE_MESSAGE,
        to_email=email,
        clinic=clinic,
        related=thread,
        subject="You have a new message",
        body=(
            f"You have a new message from your care team at {clinic.name}.\n\n"
            f"Sign in to your portal to read it: {url}\n\n"
            "Messages are not monitored in real time. If you are in crisis, call or text 988 "
            f"(Suicide & Crisis Lifeline) or call {clinic.emergency_number}."
        ),
    )
