"""The one way the application sends email.

`queue()` writes an OutboundMessage in the caller's transaction (so the message exists exactly when the
event does) and, after commit, hands it to the background worker (`messaging.tasks.send_message`). The
web request never talks to the mail server, so a mail server that is down cannot fail a page. A send
that raises is recorded (attempts, error class) and retried with the back-off of `messaging.retry`
(5, 15, 45, 135, 240 min; five attempts); after that the message is "failed", shown to the clinic's
admins on /messages/ with a "Retry now" button, and the kind's final-failure handler runs (a safety
alert escalates to the clinic's on-call prescriber). `manage.py send_due_messages` re-queues anything
due: a safety net for cron in case the worker queue lost a task.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from django.core.mail import send_mail
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from kapclinic.audit.services import record_event
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.errors import DomainError
from kapclinic.messaging import retry
from kapclinic.messaging.models import (
    URGENT_KINDS,
    URGENT_TASK_PRIORITY,
    Channel,
    MessageStatus,
    OutboundMessage,
    SmsPreference,
)

logger = logging.getLogger(__name__)

#: kind -> called (inside the delivery transaction) when a message of that kind is given up on.
_FINAL_FAILURE: dict[str, Callable[[OutboundMessage], None]] = {}


def on_final_failure(kind: str, handler: Callable[[OutboundMessage], None]) -> None:
    """Register what happens when a message of `kind` cannot be delivered (called from AppConfig.ready)."""
    _FINAL_FAILURE[kind] = handler


def _encrypt(body: str) -> str:
    from kapclinic.notes import crypto

    return crypto.encrypt(body)


def _decrypt(token: str) -> str:
    from kapclinic.notes import crypto

    return crypto.decrypt(token)


def queue(
    *,
    kind: str,
    to_email: str,
    subject: str,
    body: str,
    clinic: Any = None,
    to_user: Any = None,
    related: models.Model | None = None,
) -> OutboundMessage:
    """Record one email to one address and send it from the worker once the caller's transaction commits."""
    related_type = related_id = None
    if related is not None:
        related_type, related_id = related._meta.label_lower, related.pk
    message = OutboundMessage.objects.create(
        clinic=clinic,
        kind=kind,
        to_email=to_email,
        to_user=to_user,
        subject=subject[:200],
        body_encrypted=_encrypt(body),
        next_attempt_at=clock.now(),
        related_type=related_type or "",
        related_id=related_id,
    )
    mid = message.pk
    transaction.on_commit(lambda: enqueue(mid))
    return message


def queue_sms(
    *, kind: str, patient: Any, body: str, related: models.Model | None = None
) -> OutboundMessage | None:
    """Queue one text to a patient who chose texts, consented and has not sent STOP (else nothing).
    Same queue, worker, retries and undelivered list as email. `body` comes from the builders in
    messaging.sms (no clinical detail)."""
    pref = SmsPreference.objects.filter(patient=patient).first()
    if pref is None or not pref.may_text:
        return None
    related_type = related_id = None
    if related is not None:
        related_type, related_id = related._meta.label_lower, related.pk
    message = OutboundMessage.objects.create(
        clinic_id=patient.clinic_id,
        kind=kind,
        channel=Channel.SMS,
        to_phone=pref.phone_e164,
        subject="Text message",
        body_encrypted=_encrypt(body),
        next_attempt_at=clock.now(),
        related_type=related_type or "",
        related_id=related_id,
    )
    mid = message.pk
    transaction.on_commit(lambda: enqueue(mid))
    return message


def enqueue(message_id: int, run_after: dt.datetime | None = None, *, urgent: bool | None = None) -> None:
    """Hand the message to the task runner. Never raises: an unqueued message stays due in the database
    and `send_due_messages` picks it up."""
    from kapclinic.messaging.tasks import send_message

    task = send_message
    if urgent is None:
        kind = OutboundMessage.objects.filter(pk=message_id).values_list("kind", flat=True).first()
        urgent = kind in URGENT_KINDS
    try:
        if urgent:
            task = task.using(priority=URGENT_TASK_PRIORITY)
        if run_after is not None and run_after > timezone.now() and task.get_backend().supports_defer:
            task = task.using(run_after=run_after)
        task.enqueue(message_id)
    except Exception:  # the row stays due; send_due_messages queues it again
        logger.exception("could not queue message %s", message_id)


def send_email(subject: str, body: str, *, to_email: str) -> None:
    """The transport for every email (messages and appointment reminders). Raises on failure."""
    send_mail(subject, body, None, [to_email], fail_silently=False)


