"""Appointments, rooms and chairs, calendar feeds and reminders."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from kapclinic.core import clock
from kapclinic.core.concurrency import VersionedModel
from kapclinic.messaging.retry import MAX_ATTEMPTS as MAX_SEND_ATTEMPTS
from kapclinic.scheduling import rules

USER = settings.AUTH_USER_MODEL


class ResourceKind(models.TextChoices):
    ROOM = "room", "Room"
    CHAIR = "chair", "Dosing chair"


class Resource(models.Model):
    """A room or a dosing chair; neither may be double-booked."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=80)
    kind = models.CharField(max_length=10, choices=ResourceKind.choices, default=ResourceKind.ROOM)
    is_active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering: ClassVar = ["kind", "position", "name", "id"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["clinic", "name"], name="resource_name_unique_per_clinic")
        ]

    def __str__(self) -> str:
        return self.name


class Kind(models.TextChoices):
    CONSULTATION = rules.CONSULTATION, "Consultation / intake"
    ASSESSMENT = rules.ASSESSMENT, "Assessment"
    PREPARATION = rules.PREPARATION, "Preparation session"
    DOSING = rules.DOSING, "Dosing session"
    INTEGRATION = rules.INTEGRATION, "Integration session"
    FOLLOW_UP = rules.FOLLOW_UP, "Follow-up visit"


class Modality(models.TextChoices):
    IN_PERSON = "in_person", "In person"
    VIDEO = "video", "Video"


class PlaceOfService(models.TextChoices):
    """CMS place-of-service codes a superbill or claim line carries (docs/telehealth.md: 11 office,
    02 telehealth; [C24][C26][C27] in docs/telehealth.md). Follows the appointment's modality."""

    OFFICE = "11", "11 Office"
    TELEHEALTH = "02", "02 Telehealth"


def place_of_service_for(modality: str) -> str:
    return PlaceOfService.TELEHEALTH if modality == Modality.VIDEO else PlaceOfService.OFFICE


class Status(models.TextChoices):
    BOOKED = "booked", "Booked"
    COMPLETED = "completed", "Completed"
    NO_SHOW = "no_show", "Did not attend"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (Status.BOOKED, Status.COMPLETED)


