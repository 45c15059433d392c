"""Reads of the portal app, including what staff may see of the journal (shared entries only)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from kapclinic.portal.models import JournalEntry


def shared_entries(patient: Any, *, appointment: Any = None) -> QuerySet[JournalEntry]:
    """Entries the patient currently shares with the care team (withdrawn ones are excluded)."""
    qs = JournalEntry.objects.filter(patient=patient, shared_at__isnull=False).select_related("appointment")
    if appointment is not None:
        qs = qs.filter(appointment=appointment)
    return qs.order_by("created_at", "id")


def journal(patient: Any) -> QuerySet[JournalEntry]:
    return (
        JournalEntry.objects.filter(patient=patient)
        .select_related("appointment")
        .order_by("-created_at", "-id")
    )
