"""Reads of the measures app. Every function uses a constant number of queries (tests assert it).

Over 600 lines: the sections (alerts, per patient, due, clinic outcomes, PHQ-9) each keep a constant
query count that the tests assert; kept in one module with their shared querysets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypedDict

from django.core.cache import cache
from django.db.models import Count, F, Max, OuterRef, Q, QuerySet, Subquery, Window
from django.db.models.functions import RowNumber
from django.template.defaultfilters import floatformat
from django.utils import formats, timezone

from kapclinic.clinical.instruments import bands_for, get_instrument
from kapclinic.clinical.session_state import Phq9Evidence, Phq9Window, phq9_window
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.sentinel import NOT_READ
from kapclinic.measures import hooks
from kapclinic.measures.models import (
    DIAGNOSIS_LABELS,
    OUTCOME_FIELDS,
    RELIABLE_CHANGE_LABELS,
    Episode,
    InstrumentKey,
    InstrumentResponse,
    MeasurementSchedule,
    MeasureSettings,
    ResponseSource,
    SafetyAlert,
)
from kapclinic.measures.schedule import (
    DEFAULT_RULES,
    INDUCTION,
    INTAKE,
    MAINTENANCE,
    Due,
    ScheduleRule,
    next_due,
)
from kapclinic.measures.services import measure_settings, outcome_settings_for, scoring_settings_for
from kapclinic.patients.models import Diagnosis, PathwayStatus, Patient
from kapclinic.policy import ALL as ALL_PATIENTS
from kapclinic.policy import Action, visible_patients
from kapclinic.policy import scope as policy_scope

PHASES = {
    PathwayStatus.ASSESSMENT: INTAKE,
    PathwayStatus.ACTIVE: INDUCTION,
    PathwayStatus.MAINTENANCE: MAINTENANCE,
}


# ---------------------------------------------------------------- alerts


def overdue_cutoff(clinic: Any) -> dt.datetime:
    return clock.now() - dt.timedelta(hours=measure_settings(clinic).alert_overdue_hours)


#: Columns the worklist and the dashboard widget show of an open alert and its patient.
OPEN_ALERT_COLUMNS = (
    "patient_id",
    "urgent",
    "raised_at",
    "acknowledged_at",
    "patient__legal_first_name",
    "patient__preferred_name",
    "patient__legal_last_name",
    "patient__mrn",
    "notified_names",
    "notified_via",
    "escalated_at",
    "escalation_reason",
    "escalated_to__full_name",
)


def open_alerts(actor: Actor) -> QuerySet[SafetyAlert]:
    """Open alerts of every patient whose clinical record the actor may view (urgent, then oldest first).

    For a clinic-wide role that is every patient of the clinic: the joined patient's clinic is checked
    instead of a subquery over the clinic's patients; caseload and self scopes keep the subquery of
    ``visible_patients``."""
    sc = policy_scope(actor, Action.VIEW_CLINICAL)
    qs = SafetyAlert.objects.filter(clinic=actor.clinic, acknowledged_at__isnull=True)
    if sc == ALL_PATIENTS and actor.clinic is not None:
        qs = qs.filter(patient__clinic=actor.clinic)
    else:
        qs = qs.filter(patient__in=visible_patients(actor, Action.VIEW_CLINICAL).values("pk"))
    return (
        qs.select_related("patient", "escalated_to")
        .only(*OPEN_ALERT_COLUMNS)
        .order_by("-urgent", "raised_at", "id")
    )


# ---------------------------------------------------------------- per patient


class Point(NamedTuple):
    """One response on a trajectory chart."""

    completed_at: dt.datetime
    total: int


@dataclass(frozen=True)
class InstrumentPoints:
    """Every response of one instrument's open episode(s), oldest first, as chart points."""

    key: str
    title: str
    max_total: int
    rows: list[Point]


def _open_episode_responses(patient: Patient) -> QuerySet[InstrumentResponse]:
    return InstrumentResponse.objects.filter(patient=patient, episode__ended_at__isnull=True)


