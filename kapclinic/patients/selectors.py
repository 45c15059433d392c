from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet

from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.patients.models import PathwayStatus, Patient, TimelineCategory, TimelineEvent
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


#: How long a clinician's caseload census (counts by pathway stage) may be reused. The census is an
#: overview, not a safety signal: alerts and the patient rows beside it are always read live. Writes in
#: this app forget it at once (forget_caseload_counts); other changes show within this many seconds.
CASELOAD_COUNTS_SECONDS = 60


def _caseload_key(clinic_id: int, user_id: int) -> str:
    return f"caseload-counts:v1:{clinic_id}:{user_id}"


def caseload_counts(clinic_id: int, user_id: int) -> dict[str, Any]:
    """Counts of the user's care-team patients by pathway stage, with ``as_of`` (when counted).

    A prescriber or medical director may sit on every care team of a large clinic: counting them on
    each home-page load grew with the clinic (8 ms at 10,000 patients on PostgreSQL). Reused from the
    cache for CASELOAD_COUNTS_SECONDS, so the page's cost no longer depends on the caseload size."""
    key = _caseload_key(clinic_id, user_id)
    counts: dict[str, Any] | None = cache.get(key)
    if counts is None:
        mine = Patient.objects.filter(clinic_id=clinic_id, care_team__user_id=user_id)
        counts = mine.aggregate(
            total=Count("id"),
            **{status: Count("id", filter=Q(pathway_status=status)) for status in PathwayStatus.values},
        )
        counts["as_of"] = clock.now()
        cache.set(key, counts, CASELOAD_COUNTS_SECONDS)
    return counts


def forget_caseload_counts(patient: Patient) -> None:
    """A patient's stage or care team changed: their care team's censuses are counted afresh once the
    change is committed (forgetting earlier could let a concurrent request cache the old counts)."""
    keys = [
        _caseload_key(patient.clinic_id, uid) for uid in patient.care_team.values_list("user_id", flat=True)
    ]
    transaction.on_commit(lambda: cache.delete_many(keys))