class Appointment(VersionedModel):
    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="appointments")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    staff = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="appointments")
    resource = models.ForeignKey(
        Resource, null=True, blank=True, on_delete=models.PROTECT, related_name="appointments"
    )
    modality = models.CharField(max_length=10, choices=Modality.choices, default=Modality.IN_PERSON)
    #: Follows `modality` (set wherever modality is written: booking, change).
    place_of_service = models.CharField(
        max_length=2, choices=PlaceOfService.choices, default=PlaceOfService.OFFICE
    )
    #: The random room name of a video appointment when the clinic's links come from a Jitsi pattern
    #: (made the first time the link is asked for; never shown before the link's time).
    video_room = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BOOKED, db_index=True)
    admin_note = models.CharField(
        "Note for the front desk", max_length=200, blank=True, help_text="No clinical detail."
    )
    created_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    cancel_reason = models.CharField(max_length=200, blank=True)
    #: Front desk's arrival mark (check-in); the status stays "booked" until completed or missed.
    checked_in_at = models.DateTimeField(null=True, blank=True)
    checked_in_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    #: The treatment plan's proposed appointment this booking fulfils (booked from the plan's series).
    proposal = models.ForeignKey(
        "treatment.ProposedAppointment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="appointments",
    )

    class Meta:
        ordering: ClassVar = ["starts_at", "id"]
        indexes: ClassVar = [
            models.Index(fields=["clinic", "starts_at"], name="appt_clinic_start"),
            models.Index(fields=["staff", "starts_at"], name="appt_staff_start"),
            models.Index(fields=["resource", "starts_at"], name="appt_resource_start"),
            models.Index(fields=["patient", "starts_at"], name="appt_patient_start"),
        ]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="appt_ends_after_start"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {timezone.localtime(self.starts_at):%Y-%m-%d %H:%M}"

    @property
    def minutes(self) -> int:
        return int((self.ends_at - self.starts_at).total_seconds() // 60)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def preparation(self) -> tuple[str, ...]:
        if self.kind != rules.DOSING:
            return rules.preparation_for(self.kind)
        from kapclinic.scheduling.selectors import dosing_preparation

        return rules.preparation_for(self.kind, dosing_preparation(self.patient_id, self.clinic_id))


class ScheduleSettings(models.Model):
    """A clinic's scheduling configuration (defaults in rules.DEFAULT_KINDS)."""

    clinic = models.OneToOneField("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    reminder_hours_before = models.PositiveSmallIntegerField(
        default=24, help_text="How long before an appointment the reminder email is sent."
    )
    dosing_default_minutes = models.PositiveSmallIntegerField(
        default=rules.DEFAULT_KINDS[rules.DOSING].default_minutes
    )
    dosing_min_minutes = models.PositiveSmallIntegerField(
        default=rules.DEFAULT_KINDS[rules.DOSING].min_minutes
    )
    dosing_max_minutes = models.PositiveSmallIntegerField(
        default=rules.DEFAULT_KINDS[rules.DOSING].max_minutes
    )
    #: Default length in minutes per appointment kind ({"consultation": 45, ...}); a kind not listed
    #: uses rules.DEFAULT_KINDS (dosing: dosing_default_minutes). Checked against the kind's range.
    kind_minutes = models.JSONField(default=dict, blank=True)
    day_starts_hour = models.PositiveSmallIntegerField(default=7)
    day_ends_hour = models.PositiveSmallIntegerField(default=20)


class CalendarFeed(models.Model):
    """A secret iCalendar address for one staff member (in one clinic) or one patient.

    Only a SHA-256 hash of the token is stored; resetting replaces it, so old addresses stop working.
    """

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    patient = models.OneToOneField(
        "patients.Patient", null=True, blank=True, on_delete=models.PROTECT, related_name="calendar_feed"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    show_details = models.BooleanField(
        default=False,
        help_text="Patients only: show the kind of visit and the clinician, not just the clinic.",
    )
    created_at = models.DateTimeField(default=clock.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=(models.Q(user__isnull=True) & models.Q(patient__isnull=False))
                | (models.Q(user__isnull=False) & models.Q(patient__isnull=True)),
                name="feed_has_one_owner",
            ),
            models.UniqueConstraint(fields=["clinic", "user"], name="one_feed_per_staff_clinic"),
        ]


class ReminderStatus(models.TextChoices):
    PENDING = "pending", "Scheduled"
    RETRYING = "retrying", "Failed, will retry"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (gave up)"
    CANCELLED = "cancelled", "Not sent: appointment cancelled"
    SKIPPED = "skipped", "Not sent: no email address"


class Reminder(models.Model):
    """One reminder email for one appointment, sent by a background task; failures are retried."""

    MAX_ATTEMPTS = MAX_SEND_ATTEMPTS  # the one retry rule of every outbound email (messaging.retry)

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    appointment = models.ForeignKey(Appointment, on_delete=models.PROTECT, related_name="reminders")
    send_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=ReminderStatus.choices, default=ReminderStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(
        max_length=200, blank=True, help_text="Error class and message; never patient data."
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering: ClassVar = ["send_at", "id"]
        indexes: ClassVar = [
            models.Index(fields=["clinic", "status", "send_at"], name="reminder_clinic_status")
        ]

    @property
    def due_at(self) -> dt.datetime:
        return self.next_attempt_at or self.send_at


class VideoLinkMode(models.TextChoices):
    PERSONAL = "personal", "Each clinician's personal room URL"
    JITSI = "jitsi", "A Jitsi Meet URL pattern with a random room per appointment"


class TelehealthSettings(models.Model):
    """How a clinic's video links are made (issue 17). No video runs here: the link opens the clinic's
    chosen service. A missing row means: personal rooms, link shown 15 minutes before the start."""

    clinic = models.OneToOneField("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    mode = models.CharField(max_length=10, choices=VideoLinkMode.choices, default=VideoLinkMode.PERSONAL)
    #: https only; "{room}" is replaced by the appointment's random room name.
    jitsi_pattern = models.CharField(max_length=200, blank=True)
    minutes_before = models.PositiveSmallIntegerField(default=15)
    updated_at = models.DateTimeField(default=clock.now)
    updated_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")


class ClinicianRoom(models.Model):
    """A clinician's personal video room URL in one clinic (https only)."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    url = models.CharField(max_length=300)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["clinic", "user"], name="clinician_room_unique")
        ]