def _points_by_instrument(patient: Patient) -> dict[str, list[Point]]:
    points: dict[str, list[Point]] = {}
    rows = (
        _open_episode_responses(patient)
        .order_by("completed_at", "id")
        .values_list("instrument", "completed_at", "total")
    )
    for key, completed_at, total in rows:
        points.setdefault(key, []).append(Point(completed_at, total))
    return points


def patient_instruments(patient: Patient) -> list[InstrumentPoints]:
    """Every response of the patient's open episodes, per instrument, as (date, total) points: what the
    portal's "My progress" charts and score lists show. One query of three columns; no outcome settings
    (the portal shows no verdicts)."""
    points = _points_by_instrument(patient)
    views: list[InstrumentPoints] = []
    for key in InstrumentKey.values:
        if key in points:
            inst = get_instrument(key)
            views.append(InstrumentPoints(key, inst.title, inst.max_total, points[key]))
    return views


#: Follow-up rows per instrument in the trajectory page's change table, besides the baseline row. Twelve
#: covers a six-session induction with a PHQ-9 before each session plus the first months of maintenance,
#: so the rows a clinician reviews at a visit are all on the page; older rows are one link away (the
#: full-history view) and every point stays on the chart.
RECENT_ROWS = 12

#: Columns of InstrumentResponse the change table shows (plus the paper entrant's name).
TABLE_COLUMNS = (
    "instrument",
    "completed_at",
    "source",
    "entered_by_id",
    "entered_by__full_name",
    "total",
    "severity",
    "item9",
    "item9_positive",
    "probable_ptsd",
    "provisional_diagnosis",
    *OUTCOME_FIELDS,
)


def change_table_values(patient: Patient) -> QuerySet[InstrumentResponse, dict[str, Any]]:
    """Responses of the patient's open episodes, oldest first, as dicts of the change table's columns."""
    rows: QuerySet[InstrumentResponse, dict[str, Any]] = (
        _open_episode_responses(patient).order_by("completed_at", "id").values(*TABLE_COLUMNS)
    )  # declared: the stubs cannot type values() of a column tuple
    return rows


class ChangeRow(TypedDict):
    """One row of a change table with its cells' text worked out once (the same text the template
    filters produced: date "M j, Y" in the clinic's time zone, change "%+d", percent floatformat:0)."""

    date: str
    total: int
    item9: int | None
    item9_positive: bool
    severity: str
    probable_ptsd: bool
    diagnosis: str
    is_baseline: bool
    change: str
    percent: str
    is_response: bool | None
    is_relapse: bool
    is_remission: bool | None
    reliable: str
    source: str


_SOURCE_LABELS = dict(ResponseSource.choices)


def _severity_labels(key: str) -> dict[str, str]:
    return {band.code: band.label for band in get_instrument(key).bands}


def change_rows(values: Iterable[dict[str, Any]]) -> list[ChangeRow]:
    """Change-table rows from ``change_table_values`` dicts (any instruments).

    The text is what the template filters gave (``|date:"M j, Y"`` in the current time zone,
    ``|floatformat:0``), produced with the same Django functions but once per month name and per
    distinct percentage instead of once per cell.
    """
    tz = timezone.get_current_timezone()
    months: dict[int, str] = {}
    percents: dict[float, str] = {}
    severity: dict[str, dict[str, str]] = {}
    out: list[ChangeRow] = []
    for v in values:
        key = v["instrument"]
        if key not in severity:
            severity[key] = _severity_labels(key)
        local = v["completed_at"].astimezone(tz)
        if local.month not in months:
            months[local.month] = formats.date_format(local, "M")
        change, percent = v["change"], v["percent_change"]
        if percent is not None and percent not in percents:
            percents[percent] = f"{floatformat(percent, 0)} %"
        source = _SOURCE_LABELS.get(v["source"], v["source"])
        if v["entered_by_id"] is not None and v["source"] == ResponseSource.PAPER:
            source = f"{source} ({v['entered_by__full_name']})"
        out.append(
            {
                "date": f"{months[local.month]} {local.day}, {local.year:04d}",  # "M j, Y"
                "total": v["total"],
                "item9": v["item9"],
                "item9_positive": v["item9_positive"],
                "severity": severity[key].get(v["severity"]) or "—",
                "probable_ptsd": v["probable_ptsd"],
                "diagnosis": DIAGNOSIS_LABELS.get(v["provisional_diagnosis"], ""),
                "is_baseline": v["is_baseline"],
                "change": f"{change:+d}" if change is not None else "",  # |stringformat:"+d"
                "percent": percents[percent] if percent is not None else "n/a (baseline 0)",
                "is_response": v["is_response"],
                "is_relapse": v["is_relapse"],
                "is_remission": v["is_remission"],
                "reliable": RELIABLE_CHANGE_LABELS.get(v["reliable_change"], ""),
                "source": source,
            }
        )
    return out


