"""Secure messages between a patient and their care team, and between staff about a patient (issue 17).

A message is clinical data: it belongs to one patient of one clinic, is read through `kapclinic.policy`
(staff need view_clinical for the patient; a patient reads only the patient threads of their own
record, never the staff threads), every read and write is audited, it never appears in an email body
and it is part of the patient's FHIR export (interop/fhir.py, Communication). A message may carry
attachments under the chart's document rules: checked by content and size with the documents app's
validation, kept in its storage under a random name, opened only through the thread's policy and
audited on every view (conversations/services.attach, views.*attachment)."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models

from kapclinic.core import clock
from kapclinic.documents.models import document_storage

USER = settings.AUTH_USER_MODEL

#: The longest message accepted, in characters (a long letter; longer belongs in a session).
MAX_MESSAGE_CHARS = 4000
#: The most files one message may carry (each under the chart's document rules and DOCUMENT_MAX_MB);
#: an interface limit, not a clinical number: more belongs in a second message or the chart's documents.
MAX_ATTACHMENTS = 5
#: The clinic's promise of a reply unless it sets its own (clinic policy, not a clinical number).
DEFAULT_REPLY_HOURS = 48


class ThreadKind(models.TextChoices):
    PATIENT = "patient", "With the patient"
    STAFF = "staff", "Staff only, about the patient"


class ThreadStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"


class ConversationSettings(models.Model):
    """The clinic's messaging settings (one row per clinic; missing row = defaults)."""

    clinic = models.OneToOneField("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    reply_hours = models.PositiveSmallIntegerField(
        default=DEFAULT_REPLY_HOURS,
        help_text="How soon the care team replies to a patient's message, in hours (shown to patients).",
    )
    updated_at = models.DateTimeField(default=clock.now)
    updated_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")


class Thread(models.Model):
    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="threads")
    kind = models.CharField(max_length=10, choices=ThreadKind.choices, default=ThreadKind.PATIENT)
    subject = models.CharField(max_length=120)
    status = models.CharField(max_length=10, choices=ThreadStatus.choices, default=ThreadStatus.OPEN)
    assigned_to = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)
    last_message_at = models.DateTimeField(default=clock.now)
    last_message_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    #: When the patient's oldest message still waiting for a staff answer was sent (None: nothing waits).
    awaiting_since = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    #: Set on listed rows by the views (selectors.is_unread); not stored.
    unread: bool = False

    class Meta:
        ordering: ClassVar = ["-last_message_at", "-id"]
        indexes: ClassVar = [
            models.Index(fields=["clinic", "status", "-last_message_at"], name="thread_inbox"),
            models.Index(fields=["clinic", "awaiting_since"], name="thread_awaiting"),
            models.Index(fields=["patient", "kind", "-last_message_at"], name="thread_patient"),
        ]

    def __str__(self) -> str:
        return f"Thread {self.pk}"


class Message(models.Model):
    thread = models.ForeignKey(Thread, on_delete=models.PROTECT, related_name="messages")
    author = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    from_patient = models.BooleanField(default=False)
    body = models.TextField()
    created_at = models.DateTimeField(default=clock.now)
    #: The chart note this message was filed into (notes.Note), if any.
    note = models.ForeignKey("notes.Note", null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering: ClassVar = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Message {self.pk}"


class ReadMark(models.Model):
    """How far one person has read one thread."""

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="read_marks")
    user = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="+")
    read_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints: ClassVar = [models.UniqueConstraint(fields=["thread", "user"], name="readmark_unique")]


def attachment_name(instance: Any, filename: str) -> str:
    """Where an attachment is kept in the documents storage: the clinic's folder, a random name
    (`filename` is chosen by documents.services.store_checked, never the person's file name)."""
    return f"{instance.clinic_id}/messages/{filename}"


class Attachment(models.Model):
    """A file sent with a message (PDF, PNG or JPEG, checked by content like a chart document)."""

    message = models.ForeignKey(Message, on_delete=models.PROTECT, related_name="attachments")
    #: Denormalised from the message's thread: where the file is kept, and a guard in every lookup.
    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    name = models.CharField("file name", max_length=120, help_text="As uploaded; display only.")
    file = models.FileField(storage=document_storage, upload_to=attachment_name, max_length=200)
    content_type = models.CharField(max_length=40)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(default=clock.now)
    #: The chart document a clinician filed this file as (a copy under documents' rules), if any.
    document = models.ForeignKey(
        "documents.Document", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering: ClassVar = ["id"]

    def __str__(self) -> str:
        return self.name

    @property
    def type_label(self) -> str:
        from kapclinic.documents.validation import TYPE_NAMES

        return TYPE_NAMES.get(self.content_type, self.content_type)