def deliver(message_id: int) -> str:
    """Send one message if it is due. Returns what happened (the task's result)."""
    now = clock.now()
    with transaction.atomic():
        message = OutboundMessage.objects.select_for_update().filter(pk=message_id).first()
        if message is None:
            return "missing"
        if message.status not in (MessageStatus.QUEUED, MessageStatus.RETRYING):
            return message.status
        if message.due_at > now:
            return "not-due"
        message.attempts += 1
        message.last_attempt_at = now
        try:
            if message.channel == Channel.SMS:
                if not _may_still_text(message):
                    message.status = MessageStatus.FAILED
                    message.last_error_class = "OptedOut"
                    message.next_attempt_at = None
                    message.body_encrypted = ""
                    message.save()
                    return "opted-out"
                from kapclinic.messaging.sms import get_sender

                get_sender().send(message.to_phone, _decrypt(message.body_encrypted))
            else:
                send_email(message.subject, _decrypt(message.body_encrypted), to_email=message.to_email)
        except Exception as exc:  # any transport failure: record the class and retry later
            message.last_error_class = retry.error_class(exc)
            if message.attempts >= retry.MAX_ATTEMPTS:
                message.status = MessageStatus.FAILED
                message.next_attempt_at = None
            else:
                message.status = MessageStatus.RETRYING
                message.next_attempt_at = now + retry.retry_delay(message.attempts)
            message.save()
            logger.warning(
                "message %s (%s) attempt %s failed: %s",
                message.pk,
                message.kind,
                message.attempts,
                message.last_error_class,
            )
            if message.status == MessageStatus.RETRYING:
                mid, when, urgent = message.pk, message.next_attempt_at, message.kind in URGENT_KINDS
                transaction.on_commit(lambda: enqueue(mid, when, urgent=urgent))
                return "retrying"
            handler = _FINAL_FAILURE.get(message.kind)
            if handler is not None:
                handler(message)
            return "failed"
        message.status = MessageStatus.SENT
        message.sent_at = now
        message.next_attempt_at = None
        message.last_error_class = ""
        message.body_encrypted = ""  # sent: the single-use link it may hold is not kept
        message.save()
        return "sent"


def _may_still_text(message: OutboundMessage) -> bool:
    """A STOP that arrived after the text was queued wins: it is not sent."""
    return not SmsPreference.objects.filter(phone_e164=message.to_phone, stopped_at__isnull=False).exists()


@transaction.atomic
def retry_now(actor: Actor, message: OutboundMessage) -> OutboundMessage:
    """Someone at the clinic asks to try an undelivered message again now."""
    message = OutboundMessage.objects.select_for_update().get(pk=message.pk)
    if message.status not in (MessageStatus.FAILED, MessageStatus.RETRYING, MessageStatus.QUEUED):
        raise DomainError(
            f"Only undelivered messages can be retried; this one is {message.get_status_display().lower()}."
        )
    message.status = MessageStatus.RETRYING if message.attempts else MessageStatus.QUEUED
    message.next_attempt_at = clock.now()
    if message.attempts >= retry.MAX_ATTEMPTS:
        message.attempts = retry.MAX_ATTEMPTS - 1  # one more try
    message.save()
    record_event(actor, "update", obj=message, detail=f"retry kind={message.kind}")
    mid, urgent = message.pk, message.kind in URGENT_KINDS
    transaction.on_commit(lambda: enqueue(mid, urgent=urgent))
    return message


def due_message_ids(now: dt.datetime | None = None) -> list[int]:
    """Messages whose (next) attempt is due, urgent kinds first (used by send_due_messages)."""
    now = now or clock.now()
    rows = (
        OutboundMessage.objects.filter(
            Q(status__in=[MessageStatus.QUEUED, MessageStatus.RETRYING]),
            Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True),
        )
        .order_by("next_attempt_at", "id")
        .values_list("pk", "kind")[:1000]
    )
    ordered = sorted(rows, key=lambda r: r[1] not in URGENT_KINDS)
    return [pk for pk, _kind in ordered]


# --- text-message preferences (issue 17) ---------------------------------------------------------


