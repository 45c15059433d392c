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
    MessageStatus,
    OutboundMessage,
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


def send_email(subject: str, body: str, to_email: str) -> None:
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
            send_email(message.subject, _decrypt(message.body_encrypted), message.to_email)
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


@transaction.atomic
def retry_now(actor: Actor, message: OutboundMessage) -> OutboundMessage:
    """Someone at the clinic asks to try an undelivered message again now."""
    message = OutboundMessage.objects.select_for_update().get(pk=message.pk)
    if message.status not in (MessageStatus.FAILED, MessageStatus.RETRYING, MessageStatus.QUEUED):
        raise DomainError(
            f"Only undelivered emails can be retried; this one is {message.get_status_display().lower()}."
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