@dataclass(frozen=True)
class Trajectory:
    """One instrument on the trajectory page: every point for the chart; the baseline row and the
    ``RECENT_ROWS`` most recent rows for the change table."""

    key: str
    title: str
    points: list[Point]
    rows: list[ChangeRow]
    bands: list[dict[str, Any]]
    max_total: int
    cutoff: int | None  # remission / probable-PTSD line
    rc_points: float
    #: Table rows before the left-out ones (the baseline row when it is older than the recent rows).
    gap_at: int = 0

    @property
    def count(self) -> int:
        """Responses in the open episode(s)."""
        return len(self.points)

    @property
    def hidden(self) -> int:
        """Responses between the baseline and the recent rows that the table leaves out."""
        return self.count - len(self.rows)


def instrument_header(patient: Patient, key: str) -> dict[str, Any]:
    """Bands, remission cut-off and reliable-change points of one instrument for this clinic."""
    from kapclinic.clinical.outcomes import s_diff

    inst = get_instrument(key)
    oc = outcome_settings_for(patient.clinic_id, key)
    rc = float(oc.rc_min_points) if oc.rc_min_points else oc.rci_z * s_diff(oc.rci_sd, oc.rci_r)
    scoring = scoring_settings_for(patient.clinic_id)
    return {
        "key": key,
        "title": inst.title,
        "bands": [
            {"min": b.min, "max": b.max, "code": b.code, "label": b.label} for b in bands_for(inst, scoring)
        ],
        "max_total": inst.max_total,
        "cutoff": oc.remission_below,
        "rc_points": round(rc, 1),
    }


def patient_trajectories(patient: Patient, *, recent: int = RECENT_ROWS) -> list[Trajectory]:
    """The trajectory page's instruments (constant number of queries, whatever the history length).

    Points: every response of the open episodes (three columns). Table rows: per instrument the
    ``recent`` most recent responses plus the baseline, picked in SQL by a window function, with only
    the columns the table shows. Outcome settings: one query for all instruments (request memo).
    """
    points = _points_by_instrument(patient)
    if not points:
        return []
    ranked = list(
        _open_episode_responses(patient)
        .annotate(
            recent_rank=Window(
                RowNumber(),
                partition_by=[F("instrument")],
                order_by=[F("completed_at").desc(), F("id").desc()],
            )
        )
        .filter(Q(recent_rank__lte=recent) | Q(is_baseline=True))
        .order_by("completed_at", "id")
        .values(*TABLE_COLUMNS)
    )
    table: dict[str, list[ChangeRow]] = {}
    for value, row in zip(ranked, change_rows(ranked), strict=True):
        table.setdefault(value["instrument"], []).append(row)
    views: list[Trajectory] = []
    for key in InstrumentKey.values:
        if key in points:
            rows = table.get(key, [])
            gap_at = len(rows) - recent if len(points[key]) > len(rows) else 0
            views.append(
                Trajectory(points=points[key], rows=rows, gap_at=gap_at, **instrument_header(patient, key))
            )
    return views


