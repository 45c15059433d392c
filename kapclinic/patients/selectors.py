from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from kapclinic.clinical.eligibility.chart_medications import ChartMedication
from kapclinic.core import clock, request_cache
from kapclinic.core.actor import Actor
from kapclinic.patients.models import (
    Allergy,
    CareTeamMember,
    CareTeamRole,
    Diagnosis,
    DrugClass,
    Medication,
    PathwayStatus,
    Patient,
    TimelineCategory,
    TimelineEvent,
)
from kapclinic.policy import Action, visible_patients

logger = logging.getLogger(__name__)

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


class TimelineRow:
    """One timeline line as the chart shows it: plain values, its time already written out in the
    viewer's time zone (what ``|date:'c'`` and ``|date:"Y-m-d H:i"`` printed per row before)."""

    __slots__ = ("actor_name", "at", "at_iso", "at_text", "pk", "title", "url")

    def __init__(self, pk: int, at: dt.datetime, title: str, url: str, actor_name: str | None) -> None:
        local = timezone.localtime(at)
        self.pk = pk
        self.at = at
        self.title = title
        self.url = url
        self.actor_name = actor_name  # None when the event has no actor
        self.at_iso = local.isoformat()
        self.at_text = (
            f"{local.year:04d}-{local.month:02d}-{local.day:02d} {local.hour:02d}:{local.minute:02d}"
        )


_STATUS_LABELS: dict[str, str] = dict(PathwayStatus.choices)


class PatientRow:
    """One line of the patient list: the shown values, written out once here rather than per row in
    the template (the chart link, the birth date, the stage's label)."""

    __slots__ = ("dob", "mrn", "name", "pk", "pronouns", "status", "url")

    def __init__(self, patient: Patient, url: str) -> None:
        dob = patient.date_of_birth
        self.pk = patient.pk
        self.url = url
        self.name = f"{patient.legal_last_name}, {patient.preferred_name or patient.legal_first_name}"
        self.pronouns = patient.pronouns
        self.mrn = patient.mrn
        self.dob = f"{dob.year:04d}-{dob.month:02d}-{dob.day:02d}"
        self.status = _STATUS_LABELS.get(patient.pathway_status, patient.pathway_status)


def _timeline_link(pk: int, url_name: str, url_kwargs: dict[str, Any]) -> str:
    """The address of a timeline line's subject, built now (no query). A name that no longer reverses
    (a URL removed since the event was written) leaves the line unlinked rather than breaking the chart."""
    if not url_name:
        return ""
    try:
        return reverse(url_name, kwargs=url_kwargs)
    except NoReverseMatch:
        logger.warning("timeline event %s links to %r, which no longer reverses", pk, url_name)
        return ""


def timeline_page(
    patient: Patient,
    *,
    clinical: bool,
    before: tuple[dt.datetime, int] | None = None,
    limit: int = TIMELINE_PAGE,
) -> tuple[list[TimelineRow], tuple[dt.datetime, int] | None]:
    """Keyset-paginated timeline, newest first. Returns the rows and the cursor for the next page.

    Only the shown columns are read (and the actor's name, not the whole user row)."""
    qs = TimelineEvent.objects.filter(patient_id=patient.pk)
    if not clinical:
        qs = qs.filter(category=TimelineCategory.ADMIN)
    if before is not None:
        at, pk = before
        qs = qs.filter(Q(at__lt=at) | Q(at=at, id__lt=pk))
    values = qs.order_by("-at", "-id").values_list(
        "id", "at", "title", "url_name", "url_kwargs", "actor_id", "actor__full_name"
    )
    rows = [
        TimelineRow(
            pk, at, title, _timeline_link(pk, url_name, url_kwargs), None if actor_id is None else name
        )
        for pk, at, title, url_name, url_kwargs, actor_id, name in values[: limit + 1]
    ]
    cursor = (rows[limit - 1].at, rows[limit - 1].pk) if len(rows) > limit else None
    return rows[:limit], cursor


_ROLE_LABELS: dict[str, str] = dict(CareTeamRole.choices)
_DRUG_CLASS_LABELS: dict[str, str] = dict(DrugClass.choices)
#: Classes shown with a warning badge on the chart (interactions with ketamine).
_WARN_CLASSES = frozenset({"benzodiazepine", "opioid", "stimulant", "maoi", "sedative"})


def active_medications(patient: Patient) -> list[ChartMedication]:
    """The chart's current (active) medications, read once per request (one query).

    For pages that only read: the chart shows this list and its pathway panel checks the eligibility
    decision against the same list. Services that add or stop a medication call
    ``request_cache.forget()`` so the rest of their request reads the new list."""

    def load() -> list[ChartMedication]:
        rows = (
            Medication.objects.filter(patient_id=patient.pk, active=True)
            .order_by("recorded_at", "id")
            .values_list("id", "name", "dose", "drug_class")
        )
        return [ChartMedication(*row) for row in rows]

    return request_cache.remember(("patients.active_medications", patient.pk), load)


def chart_lists(patient: Patient, *, clinical: bool) -> dict[str, Any]:
    """The chart's care team, and for clinical viewers its diagnoses, current medications and
    allergies: only the shown columns, labels looked up once."""
    care_team = [
        {"name": name, "role": _ROLE_LABELS.get(role, role)}
        for role, name in CareTeamMember.objects.filter(patient_id=patient.pk)
        .order_by("role")
        .values_list("role", "user__full_name")
    ]
    if not clinical:
        return {"care_team": care_team, "diagnoses": (), "medications": (), "allergies": ()}
    diagnoses = list(Diagnosis.objects.filter(patient_id=patient.pk).values("icd10", "description", "snomed"))
    medications = [
        {
            "stop_url": reverse("patients:stop_medication", args=[patient.pk, m.id]),
            "name": m.name,
            "dose": m.dose,
            "drug_class": m.chart_class,
            "label": _DRUG_CLASS_LABELS.get(m.chart_class, m.chart_class),
            "warn": m.chart_class in _WARN_CLASSES,
        }
        # The list is read in the order it was recorded; shown in the order of the rows (as before).
        for m in sorted(active_medications(patient), key=lambda m: m.id)
    ]
    allergies = list(Allergy.objects.filter(patient_id=patient.pk).values("substance", "reaction"))
    return {
        "care_team": care_team,
        "diagnoses": diagnoses,
        "medications": medications,
        "allergies": allergies,
    }


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
