"""Documents kept in a patient's chart, and letters clinicians write to other providers."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.core.signals import setting_changed
from django.db import models
from django.dispatch import receiver
from django.utils.functional import LazyObject, empty

from kapclinic.core import clock
from kapclinic.core.concurrency import VersionedModel


class _DocumentStorage(LazyObject):
    """settings.STORAGES["documents"], looked up when first used (and again after a settings change),
    so the model field never holds on to a storage chosen at import time."""

    def _setup(self) -> None:
        self._wrapped = storages["documents"]


documents_storage = _DocumentStorage()


@receiver(setting_changed)
def _storages_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "STORAGES":
        documents_storage._wrapped = empty  # type: ignore[assignment]


def document_storage() -> Storage:
    """The dedicated storage (settings.STORAGES["documents"]): outside the web root, or object storage."""
    return documents_storage  # type: ignore[return-value]


def random_name(instance: Any, filename: str) -> str:
    """A random storage name; the person's file name is kept only as text (`Document.name`).
    `filename` is the name chosen by the service (random hex + the extension of the checked type)."""
    return f"{instance.patient.clinic_id}/{filename}"


class Category(models.TextChoices):
    ID_CARD = "id_card", "ID or insurance card"
    ADMIN_FORM = "admin_form", "Signed administrative form (release of information, payment policy)"
    CORRESPONDENCE = "correspondence", "Administrative correspondence"
    OUTSIDE_RECORD = "outside_record", "Outside medical record"
    LAB_RESULT = "lab_result", "Lab result"
    CLINICAL_FORM = "clinical_form", "Signed clinical form (paper consent, questionnaire)"
    OTHER_CLINICAL = "other_clinical", "Other clinical document"


#: Categories that are administrative (front desk and admins see them); every other one is clinical data.
ADMINISTRATIVE = frozenset({Category.ID_CARD, Category.ADMIN_FORM, Category.CORRESPONDENCE})


def is_clinical(category: str) -> bool:
    return category not in ADMINISTRATIVE


class Status(models.TextChoices):
    PENDING = "pending", "Waiting to be filed"  # uploaded by the patient from the portal
    FILED = "filed", "In the chart"
    REJECTED = "rejected", "Not filed"


class Source(models.TextChoices):
    STAFF = "staff", "Staff"
    PORTAL = "portal", "Patient (portal)"


class Document(VersionedModel):
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="documents")
    category = models.CharField(max_length=20, choices=Category.choices)
    title = models.CharField(max_length=120)
    name = models.CharField("file name", max_length=120, help_text="As uploaded; display only.")
    file = models.FileField(storage=document_storage, upload_to=random_name, max_length=200, blank=True)
    content_type = models.CharField(max_length=40)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.FILED)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.STAFF)
    note = models.CharField(max_length=300, blank=True, help_text="The patient's note with an upload.")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(default=clock.now)
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    filed_at = models.DateTimeField(null=True, blank=True)
    rejected_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering: ClassVar = ["-uploaded_at", "-id"]
        indexes: ClassVar = [
            models.Index(fields=["patient", "status", "-uploaded_at"], name="document_patient_status"),
            models.Index(fields=["status", "-uploaded_at"], name="document_status_recent"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def clinical(self) -> bool:
        return is_clinical(self.category)

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")


def new_storage_name(extension: str) -> str:
    return uuid.uuid4().hex + extension


class Letter(VersionedModel):
    """A referral or summary letter a clinician writes to another provider; signed when saved."""

    class Kind(models.TextChoices):
        REFERRAL = "referral", "Referral"
        SUMMARY = "summary", "Treatment summary"

    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="letters")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.SUMMARY)
    recipient_name = models.CharField(max_length=120)
    recipient_organisation = models.CharField(max_length=160, blank=True)
    recipient_address = models.TextField(blank=True)
    subject = models.CharField(max_length=160)
    body = models.TextField()
    include_summary = models.BooleanField(
        default=True, help_text="Print the chart's diagnoses, medications and latest scores below the letter."
    )
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    signed_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering: ClassVar = ["-signed_at", "-id"]

    def __str__(self) -> str:
        return self.subject


def logo_name(instance: Any, filename: str) -> str:
    """Where the clinic's logo is kept in the documents storage (random name chosen by the service)."""
    return f"{instance.clinic_id}/logo/{filename}"


class ClinicLogo(models.Model):
    """The clinic's logo, printed at the top of its PDFs (superbills, statements, clinical records).
    PNG or JPEG checked by content like a chart document (documents/logo.py), kept in the documents
    storage; one per clinic, replaced by a new upload."""

    clinic = models.OneToOneField("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    name = models.CharField("file name", max_length=120, help_text="As uploaded; display only.")
    file = models.FileField(storage=document_storage, upload_to=logo_name, max_length=200)
    content_type = models.CharField(max_length=40)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(default=clock.now)

    def __str__(self) -> str:
        return self.name