def latest_by_instrument(patient: Patient) -> list[dict[str, Any]]:
    """The latest response of each instrument (all episodes): instrument, total, severity, completed_at.

    One query returning at most one row per instrument: ROW_NUMBER() over each instrument's responses,
    newest first (SQLite 3.25+ and PostgreSQL), instead of reading the 60 most recent rows.
    """
    return list(
        InstrumentResponse.objects.filter(patient=patient)
        .annotate(
            newest=Window(
                RowNumber(),
                partition_by=[F("instrument")],
                order_by=[F("completed_at").desc(), F("id").desc()],
            )
        )
        .filter(newest=1)
        .order_by("instrument")
        .values("instrument", "total", "severity", "completed_at")
    )


#: Columns the trajectory page's alert notices and alert history show.
ALERT_COLUMNS = (
    "patient_id",
    "urgent",
    "raised_at",
    "acknowledged_at",
    "action",
    "action_note",
    "acknowledged_by__full_name",
    "response__item9",
)


def patient_alerts(patient: Patient) -> QuerySet[SafetyAlert]:
    return (
        patient.safety_alerts.select_related("acknowledged_by", "response")
        .only(*ALERT_COLUMNS)
        .order_by("-raised_at", "-id")
    )


def patient_open_alerts(patient: Patient) -> QuerySet[SafetyAlert]:
    """The patient's open (unacknowledged) alerts, newest first, with what the chart panel shows."""
    return (
        SafetyAlert.objects.filter(patient=patient, acknowledged_at__isnull=True)
        .select_related("escalated_to")
        .only(
            "patient_id",
            "urgent",
            "raised_at",
            "acknowledged_at",
            "notified_names",
            "notified_via",
            "escalated_at",
            "escalation_reason",
            "escalated_to__full_name",
        )
        .order_by("-raised_at", "-id")
    )


# ---------------------------------------------------------------- due / overdue


@dataclass(frozen=True)
class DueRow:
    patient_id: int
    patient_name: str
    mrn: str
    due: Due


def due_list(actor: Actor, *, now: dt.datetime | None = None) -> list[DueRow]:
    """Due and overdue measures for the actor's patients in assessment, induction or maintenance."""
    return due_for_patients(visible_patients(actor, Action.VIEW_CLINICAL), now=now)


def due_for_patients(patients_qs: QuerySet[Patient], *, now: dt.datetime | None = None) -> list[DueRow]:
    """Due and overdue measures among ``patients_qs`` (constant number of queries)."""
    now = now or clock.now()
    patients = list(
        patients_qs.filter(pathway_status__in=list(PHASES)).values(
            "pk",
            "legal_first_name",
            "preferred_name",
            "legal_last_name",
            "mrn",
            "pathway_status",
            "created_at",
        )
    )
    ids = [p["pk"] for p in patients]
    due = _due_by_patient(
        [(p["pk"], p["pathway_status"], p["created_at"]) for p in patients], now, hooks.next_dosing(ids)
    )
    out: list[DueRow] = []
    for p in patients:
        name = f"{p['preferred_name'] or p['legal_first_name']} {p['legal_last_name']}"
        out.extend(DueRow(p["pk"], name, p["mrn"], d) for d in due.get(p["pk"], []))
    out.sort(key=lambda r: (not r.due.overdue, r.due.due_at, r.patient_name))
    return out


def due_for_patient(
    patient: Patient, *, next_dosing_at: dt.datetime | None = NOT_READ, now: dt.datetime | None = None
) -> list[Due]:
    """The same as ``due_for_patients`` for one patient already read (the portal home): no patient query,
    and no next-dosing query when the caller already knows the next booked dosing appointment's start
    (``None`` when it knows there is none; ``NOT_READ``, the default, when it does not know)."""
    if patient.pathway_status not in PHASES:
        return []
    now = now or clock.now()
    upcoming = hooks.next_dosing([patient.pk]) if next_dosing_at is NOT_READ else {}
    if next_dosing_at is not NOT_READ and next_dosing_at is not None:
        upcoming = {patient.pk: next_dosing_at}
    due = _due_by_patient([(patient.pk, patient.pathway_status, patient.created_at)], now, upcoming)
    rows = due.get(patient.pk, [])
    rows.sort(key=lambda d: (not d.overdue, d.due_at))
    return rows