@transaction.atomic
def sms_preference_update(
    actor: Actor, patient: Any, *, phone: str, wants_sms: bool, consent: bool, stopped: bool
) -> SmsPreference:
    """Record the patient's number and choice. Consent is dated when first given; a STOP recorded by
    staff (or by the patient's reply) ends texts until consent is given again."""
    from kapclinic.messaging.sms import e164

    number = e164(phone)
    if number is None:
        raise DomainError(
            "Mobile number: write it in international form with the country code, e.g. +1 202 555 0142."
        )
    if wants_sms and not consent and not stopped:
        raise DomainError("Texts: record the patient's consent to texts before choosing them.")
    now = clock.now()
    pref = SmsPreference.objects.select_for_update().filter(patient=patient).first() or SmsPreference(
        patient=patient
    )
    pref.phone_e164 = number
    pref.wants_sms = wants_sms
    if consent and (pref.consent_at is None or pref.stopped_at is not None) and not stopped:
        pref.consent_at, pref.consent_recorded_by = now, actor.user
        pref.stopped_at, pref.stop_source = None, ""
    if not consent:
        pref.consent_at, pref.consent_recorded_by = None, None
    if stopped and pref.stopped_at is None:
        pref.stopped_at, pref.stop_source = now, "staff"
    pref.updated_at = now
    pref.save()
    record_event(
        actor, "update", patient=patient, obj=pref, detail=f"sms wants={int(wants_sms)} stop={int(stopped)}"
    )
    return pref


@transaction.atomic
def sms_inbound(from_number: str, body: str) -> int:
    """A text received by the clinic's number (the provider's webhook). STOP words stop texts to every
    patient with that number (recorded, audited); anything else is ignored (texts are not a channel
    for care: the auto-reply of the provider account should say so). Returns how many were stopped."""
    from kapclinic.messaging.sms import e164, is_stop

    number = e164(from_number)
    if number is None or not is_stop(body):
        return 0
    now = clock.now()
    stopped = 0
    for pref in (
        SmsPreference.objects.select_for_update()
        .select_related("patient__clinic")
        .filter(phone_e164=number, stopped_at__isnull=True)
    ):
        pref.stopped_at, pref.stop_source, pref.updated_at = now, "reply", now
        pref.save(update_fields=["stopped_at", "stop_source", "updated_at"])
        record_event(
            Actor.system(pref.patient.clinic, "sms-stop"),
            "update",
            patient=pref.patient,
            obj=pref,
            detail="STOP",
        )
        stopped += 1
    return stopped


# --- the patient's own choice, in the portal (issue 17) ------------------------------------------

#: `SmsPreference.stop_source` when the patient withdrew consent in the portal.
STOP_PORTAL = "portal"


@transaction.atomic
def sms_portal_update(
    actor: Actor, patient: Any, *, phone: str, wants_sms: bool, consent: bool
) -> SmsPreference:
    """The patient records their number, whether they want texts, and their consent (dated when given,
    by them). Unticking consent that was in force withdraws it (like a STOP, recorded as the portal's)."""
    from kapclinic.messaging.sms import e164

    number = e164(phone)
    if number is None:
        raise DomainError(
            field_errors={
                "phone": [
                    "Mobile number: write it with + and your country code, e.g. +1 202 555 0142 "
                    "(this is not a valid number in that form)."
                ]
            }
        )
    if wants_sms and not consent:
        raise DomainError(
            field_errors={"consent": ["To get texts, tick the box to say you agree to receive them."]}
        )
    now = clock.now()
    pref = SmsPreference.objects.select_for_update().filter(patient=patient).first() or SmsPreference(
        patient=patient
    )
    in_force = bool(pref.consent_at and pref.stopped_at is None)
    pref.phone_e164 = number
    pref.wants_sms = wants_sms
    if consent and not in_force:
        pref.consent_at, pref.consent_recorded_by = now, actor.require_user()
        pref.stopped_at, pref.stop_source = None, ""
    elif not consent and in_force:
        pref.stopped_at, pref.stop_source = now, STOP_PORTAL
    pref.updated_at = now
    pref.save()
    record_event(
        actor,
        "update",
        patient=patient,
        obj=pref,
        detail=f"sms portal wants={int(wants_sms)} consent={int(consent)}",
    )
    return pref


@transaction.atomic
def sms_portal_withdraw(actor: Actor, patient: Any) -> SmsPreference:
    """The patient withdraws consent to texts: nothing more is sent (texts already queued included) until
    they agree again. The date consent was given stays on record, with the date it was withdrawn."""
    pref = SmsPreference.objects.select_for_update().filter(patient=patient).first()
    if pref is None or pref.consent_at is None or pref.stopped_at is not None:
        raise DomainError("You have not agreed to texts, so there is nothing to withdraw.")
    now = clock.now()
    pref.stopped_at, pref.stop_source, pref.wants_sms, pref.updated_at = now, STOP_PORTAL, False, now
    pref.save(update_fields=["stopped_at", "stop_source", "wants_sms", "updated_at"])
    record_event(actor, "update", patient=patient, obj=pref, detail="sms portal withdraw")
    return pref
