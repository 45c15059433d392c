"""Reads of outbound messages."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from kapclinic.messaging.models import UNDELIVERED, MessageStatus, OutboundMessage


def messages_for_clinic(clinic: Any, *, problems_only: bool = True) -> QuerySet[OutboundMessage]:
    qs = OutboundMessage.objects.filter(clinic=clinic).select_related("to_user")
    if problems_only:
        qs = qs.filter(status__in=UNDELIVERED).exclude(status=MessageStatus.QUEUED, attempts=0)
    return qs.order_by("-created_at", "-id")


def undelivered_counts(clinic: Any) -> dict[str, int]:
    """How many of the clinic's messages failed for good and how many are being retried (one query)."""
    return OutboundMessage.objects.filter(clinic=clinic).aggregate(
        failed=Count("id", filter=Q(status=MessageStatus.FAILED)),
        retrying=Count("id", filter=Q(status=MessageStatus.RETRYING)),
    )


def related_messages(obj: Any) -> QuerySet[OutboundMessage]:
    return OutboundMessage.objects.filter(
        related_type=obj._meta.label_lower, related_id=obj.pk
    ).select_related("to_user")
