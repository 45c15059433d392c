"""The patient's private journal: intentions, reflections and mood check-ins, private until shared."""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from kapclinic.core import clock
from kapclinic.core.concurrency import VersionedModel


class EntryKind(models.TextChoices):
    INTENTION = "intention", "Intention before a dosing session"
    REFLECTION = "reflection", "Reflection after a dosing session"
    CHECKIN = "checkin", "Mood check-in"


class Mood(models.IntegerChoices):
    """A simple self-rating for the patient's own journal; not a clinical instrument."""

    VERY_LOW = 1, "Very low"
    LOW = 2, "Low"
    OKAY = 3, "Okay"
    GOOD = 4, "Good"
    VERY_GOOD = 5, "Very good"


class JournalEntry(VersionedModel):
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="journal_entries")
    kind = models.CharField(max_length=12, choices=EntryKind.choices)
    appointment = models.ForeignKey(
        "scheduling.Appointment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="journal_entries",
        help_text="The dosing session an intention or reflection belongs to.",
    )
    text = models.TextField(blank=True)
    mood = models.PositiveSmallIntegerField(choices=Mood.choices, null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)
    #: Set while the entry is shared with the care team; cleared when the patient withdraws sharing.
    shared_at = models.DateTimeField(null=True, blank=True)
    share_withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]
        indexes: ClassVar = [
            models.Index(fields=["patient", "-created_at"], name="journal_patient_recent"),
            models.Index(fields=["appointment", "shared_at"], name="journal_appt_shared"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.created_at:%Y-%m-%d}"

    @property
    def is_shared(self) -> bool:
        return self.shared_at is not None
