"""Versioned consent documents per clinic and immutable patient e-signatures (issue 4)."""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from django.conf import settings
from django.db import models

from kapclinic.core import clock


class ConsentDocument(models.Model):
    """One published version of a clinic's consent text. Never edited: publish a new version."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="consent_documents")
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    body = models.TextField()
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    published_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering: ClassVar = ["-version"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["clinic", "version"], name="consent_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.title} v{self.version}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("A published consent document cannot be changed; publish a new version.")
        super().save(*args, **kwargs)

    @property
    def full_text(self) -> str:
        """Exactly what the patient is shown and signs."""
        return f"{self.title} (version {self.version})\n\n{self.body}"


class SignatureChannel(models.TextChoices):
    PORTAL = "portal", "Patient portal"
    IN_CLINIC = "in_clinic", "In the clinic (tablet)"


class ConsentSignature(models.Model):
    """A patient's e-signature: the exact text shown, typed name, time and client address. Immutable."""

    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="consent_signatures"
    )
    document = models.ForeignKey(ConsentDocument, on_delete=models.PROTECT, related_name="signatures")
    signed_text = models.TextField()
    text_sha256 = models.CharField(max_length=64)
    typed_name = models.CharField(max_length=200)
    signed_at = models.DateTimeField()
    ip = models.CharField(max_length=64, blank=True)
    channel = models.CharField(max_length=20, choices=SignatureChannel.choices)
    witnessed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering: ClassVar = ["-signed_at", "-id"]
        indexes: ClassVar = [models.Index(fields=["patient", "-signed_at"], name="consent_sig_patient")]

    def __str__(self) -> str:
        return f"Consent signature {self.pk}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("A consent signature cannot be changed.")
        super().save(*args, **kwargs)

    @property
    def intact(self) -> bool:
        return hashlib.sha256(self.signed_text.encode()).hexdigest() == self.text_sha256
