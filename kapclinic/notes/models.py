"""Clinical notes (templated, draft -> signed, addenda) and encrypted psychotherapy process notes."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models

from kapclinic.core import clock
from kapclinic.core.concurrency import VersionedModel

USER = settings.AUTH_USER_MODEL


class NoteStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SIGNED = "signed", "Signed"


class NoteKind(models.TextChoices):
    PREPARATION = "preparation", "Preparation"
    DOSING_EXPERIENCE = "dosing_experience", "Dosing-session experience"
    INTEGRATION = "integration", "Integration"
    PROGRESS = "progress", "Progress"
    CUSTOM = "custom", "Clinic template"


class ClinicNoteTemplate(VersionedModel):
    """A template a clinic adds to the built-in set; sections = [{"key", "label"}].

    The row is the template family (key ``clinic-<pk>``) and holds its current content; ``number`` is the
    content version (1, 2, ...). Every content version is kept in ClinicNoteTemplateVersion, and notes
    point at the version they were written with. ``version`` (from VersionedModel) is only the
    optimistic-concurrency counter: retiring and reinstating bump it, not ``number``.
    ``is_active`` False = retired: not offered for new notes, kept for the notes that used it.
    """

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    title = models.CharField(max_length=120)
    sections = models.JSONField(default=list)
    number = models.PositiveIntegerField(default=1, help_text="Current content version of the template.")
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)
    retired_at = models.DateTimeField(null=True, blank=True)
    retired_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["clinic", "title"], name="note_template_title_unique")
        ]

    @property
    def key(self) -> str:
        return f"clinic-{self.pk}"


class ClinicNoteTemplateVersion(models.Model):
    """One content version of a clinic template, never changed after it is written."""

    template = models.ForeignKey(ClinicNoteTemplate, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=120)
    sections = models.JSONField(default=list)
    created_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering: ClassVar = ["-number"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["template", "number"], name="note_template_version_unique")
        ]

    @property
    def label(self) -> str:
        """The string notes store in ``Note.template_version``."""
        return f"clinic-{self.template_id}.{self.number}"


class HiddenBuiltinTemplate(models.Model):
    """A built-in template (data file) this clinic does not offer for new notes. Built-ins themselves
    cannot be edited or retired by a clinic; existing notes are unaffected."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    key = models.CharField(max_length=40)
    hidden_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    hidden_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["clinic", "key"], name="hidden_builtin_unique")
        ]


class Note(VersionedModel):
    """A clinical note. Several per patient and day are allowed. Signed notes never change; addenda follow.

    `sections` is a snapshot of the template's sections with the text: [{"key", "label", "text"}], so a
    note reads the same after its template changes. Integration notes name the dosing appointment they
    integrate; the dosing-session record started from that appointment follows from it.
    """

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="notes")
    kind = models.CharField(max_length=20, choices=NoteKind.choices)
    template_key = models.CharField(max_length=40)
    template_version = models.CharField(max_length=40)
    title = models.CharField(max_length=120)
    service_date = models.DateField(help_text="The day of the visit the note documents.")
    sections = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=NoteStatus.choices, default=NoteStatus.DRAFT)
    author = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)
    signed_at = models.DateTimeField(null=True, blank=True)
    signed_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    dosing_appointment = models.ForeignKey(
        "scheduling.Appointment", null=True, blank=True, on_delete=models.PROTECT, related_name="notes"
    )
    #: The clinic-template version the note was written with (null for built-in templates, whose version
    #: is the data file's, in ``template_version``).
    clinic_template_version = models.ForeignKey(
        ClinicNoteTemplateVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="notes"
    )
    #: The editing session (one opened editor page, a random token in its form) that wrote the current
    #: draft. A save from that same page with the version it last knew is not someone else's change: every
    #: version since was written by that page, whose form holds the newer text (notes.services).
    draft_editor = models.CharField(max_length=40, blank=True, default="")
    # The dosing-session record is the appointment's (kap_sessions.DosingSession.appointment): one link,
    # read through kapclinic.sessions.selectors.session_for_appointment.

    class Meta:
        ordering: ClassVar = ["-service_date", "-created_at", "-id"]
        indexes: ClassVar = [
            models.Index(fields=["patient", "-service_date"], name="note_patient_date"),
            models.Index(fields=["author", "status"], name="note_author_status"),
        ]

    def __str__(self) -> str:
        return f"{self.title} {self.service_date}"

    @property
    def is_signed(self) -> bool:
        return self.status == NoteStatus.SIGNED

    @property
    def filled(self) -> bool:
        return any((s.get("text") or "").strip() for s in self.sections)


class Addendum(models.Model):
    note = models.ForeignKey(Note, on_delete=models.PROTECT, related_name="addenda")
    author = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering: ClassVar = ["created_at", "id"]


class ProcessNote(VersionedModel):
    """Psychotherapy process note: the text is encrypted at rest (notes.crypto); only the author and the
    colleagues the author shares it with may read it; never exported, never in the portal.

    The author may edit it; each edit first keeps the text it replaces as an encrypted
    ProcessNoteRevision, so nothing is lost. ``edited_at`` is the time of the latest edit."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="process_notes")
    author = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    ciphertext = models.TextField(help_text="Fernet token; never plaintext.")
    #: The dosing session the note was written in (the therapist's notes beside the monitoring record);
    #: null for notes written outside a session.
    dosing_session = models.ForeignKey(
        "kap_sessions.DosingSession",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="process_notes",
    )
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]
        indexes: ClassVar = [models.Index(fields=["patient", "author"], name="process_note_patient_author")]


class ProcessNoteRevision(models.Model):
    """An earlier text of a process note, encrypted like the note. ``number`` 1 is the text as first
    written; ``written_at`` is when that text was saved, ``replaced_at`` when an edit replaced it."""

    note = models.ForeignKey(ProcessNote, on_delete=models.PROTECT, related_name="revisions")
    number = models.PositiveIntegerField()
    ciphertext = models.TextField(help_text="Fernet token; never plaintext.")
    written_at = models.DateTimeField()
    replaced_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering: ClassVar = ["-number"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["note", "number"], name="process_revision_unique")
        ]


class ProcessNoteShare(models.Model):
    note = models.ForeignKey(ProcessNote, on_delete=models.CASCADE, related_name="shares")
    user = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    shared_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["note", "user"], name="process_share_unique")
        ]
