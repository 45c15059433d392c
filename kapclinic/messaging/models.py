"""Every email the application sends: queued with the event, sent by the background worker, retried."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from django.db import models

from kapclinic.core import clock


class MessageKind(models.TextChoices):
    SAFETY_ALERT = "safety_alert", "Safety alert notification"
    SAFETY_ESCALATION = "safety_escalation", "Safety alert escalation"
    STAFF_INVITE = "staff_invite", "Staff invitation"
    PORTAL_INVITE = "portal_invite", "Patient portal invitation"
    PASSWORD_RESET = "password_reset", "Password reset"
    MEASURE_LINK = "measure_link", "Questionnaire link"
    APPOINTMENT_REMINDER = "appointment_reminder", "Appointment reminder"
    SECURE_MESSAGE = "secure_message", "New secure message notice"


#: Run before every other task when the worker has a backlog (django-tasks runs higher priority first).
URGENT_KINDS = frozenset({MessageKind.SAFETY_ALERT, MessageKind.SAFETY_ESCALATION})
URGENT_TASK_PRIORITY = 50


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "Text message"


class MessageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RETRYING = "retrying", "Failed, will retry"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (gave up)"


UNDELIVERED = (MessageStatus.QUEUED, MessageStatus.RETRYING, MessageStatus.FAILED)


class OutboundMessage(models.Model):
    """One email to one address.

    The body is rendered when the event happens (so a retry sends exactly what was meant), stored
    encrypted (it may hold a single-use link) and erased once sent. Subjects and bodies carry no more
    than the emails always did: no clinical detail."""

    clinic = models.ForeignKey(
        "accounts.Clinic", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=24, choices=MessageKind.choices)
    channel = models.CharField(max_length=5, choices=Channel.choices, default=Channel.EMAIL)
    to_email = models.EmailField(blank=True)
    #: E.164, for text messages (issue 17).
    to_phone = models.CharField(max_length=16, blank=True)
    #: Staff recipients only (shown as "Notified: ..."); empty for patients.
    to_user = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    subject = models.CharField(max_length=200)
    body_encrypted = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=MessageStatus.choices, default=MessageStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error_class = models.CharField(
        max_length=80, blank=True, help_text="The exception class of the last failed send; never its text."
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    #: What the message is about, e.g. ("measures.safetyalert", 12); never shown to the recipient.
    related_type = models.CharField(max_length=60, blank=True)
    related_id = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]
        indexes: ClassVar = [
            models.Index(fields=["status", "next_attempt_at"], name="message_due"),
            models.Index(fields=["clinic", "status", "-created_at"], name="message_clinic_status"),
            models.Index(fields=["related_type", "related_id"], name="message_related"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.recipient}"

    @property
    def recipient(self) -> str:
        return self.to_phone if self.channel == Channel.SMS else self.to_email

    @property
    def due_at(self) -> dt.datetime:
        return self.next_attempt_at or self.created_at

    @property
    def is_undelivered(self) -> bool:
        return self.status in UNDELIVERED


class SmsPreference(models.Model):
    """A patient's text-message choice (issue 17): the number (E.164), whether reminders and
    questionnaire links go by text too, when consent to texts was given and by whom it was recorded,
    and a STOP (from the provider's inbound webhook or recorded by staff), which ends all texts until
    consent is given again. Texts carry no clinical detail."""

    patient = models.OneToOneField(
        "patients.Patient", on_delete=models.PROTECT, related_name="sms_preference"
    )
    phone_e164 = models.CharField(max_length=16)
    wants_sms = models.BooleanField(default=False)
    consent_at = models.DateTimeField(null=True, blank=True)
    consent_recorded_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_source = models.CharField(max_length=20, blank=True)  # "reply" (STOP by text) or "staff"
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        indexes: ClassVar = [models.Index(fields=["phone_e164"], name="sms_pref_phone")]

    @property
    def may_text(self) -> bool:
        return bool(self.wants_sms and self.consent_at and self.stopped_at is None and self.phone_e164)