def _due_by_patient(
    patients: list[tuple[int, str, dt.datetime]], now: dt.datetime, upcoming: dict[int, dt.datetime]
) -> dict[int, list[Due]]:
    """Due measures per patient id for (id, pathway status, intake time) triples, in instrument order."""
    ids = [pid for pid, _status, _created in patients]
    if not ids:
        return {}
    custom: dict[tuple[int, str], ScheduleRule | None] = {}
    for s in MeasurementSchedule.objects.filter(patient_id__in=ids):
        configured = ScheduleRule(
            s.instrument, s.at_intake, s.before_each_dosing, s.induction_every_days, s.maintenance_every_days
        )
        custom[(s.patient_id, s.instrument)] = configured if s.active else None
    last = {
        (r["patient_id"], r["instrument"]): r["last"]
        for r in InstrumentResponse.objects.filter(patient_id__in=ids)
        .values("patient_id", "instrument")
        .annotate(last=Max("completed_at"))
    }
    # The trauma diagnosis only matters for patients whose PCL-5 follows the default rule.
    default_pcl5 = [pid for pid in ids if (pid, "PCL-5") not in custom]
    trauma = (
        set(
            Diagnosis.objects.filter(
                patient_id__in=default_pcl5, status="active", icd10__startswith="F43.1"
            ).values_list("patient_id", flat=True)
        )
        if default_pcl5
        else set()
    )
    doses = hooks.dosing_times(ids)
    out: dict[int, list[Due]] = {}
    for pid, status, created_at in patients:
        for key in InstrumentKey.values:
            rule: ScheduleRule | None
            if (pid, key) in custom:
                rule = custom[(pid, key)]
            elif key == "PCL-5" and pid not in trauma:
                rule = None  # ref §6.3: PCL-5 "if trauma history"
            else:
                rule = DEFAULT_RULES[key]
            if rule is None:
                continue
            past = doses.get(pid, [])
            due = next_due(
                rule,
                now=now,
                phase=PHASES[PathwayStatus(status)],
                intake_at=created_at,
                last_response_at=last.get((pid, key)),
                last_dosing_at=past[-1] if past else None,
                next_dosing_at=upcoming.get(pid),
            )
            if due is not None and due.due:
                out.setdefault(pid, []).append(due)
    return out


# ---------------------------------------------------------------- clinic outcomes (SQL aggregation)


def _cohort(qs: QuerySet[Episode], dims: list[str]) -> list[dict[str, Any]]:
    rows = list(
        qs.values(*dims)
        .annotate(
            patients=Count("patient", distinct=True),
            with_followup=Count("patient", filter=Q(followup_count__gt=0), distinct=True),
            episodes=Count("id", filter=Q(followup_count__gt=0)),
            responded=Count("id", filter=Q(followup_count__gt=0, responded=True)),
            remission=Count("id", filter=Q(followup_count__gt=0, latest_remission=True)),
            relapsed=Count("id", filter=Q(relapsed=True)),
        )
        .order_by(*dims)
    )
    # Median sessions to response: the middle row(s) of each group picked by window functions in SQL.
    middle = (
        qs.filter(responded=True, sessions_to_response__isnull=False)
        .annotate(
            rn=Window(
                RowNumber(), partition_by=[F(d) for d in dims], order_by=[F("sessions_to_response").asc()]
            ),
            n=Window(Count("id"), partition_by=[F(d) for d in dims]),
        )
        .filter(Q(rn=(F("n") + 1) / 2) | Q(rn=(F("n") + 2) / 2))
        .values_list(*dims, "sessions_to_response")
    )
    mids: dict[tuple[Any, ...], list[int]] = {}
    for *key, value in middle:
        mids.setdefault(tuple(key), []).append(value)
    for row in rows:
        values = mids.get(tuple(row[d] for d in dims))
        row["median_sessions"] = sum(values) / len(values) if values else None
        row["response_rate"] = row["responded"] / row["episodes"] if row["episodes"] else None
        row["remission_rate"] = row["remission"] / row["episodes"] if row["episodes"] else None
    return rows


