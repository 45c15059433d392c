"""Monitoring: the observation timeline and the vitals checks due."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from kapclinic.clinical.protocols import Protocol
from kapclinic.clinical.session_state import SL_OUTCOMES
from kapclinic.clinical.vitals import LOINC, DueItem, Vital, due_vitals
from kapclinic.core import clock
from kapclinic.sessions.models import (
    DosingSession,
    ObservationKind,
)
from kapclinic.sessions.selectors.record import _OBSERVATION_KIND_LABELS, ObservationRow, SessionRecord


@dataclass(frozen=True)
class TimelineRow:
    at: dt.datetime
    minutes: int | None  # minutes from first dose (None before dosing)
    kind: str
    text: str
    by: str
    severity: str = ""

    @property
    def offset_text(self) -> str:
        """ "+12" after the first dose, "−3" before it (a pre-dose reading), "–" when there is no dose."""
        if self.minutes is None:
            return "–"
        return f"+{self.minutes}" if self.minutes >= 0 else f"−{-self.minutes}"


_VITAL_LABEL = {LOINC[v].loinc: (v, LOINC[v]) for v in Vital}


def _rel(at: dt.datetime, start: dt.datetime | None) -> int | None:
    if start is None:
        return None
    return int((at - start).total_seconds() // 60)


def monitoring_timeline(session: DosingSession, record: SessionRecord | None = None) -> list[TimelineRow]:
    """All monitoring entries on one clock from dose start (process notes excluded on purpose). The
    observations, alerts and administration come from the page's ``record`` when it has one."""
    start = session.first_dose_at
    record = record or SessionRecord(session)
    rows: list[TimelineRow] = []
    readings: dict[int, list[ObservationRow]] = {}
    for o in record.observations:
        if o.kind == ObservationKind.VITAL:
            readings.setdefault(o.reading, []).append(o)
        else:
            rows.append(
                TimelineRow(
                    o.at,
                    _rel(o.at, start),
                    _OBSERVATION_KIND_LABELS.get(o.kind, o.kind),
                    f"{o.display} {o.value}",
                    o.recorded_by_name,
                )
            )
    for group in readings.values():
        values = {o.code: o.value for o in group}
        parts = []
        if "8480-6" in values or "8462-4" in values:
            parts.append(f"BP {values.get('8480-6', '–')}/{values.get('8462-4', '–')} mmHg")
        for code, label, unit in (
            ("8867-4", "HR", "/min"),
            ("9279-1", "RR", "/min"),
            ("59408-5", "SpO2", "%"),
        ):
            if code in values:
                parts.append(f"{label} {values[code]}{unit if unit == '%' else ' ' + unit}")
        first = group[0]
        phase = {"pre_dose": "pre-dose", "recovery": "recovery"}.get(first.phase, "")
        rows.append(
            TimelineRow(
                first.at,
                _rel(first.at, start),
                "Vitals" + (f" ({phase})" if phase else ""),
                ", ".join(parts),
                first.recorded_by_name,
            )
        )
    for e in session.events.select_related("recorded_by").all():
        label = dict(_event_codes()).get(e.code, "")
        text = " – ".join(x for x in (label, e.text) if x)
        rows.append(TimelineRow(e.at, _rel(e.at, start), e.get_kind_display(), text, e.recorded_by.full_name))
    for a in record.alerts:
        rows.append(
            TimelineRow(a.raised_at, _rel(a.raised_at, start), "Alert", a.message, "system", a.severity)
        )
        if a.acknowledged_at and a.acknowledged_by:
            rows.append(
                TimelineRow(
                    a.acknowledged_at,
                    _rel(a.acknowledged_at, start),
                    "Alert acknowledged",
                    f"{a.message} Action: {a.action_taken}",
                    a.acknowledged_by.full_name,
                )
            )
    for t in session.transitions.select_related("by").all():
        text = _STEP_TEXT.get(t.event, t.event) + (f": {t.reason}" if t.reason else "")
        rows.append(TimelineRow(t.at, _rel(t.at, start), "Step", text, t.by.full_name))
    admin = record.admin
    if admin is not None:
        ordered = admin.devices or 0
        for d in record.devices:
            rows.append(
                TimelineRow(
                    d.at,
                    _rel(d.at, start),
                    "Dose given",
                    f"Nasal device {d.number} of {ordered} used (two sprays, one per nostril)",
                    d.recorded_by.full_name,
                )
            )
        by = admin.route_recorded_by.full_name if admin.route_recorded_by else ""
        if admin.infusion_stopped_at is not None:
            rate = (
                f"; actual rate {admin.actual_rate_ml_per_h:.1f} mL/h"
                if admin.actual_rate_ml_per_h is not None
                else ""
            )
            rows.append(
                TimelineRow(
                    admin.infusion_stopped_at,
                    _rel(admin.infusion_stopped_at, start),
                    "Dose given",
                    f"Infusion stopped{rate}",
                    by,
                )
            )
        if admin.hold_minutes is not None and admin.route_recorded_at is not None:
            outcome = SL_OUTCOMES.get(admin.sl_outcome, admin.sl_outcome).lower()
            rows.append(
                TimelineRow(
                    admin.route_recorded_at,
                    _rel(admin.route_recorded_at, start),
                    "Dose given",
                    f"Lozenge held {admin.hold_minutes} min, then {outcome}",
                    by,
                )
            )
    rows.sort(key=lambda r: r.at)
    return rows


_STEP_TEXT = {
    "check_in": "Checked in",
    "pass_predose": "Pre-dose checks passed",
    "start_dosing": "Dosing started (first dose)",
    "start_monitoring": "Dosing finished, monitoring",
    "start_recovery": "Recovery started",
    "discharge": "Discharged",
    "abort": "Aborted",
}


def _event_codes() -> list[tuple[str, str]]:
    from kapclinic.sessions.models import INTERVENTIONS, SIDE_EFFECTS

    return [*SIDE_EFFECTS, *INTERVENTIONS]


def vitals_due(
    session: DosingSession, protocol: Protocol, record: SessionRecord | None = None
) -> tuple[DueItem, ...]:
    if record is not None:
        taken = record.vitals_taken_at()
    else:
        taken = list(
            session.observations.filter(kind=ObservationKind.VITAL)
            .values_list("at", flat=True)
            .distinct()
            .order_by("at")
        )
    interval = protocol.vitals_schedule.interval_minutes.value
    return due_vitals(
        protocol.vitals_schedule.checkpoints,
        dose_start=session.first_dose_at,
        now=clock.now(),
        taken_at=taken,
        interval_minutes=int(interval.value) if interval is not None else None,
        recovery_started=session.recovery_started_at,
    )
