from __future__ import annotations

import datetime as dt

from django.db import connection
from django.db.models import Q, QuerySet

from kapclinic.core.actor import Actor
from kapclinic.patients.models import Patient, TimelineCategory, TimelineEvent
from kapclinic.policy import Action, visible_patients

TIMELINE_PAGE = 25


def _prefix(column: str, lowered: str) -> Q:
    """A prefix match that an index can serve on both databases. PostgreSQL: LIKE 'x%' on a
    varchar_pattern_ops index (migration 0003). SQLite: its LIKE is case-insensitive and skips plain
    indexes, so a range on the lower-cased column is used instead."""
    if connection.vendor == "postgresql":
        return Q(**{f"{column}__startswith": lowered})
    return Q(**{f"{column}__gte": lowered, f"{column}__lt": lowered + "\U0010ffff"})


def patient_list(actor: Actor, *, query: str = "", status: str = "") -> QuerySet[Patient]:
    qs = visible_patients(actor, Action.VIEW_DEMOGRAPHICS)
    term = query.strip()
    if term:
        lowered = term.lower()
        qs = qs.filter(
            _prefix("search_last", lowered)
            | _prefix("search_first", lowered)
            | _prefix("search_preferred", lowered)
            | Q(mrn=term.upper())
        )
    if status:
        qs = qs.filter(pathway_status=status)
    return qs.order_by("legal_last_name", "legal_first_name", "id")


def timeline_page(
    patient: Patient,
    *,
    clinical: bool,
    before: tuple[dt.datetime, int] | None = None,
    limit: int = TIMELINE_PAGE,
) -> tuple[list[TimelineEvent], tuple[dt.datetime, int] | None]:
    """Keyset-paginated timeline, newest first. Returns the rows and the cursor for the next page."""
    qs = TimelineEvent.objects.filter(patient=patient).select_related("actor")
    if not clinical:
        qs = qs.filter(category=TimelineCategory.ADMIN)
    if before is not None:
        at, pk = before
        qs = qs.filter(Q(at__lt=at) | Q(at=at, id__lt=pk))
    rows = list(qs.order_by("-at", "-id")[: limit + 1])
    cursor = (rows[limit - 1].at, rows[limit - 1].pk) if len(rows) > limit else None
    return rows[:limit], cursor
