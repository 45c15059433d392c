"""Reads of the measures app. Every function uses a constant number of queries (tests assert it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db.models import Count, F, Max, OuterRef, Q, QuerySet, Subquery, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from kapclinic.clinical.instruments import bands_for, get_instrument
from kapclinic.clinical.session_state import Phq9Evidence, Phq9Window, phq9_window
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.measures import hooks
from kapclinic.measures.models import (
    Episode,
    InstrumentKey,
    InstrumentResponse,
    MeasurementSchedule,
    MeasureSettings,
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
from kapclinic.policy import Action, visible_patients

PHASES = {
    PathwayStatus.ASSESSMENT: INTAKE,
    PathwayStatus.ACTIVE: INDUCTION,
    PathwayStatus.MAINTENANCE: MAINTENANCE,
}


# ---------------------------------------------------------------- alerts


def overdue_cutoff(clinic: Any) -> dt.datetime:
    return clock.now() - dt.timedelta(hours=measure_settings(clinic).alert_overdue_hours)


def open_alerts(actor: Actor) -> QuerySet[SafetyAlert]:
    """Open alerts of every patient whose clinical record the actor may view (urgent, then oldest first)."""
    patients = visible_patients(actor, Action.VIEW_CLINICAL).values("pk")
    return (
        SafetyAlert.objects.filter(clinic=actor.clinic, acknowledged_at__isnull=True, patient__in=patients)
        .select_related("patient")
        .order_by("-urgent", "raised_at", "id")
    )


# ---------------------------------------------------------------- per patient


@dataclass(frozen=True)
class InstrumentView:
    key: str
    title: str
    rows: list[InstrumentResponse]
    bands: list[dict[str, Any]]
    max_total: int
    cutoff: int | None  # remission / probable-PTSD line
    rc_points: float


def patient_instruments(patient: Patient) -> list[InstrumentView]:
    """Responses of the patient's open episodes, per instrument, with what the chart needs."""
    rows = list(
        InstrumentResponse.objects.filter(patient=patient, episode__ended_at__isnull=True)
        .select_related("entered_by")
        .order_by("completed_at", "id")
    )
    scoring = scoring_settings_for(patient.clinic_id)
    views: list[InstrumentView] = []
    for key in InstrumentKey.values:
        inst = get_instrument(key)
        mine = [r for r in rows if r.instrument == key]
        if not mine:
            continue
        oc = outcome_settings_for(patient.clinic_id, key)
        from kapclinic.clinical.outcomes import s_diff

        rc = float(oc.rc_min_points) if oc.rc_min_points else oc.rci_z * s_diff(oc.rci_sd, oc.rci_r)
        views.append(
            InstrumentView(
                key=key,
                title=inst.title,
                rows=mine,
                bands=[
                    {"min": b.min, "max": b.max, "code": b.code, "label": b.label}
                    for b in bands_for(inst, scoring)
                ],
                max_total=inst.max_total,
                cutoff=oc.remission_below,
                rc_points=round(rc, 1),
            )
        )
    return views


def latest_by_instrument(patient: Patient) -> list[InstrumentResponse]:
    rows = InstrumentResponse.objects.filter(patient=patient).order_by("instrument", "-completed_at", "-id")
    seen: dict[str, InstrumentResponse] = {}
    for row in rows[:60]:
        seen.setdefault(row.instrument, row)
    return list(seen.values())


def patient_alerts(patient: Patient) -> QuerySet[SafetyAlert]:
    return patient.safety_alerts.select_related("acknowledged_by", "response").order_by("-raised_at", "-id")


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
    trauma = set(
        Diagnosis.objects.filter(patient_id__in=ids, status="active", icd10__startswith="F43.1").values_list(
            "patient_id", flat=True
        )
    )
    doses = hooks.dosing_times(ids)
    upcoming = hooks.next_dosing(ids)
    out: list[DueRow] = []
    for p in patients:
        pid = p["pk"]
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
                phase=PHASES[PathwayStatus(p["pathway_status"])],
                intake_at=p["created_at"],
                last_response_at=last.get((pid, key)),
                last_dosing_at=past[-1] if past else None,
                next_dosing_at=upcoming.get(pid),
            )
            if due is not None and due.due:
                name = f"{p['preferred_name'] or p['legal_first_name']} {p['legal_last_name']}"
                out.append(DueRow(pid, name, p["mrn"], due))
    out.sort(key=lambda r: (not r.due.overdue, r.due.due_at, r.patient_name))
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