def clinic_outcomes(clinic: Any) -> dict[str, list[dict[str, Any]]]:
    qs = Episode.objects.filter(clinic=clinic, baseline__isnull=False)
    return {
        "instrument": _cohort(qs, ["instrument"]),
        "protocol": _cohort(qs, ["instrument", "protocol", "route"]),
        "route": _cohort(qs, ["instrument", "route"]),
        "indication": _cohort(qs, ["instrument", "indication"]),
    }


#: Seconds a computed dashboard may be reused. Correctness does not depend on it: the key changes with
#: every new response, new episode or settings change.
OUTCOMES_CACHE_SECONDS = 3600


def outcomes_marker(clinic: Any) -> tuple[Any, ...]:
    """What the dashboard's figures depend on, in one indexed query: the clinic's latest response id
    (every submission updates its episode's summary), latest episode id (restarts) and the measure
    settings version."""
    from kapclinic.accounts.models import Clinic

    clinic_id = getattr(clinic, "pk", clinic)
    latest = (
        Clinic.objects.filter(pk=clinic_id)
        .annotate(
            r=Subquery(
                InstrumentResponse.objects.filter(clinic_id=OuterRef("pk")).order_by("-id").values("id")[:1]
            ),
            e=Subquery(Episode.objects.filter(clinic_id=OuterRef("pk")).order_by("-id").values("id")[:1]),
            s=Subquery(MeasureSettings.objects.filter(clinic_id=OuterRef("pk")).values("version")[:1]),
        )
        .values_list("r", "e", "s")
        .first()
    )
    return (clinic_id, *(latest or ()))


def clinic_outcomes_cached(clinic: Any) -> dict[str, list[dict[str, Any]]]:
    """``clinic_outcomes`` reused from the cache until the clinic's measures data changes (1 query on a
    hit instead of 8 aggregates over every episode of the clinic)."""
    key = "measures:outcomes:" + ":".join(str(v) for v in outcomes_marker(clinic))
    data: dict[str, list[dict[str, Any]]] | None = cache.get(key)
    if data is None:
        data = clinic_outcomes(clinic)
        cache.set(key, data, OUTCOMES_CACHE_SECONDS)
    return data


# ---------------------------------------------------------------- PHQ-9 for a dosing session


@dataclass(frozen=True)
class SessionPhq9:
    """What the dosing gate needs from this app: the window, the latest PHQ-9 in it, open alerts."""

    window: Phq9Window
    evidence: Phq9Evidence | None
    response: InstrumentResponse | None
    open_safety_alerts: int


def session_phq9(
    patient: Patient, *, now: dt.datetime | None = None, previous_dose_at: dt.datetime | None = None
) -> SessionPhq9:
    """The PHQ-9 that counts for a dosing session today, per the clinic's window setting (3 queries)."""
    now = now or clock.now()
    cfg = measure_settings(patient.clinic_id)
    local = timezone.localtime(now)
    window = phq9_window(
        cfg.pre_session_phq9_window,
        now=now,
        day_start=local.replace(hour=0, minute=0, second=0, microsecond=0),
        previous_dose_at=previous_dose_at,
        max_hours=cfg.pre_session_phq9_max_hours,
    )
    response = (
        InstrumentResponse.objects.filter(
            patient=patient,
            instrument=InstrumentKey.PHQ9,
            completed_at__gt=window.start,
            completed_at__lte=window.end,
        )
        .select_related("safety_alert")
        .order_by("-completed_at", "-id")
        .first()
    )
    open_alerts = SafetyAlert.objects.filter(patient=patient, acknowledged_at__isnull=True).count()
    evidence = None
    if response is not None:
        alert = getattr(response, "safety_alert", None)
        action = ""
        if alert is not None and alert.acknowledged_at is not None:
            action = str(alert.get_action_display()) + (
                f" ({alert.action_note})" if alert.action_note else ""
            )
        evidence = Phq9Evidence(
            completed_at=timezone.localtime(response.completed_at),
            total=response.total,
            item9=response.item9,
            item9_urgent=response.item9_urgent,
            acknowledged_action=action,
        )
    return SessionPhq9(window, evidence, response, open_alerts)
