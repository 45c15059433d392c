"""Reads for dosing sessions (constant query counts; query-count tested)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Count, Exists, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone

from kapclinic.accounts.models import Role
from kapclinic.clinical.protocols import Protocol
from kapclinic.clinical.session_state import SL_OUTCOMES, State
from kapclinic.clinical.vitals import LOINC, DueItem, Reading, Vital, due_vitals
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.display import date_text, hhmm
from kapclinic.core.links import RowLink
from kapclinic.core.sentinel import NOT_READ
from kapclinic.policy import ALL, CASELOAD, Action, ClinicAction, clinic_can, scope, visible_patients
from kapclinic.scheduling.models import Appointment, Kind, Status
from kapclinic.sessions.models import (
    Administration,
    DeviceUse,
    DosingSession,
    Observation,
    ObservationKind,
    SessionAlert,
    SessionState,
)

REMS_SUBMIT_DAYS = 7  # submit within 7 days [S6a] ref §2.1


def _visible_sessions(actor: Actor) -> QuerySet[DosingSession]:
    """Sessions the actor may see clinically. Clinic-wide roles filter on the session's own clinic
    column (index ``dosing_clinic_when`` with a date range), not ``patient_id IN (every patient of the
    clinic)``, which probes the patient index once per clinic patient (issue #7). Caseload roles keep
    the policy's care-team filter (kapclinic.policy.visible_patients: the patient is in the actor's
    clinic and the actor is on its care team) written as a join rather than ``IN (SELECT DISTINCT ...)``:
    a care team holds a user at most once (constraint ``care_team_unique``), so no session repeats, and
    the query is cheaper to build and to run (issue #7)."""
    sc = scope(actor, Action.VIEW_CLINICAL)
    if sc == ALL and actor.clinic is not None:
        return DosingSession.objects.filter(clinic=actor.clinic)
    if sc == CASELOAD and actor.clinic is not None and actor.user is not None:
        return DosingSession.objects.filter(
            patient__clinic=actor.clinic, patient__care_team__user_id=actor.user.pk
        )
    return DosingSession.objects.filter(patient__in=visible_patients(actor, Action.VIEW_CLINICAL))


def clinic_sessions(actor: Actor, day: dt.date | None = None) -> QuerySet[DosingSession]:
    """Sessions of patients the actor may see clinically; one day, or all when day is None."""
    # Open alerts as a correlated count, not a JOIN + GROUP BY: the database then walks the day's sessions
    # in index order and counts only for the rows a page shows (a busy clinic's day stays as cheap as
    # a quiet one's; the GROUP BY aggregated every session of the day before the LIMIT).
    open_alerts = (
        SessionAlert.objects.filter(session=OuterRef("pk"), acknowledged_at__isnull=True)
        .order_by()
        .values("session")
        .annotate(n=Count("id"))
        .values("n")
    )
    qs = (
        _visible_sessions(actor)
        .select_related("patient")
        .annotate(open_alerts=Coalesce(Subquery(open_alerts, output_field=IntegerField()), 0))
        .order_by("scheduled_for", "id")
    )
    if day is not None:
        start = timezone.make_aware(dt.datetime.combine(day, dt.time.min))
        qs = qs.filter(scheduled_for__gte=start, scheduled_for__lt=start + dt.timedelta(days=1))
    return qs


_STATE_LABELS: dict[str, str] = {str(value): str(label) for value, label in SessionState.choices}


def state_label(state: str) -> str:
    """``session.get_state_display()`` without a model instance."""
    return _STATE_LABELS.get(state, state)


def _open_alert_count() -> RawSQL:
    """The number of open (unacknowledged) alerts of each session row, as a correlated count. Written
    out because the ORM's ``Subquery(...annotate(Count))`` costs more to compile than the whole rest of
    the widget's query; only for a final ``values_list`` over DosingSession's own table (the outer
    table is named, not aliased)."""
    qn = connection.ops.quote_name
    alerts = qn(SessionAlert._meta.db_table)
    session_fk = qn(SessionAlert._meta.get_field("session").column)
    acknowledged = qn(SessionAlert._meta.get_field("acknowledged_at").column)
    sessions = qn(DosingSession._meta.db_table)
    pk = qn(DosingSession._meta.pk.column)
    # Only quoted table and column names from the models go into the text: nothing from a request.
    return RawSQL(  # noqa: S611
        f"SELECT COUNT(*) FROM {alerts} WHERE {alerts}.{session_fk} = {sessions}.{pk}"  # noqa: S608
        f" AND {alerts}.{acknowledged} IS NULL",
        (),
        output_field=IntegerField(),
    )


@dataclass(frozen=True)
class TodaySession:
    """One row of the home page's "Today's dosing sessions" widget, ready to print."""

    pk: int
    patient_id: int
    url: str
    time: str  # scheduled time, H:i in the clinic's time zone
    name: str  # the patient's display name
    state: str  # the state's label
    open_alerts: int
    next_step: str = ""  # after the pre-dose checks: whose part the dose hand-off waits for (issue 18)


def today_sessions(actor: Actor, day: dt.date, limit: int = 20) -> list[TodaySession]:
    """The first ``limit`` sessions of ``day`` that the actor may see clinically, in the order of
    ``clinic_sessions`` (one query: only the shown columns, no model instances; issue #7). A session
    whose pre-dose checks have passed also says what its dose hand-off waits for ("Waiting for the
    prescriber's order."), so the prescriber sees on the home page that it is their turn (issue 18); that
    takes one more query, only when such a session is listed."""
    start = timezone.make_aware(dt.datetime.combine(day, dt.time.min))
    rows = list(
        _visible_sessions(actor)
        .filter(scheduled_for__gte=start, scheduled_for__lt=start + dt.timedelta(days=1))
        .annotate(open_alerts=_open_alert_count())
        .order_by("scheduled_for", "id")
        .values_list(
            "pk",
            "patient_id",
            "scheduled_for",
            "state",
            "patient__preferred_name",
            "patient__legal_first_name",
            "patient__legal_last_name",
            "open_alerts",
            "protocol_id",
            "protocol_version",
        )[:limit]
    )
    link = RowLink("sessions:detail", 2)
    waiting = _handoff_waiting([(r[0], r[3], r[8], r[9]) for r in rows])
    return [
        TodaySession(
            pk=pk,
            patient_id=patient_id,
            url=link(patient_id, pk),
            time=hhmm(when),
            name=f"{preferred or first} {last}",  # Patient.display_name
            state=state_label(state),
            open_alerts=alerts or 0,
            next_step=waiting.get(pk, ""),
        )
        for pk, patient_id, when, state, preferred, first, last, alerts, _pid, _pv in rows
    ]


def rems_overdue(actor: Actor) -> QuerySet[DosingSession]:
    """Esketamine sessions discharged more than 7 days ago whose REMS form is not marked submitted."""
    cutoff = clock.now() - dt.timedelta(days=REMS_SUBMIT_DAYS)
    return (
        _visible_sessions(actor)
        .filter(
            protocol_id__startswith="esketamine",
            state=State.DISCHARGED,
            discharged_at__lt=cutoff,
            rems_submitted_at__isnull=True,
        )
        .select_related("patient")
        .order_by("discharged_at", "id")
    )


def measure_dosing_times(patient_ids: list[int]) -> dict[int, list[dt.datetime]]:
    """First-dose time of each dosed session per patient, oldest first (one query; used by measures)."""
    out: dict[int, list[dt.datetime]] = {pid: [] for pid in patient_ids}
    rows = (
        DosingSession.objects.filter(patient_id__in=patient_ids, first_dose_at__isnull=False)
        .order_by("patient_id", "first_dose_at")
        .values_list("patient_id", "first_dose_at")
    )
    for pid, at in rows:
        if at is not None:  # filtered in the query; the column is nullable
            out.setdefault(pid, []).append(at)
    return out


def sessions_for_appointments(appointment_ids: Iterable[int]) -> dict[int, DosingSession]:
    """The dosing session of each appointment (DosingSession.appointment), one query: the session that
    is not aborted when there is one (at most one per appointment), else the latest aborted one."""
    ids = set(appointment_ids)
    if not ids:
        return {}
    out: dict[int, DosingSession] = {}
    for s in DosingSession.objects.filter(appointment_id__in=ids).order_by("created_at", "id"):
        assert s.appointment_id is not None
        current = out.get(s.appointment_id)
        if current is None or current.state == State.ABORTED:
            out[s.appointment_id] = s
    return out


def session_for_appointment(appointment_id: int | None) -> DosingSession | None:
    if appointment_id is None:
        return None
    return sessions_for_appointments([appointment_id]).get(appointment_id)


def _without_live_session(qs: QuerySet[Appointment]) -> QuerySet[Appointment]:
    live = DosingSession.objects.filter(appointment=OuterRef("pk")).exclude(state=State.ABORTED)
    return qs.filter(kind=Kind.DOSING, status=Status.BOOKED).exclude(Exists(live))


def startable_appointments(patient: Any, limit: int = 5) -> list[Appointment]:
    """This patient's booked dosing appointments from today on that have no session yet (one query)."""
    start = timezone.make_aware(dt.datetime.combine(clock.today(), dt.time.min))
    qs = Appointment.objects.filter(patient=patient, starts_at__gte=start).select_related("resource")
    return list(_without_live_session(qs).order_by("starts_at", "id")[:limit])


def appointments_not_started(actor: Actor, day: dt.date) -> list[Appointment]:
    """Booked dosing appointments of this day with no session yet, for patients the actor may see
    clinically (one query)."""
    start = timezone.make_aware(dt.datetime.combine(day, dt.time.min))
    qs = Appointment.objects.filter(
        patient__in=visible_patients(actor, Action.VIEW_CLINICAL),
        starts_at__gte=start,
        starts_at__lt=start + dt.timedelta(days=1),
    ).select_related("patient", "resource", "staff")
    return list(_without_live_session(qs).order_by("starts_at", "id")[:50])


@dataclass(frozen=True)
class PatientSession:
    """One row of the chart's dosing-sessions panel, ready to print."""

    pk: int
    url: str
    date: str  # scheduled date, "j M Y" in the clinic's time zone
    protocol_id: str
    state: str  # the state's label
    protocol_title: str = ""  # the protocol's name


def protocol_title(protocol_id: str, version: str | None = None) -> str:
    """The protocol's name for lists ("Ketamine IV infusion ..."), from the protocol library (no query);
    the stored id when the library no longer has that protocol."""
    from kapclinic.clinical.protocols import UnknownProtocol, get_protocol

    try:
        return get_protocol(protocol_id, version).title
    except UnknownProtocol:
        return protocol_id


def with_protocol_titles(sessions: Iterable[DosingSession]) -> list[DosingSession]:
    """The sessions, each with ``protocol_title`` set for the list templates (no query)."""
    out = list(sessions)
    for s in out:
        s.protocol_title = protocol_title(s.protocol_id, s.protocol_version)  # type: ignore[attr-defined]
    return out


def patient_sessions(patient: Any, limit: int = 10) -> list[PatientSession]:
    """The patient's latest ``limit`` sessions, newest first (one query of the shown columns)."""
    rows = (
        DosingSession.objects.filter(patient=patient)
        .order_by("-scheduled_for", "-id")
        .values_list("pk", "scheduled_for", "protocol_id", "protocol_version", "state")[:limit]
    )
    link = RowLink("sessions:detail", 2)
    return [
        PatientSession(
            pk,
            link(patient.pk, pk),
            date_text(when, "j M Y"),
            protocol_id,
            state_label(state),
            protocol_title(protocol_id, version),
        )
        for pk, when, protocol_id, version, state in rows
    ]


@dataclass(frozen=True)
class GivenRecord:
    """What was actually given, per route, for the session page, the timeline and the REMS record."""

    form: str  # the protocol's dose form: nasal_device | vial_iv | vial_im | lozenge
    admin: Administration | None
    devices: list[DeviceUse]
    devices_ordered: int
    next_device: int | None  # the number of the next device to record, None when all are recorded
    next_device_from: dt.datetime | None  # the earliest time the next device may be used
    gaps: tuple[str, ...]  # what is missing before dosing can be marked complete
    partial: bool  # fewer devices recorded than ordered

    @property
    def dose_given_mg(self) -> Decimal | None:
        """The dose actually given: for devices, the ordered dose times the share of devices used; for
        an IV infusion that delivered less (stopped early), the amount infused."""
        if self.admin is None or self.admin.administered_at is None:
            return None
        if self.admin.infused_mg is not None:
            return self.admin.infused_mg
        if self.form == "nasal_device" and self.devices_ordered:
            return self.admin.dose_mg * len(self.devices) / self.devices_ordered
        return self.admin.dose_mg


class ObservationRow(NamedTuple):
    """The columns of an observation the session page prints or derives from (no model instance)."""

    id: int
    kind: str
    code: str
    display: str
    value: int
    at: dt.datetime
    reading: int
    phase: str
    recorded_by_name: str


_OBSERVATION_KIND_LABELS = dict(ObservationKind.choices)


class SessionRecord:
    """What one page of a session reads of its record, each part at most once and only when needed: the
    administration (with everyone it names) and its devices, the observations, the alerts. Built for one
    request by the view and dropped with it; nothing is shared between requests. The facts the page
    derives (latest ratings, vitals taken, baseline and final readings, open alerts) are found here from
    those rows the same way the services' single-purpose queries find them."""

    def __init__(self, session: DosingSession) -> None:
        self.session = session

    @cached_property
    def admin(self) -> Administration | None:
        return (
            Administration.objects.filter(session_id=self.session.pk)
            .select_related("ordered_by", "double_checked_by", "administered_by", "route_recorded_by")
            .first()
        )

    @cached_property
    def devices(self) -> list[DeviceUse]:
        admin = self.admin
        return list(admin.device_uses.select_related("recorded_by")) if admin is not None else []

    @cached_property
    def observations(self) -> list[ObservationRow]:
        """Every observation of the session in the model's order (at, id)."""
        return [
            ObservationRow(*row)
            for row in Observation.objects.filter(session_id=self.session.pk)
            .order_by("at", "id")
            .values_list(
                "id", "kind", "code", "display", "value", "at", "reading", "phase", "recorded_by__full_name"
            )
        ]

    @cached_property
    def alerts(self) -> list[SessionAlert]:
        """Every alert of the session in the model's order (raised_at, id)."""
        return list(SessionAlert.objects.filter(session_id=self.session.pk).select_related("acknowledged_by"))

    @cached_property
    def missed_explanations(self) -> dict[int, str]:
        """The written reasons for missed scheduled vitals checks, by minutes after the dose start."""
        from kapclinic.sessions.services import missed_check_explanations

        return missed_check_explanations(self.session)

    @property
    def open_alerts(self) -> list[SessionAlert]:
        return [a for a in self.alerts if a.acknowledged_at is None]

    def last_rating(self, kind: str) -> int | None:
        """As ``services.last_rating``: the value of the newest observation of the kind (by at, id)."""
        for o in reversed(self.observations):
            if o.kind == kind:
                return o.value
        return None

    def vitals_taken_at(self) -> list[dt.datetime]:
        """The distinct times vitals were taken, oldest first."""
        return sorted({o.at for o in self.observations if o.kind == ObservationKind.VITAL})

    def _phase_reading(self, phase: str) -> Reading | None:
        from kapclinic.sessions.services import latest_reading

        rows = sorted(
            (o for o in self.observations if o.kind == ObservationKind.VITAL and o.phase == phase),
            key=lambda o: (o.reading, o.id),
            reverse=True,
        )
        return latest_reading((o.reading, o.code, o.value) for o in rows)

    def baseline_reading(self) -> Reading | None:
        """As ``services.baseline_reading``: the newest pre-dose vitals reading."""
        return self._phase_reading("pre_dose")

    def final_reading(self) -> Reading | None:
        """As ``services.final_reading``: the newest recovery vitals reading."""
        return self._phase_reading("recovery")


def infusion_running(session: DosingSession, *, admin: Administration | None = NOT_READ) -> bool:
    """An IV infusion that started and whose stop is not recorded (the session still dosing): aborting
    the session then records the stop, what was infused (witnessed) and the waste of the rest (issue 14).
    ``admin``: the session's administration when the caller has read it (None: there is none)."""
    if session.state != SessionState.DOSING:
        return False
    if admin is NOT_READ:
        admin = Administration.objects.filter(session_id=session.pk).first()
    return (
        admin is not None
        and admin.route == "IV"
        and admin.administered_at is not None
        and admin.infusion_stopped_at is None
    )


def given_record(
    session: DosingSession, protocol: Protocol | None = None, record: SessionRecord | None = None
) -> GivenRecord:
    """The administration record of a session (two queries: the order, its devices; none when the page's
    ``record`` has read them)."""
    from kapclinic.clinical import session_state as sm
    from kapclinic.sessions.services import protocol_for

    protocol = protocol or protocol_for(session)
    form = protocol.dose.form
    reads = record or SessionRecord(session)
    admin = reads.admin
    devices = reads.devices
    ordered = (admin.devices or 0) if admin is not None else 0
    admin_record = sm.AdministrationRecord(
        form,
        devices_ordered=ordered,
        devices_recorded=len(devices),
        infusion_stopped=admin is not None and admin.infusion_stopped_at is not None,
        lozenge_recorded=admin is not None and admin.hold_minutes is not None,
        partial_reason=admin.partial_dose_reason if admin is not None else "",
    )
    next_device = len(devices) + 1 if form == "nasal_device" and len(devices) < ordered else None
    spacing = protocol.dose.device_spacing_minutes.value
    next_from = (
        devices[-1].at + dt.timedelta(minutes=int(spacing.value))
        if next_device is not None and devices and spacing is not None
        else None
    )
    return GivenRecord(
        form=form,
        admin=admin,
        devices=devices,
        devices_ordered=ordered,
        next_device=next_device,
        next_device_from=next_from,
        gaps=sm.dosing_completion_gaps(admin_record),
        partial=admin_record.partial,
    )


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


def rems_record(session: DosingSession) -> dict[str, Any]:
    """Every REMS Patient Monitoring Form field listed in ref §2.1 [S6a][S6b], filled from the session."""
    from kapclinic.sessions.services import baseline_reading, final_reading

    patient = session.patient
    admin = getattr(session, "administration", None)
    given = given_record(session)
    base = baseline_reading(session)
    final = final_reading(session)
    at40 = None
    if session.first_dose_at:
        target = session.first_dose_at + dt.timedelta(minutes=40)
        rows = list(
            session.observations.filter(
                kind=ObservationKind.VITAL, code__in=["8480-6", "8462-4"], at__gte=session.first_dose_at
            )
        )
        if rows:
            nearest = min(rows, key=lambda o: abs((o.at - target).total_seconds()))
            pair = {o.code: o.value for o in rows if o.reading == nearest.reading}
            at40 = (
                pair.get("8480-6"),
                pair.get("8462-4"),
                int((nearest.at - session.first_dose_at).total_seconds() // 60),
            )
    flagged = set(session.flagged_medication_classes or [])
    end = session.discharged_at
    total = (
        int((end - session.first_dose_at).total_seconds() // 60) if end and session.first_dose_at else None
    )
    from kapclinic.sessions.services import protocol_for

    thresholds = protocol_for(session).thresholds
    from kapclinic.clinical.vitals import Phase, evaluate_reading

    def in_range(r: Reading | None, phase: Phase) -> bool | None:
        if r is None:
            return None
        return not evaluate_reading(r, baseline=base, phase=phase, thresholds=thresholds)

    previous = (
        DosingSession.objects.filter(patient=patient, first_dose_at__lt=session.first_dose_at or clock.now())
        .exclude(pk=session.pk)
        .exists()
        if session.first_dose_at
        else None
    )
    sedation = session.observations.filter(kind=ObservationKind.SEDATION, value__lt=5).exists()
    dissociation = session.observations.filter(kind=ObservationKind.DISSOCIATION, value__gt=0).exists()
    resp = session.alerts.filter(rule__in=["spo2_below", "rr_below"]).exists()
    return {
        "patient": patient,
        "first_treatment": previous is False if previous is not None else None,
        "meds": {
            "Benzodiazepines": "benzodiazepine" in flagged,
            "Non-benzodiazepine sedative hypnotics": "sedative_hypnotic" in flagged,
            "Psychostimulants": "stimulant" in flagged,
            "MAOIs": "maoi" in flagged,
            "Opioids (mentioned in the J&J walkthrough)": "opioid" in flagged,
        },
        "monitoring_hcp": session.discharged_by,
        "clinic": session.clinic,
        "treatment_date": session.first_dose_at,
        # The dose given: less than the order when fewer devices were used (a documented partial dose).
        "dose_mg": given.dose_given_mg
        if given.dose_given_mg is not None
        else admin.dose_mg
        if admin
        else None,
        "dose_ordered_mg": admin.dose_mg if admin else None,
        "given": given,
        "lot_number": admin.lot_number if admin else "",
        "containers": _stock_containers(session),
        "total_minutes": total,
        "ready_to_leave_minutes": session.ready_to_leave_minutes,
        "vitals_ok_before": in_range(base, "pre_dose"),
        "vitals_ok_end": in_range(final, "intra"),
        "bp_before": base,
        "bp_40": at40,
        "bp_end": final,
        "sedation": sedation,
        "dissociation": dissociation,
        "respiratory": resp,
        "submitted_at": session.rems_submitted_at,
    }


def chart_flagged_medications(
    patient: Any, *, assessment: Any = NOT_READ, meds: list[Any] | None = None
) -> list[tuple[str, str, str]]:
    """The chart's current medications in a class the gate flags (ref §3.6, §6.1), as
    (name, gate class, label); read through the intake classification so the two never disagree.

    ``assessment`` (the patient's intake assessment, None when there is none) and ``meds`` (the chart's
    current medications): what the caller has already read of them for this request; else read here."""
    from kapclinic.clinical.session_state import FLAGGED_MEDICATION_CLASSES, MEDICATION_CLASS_LABELS
    from kapclinic.intake.models import Assessment
    from kapclinic.intake.selectors import classified_medications

    if assessment is NOT_READ:
        assessment = Assessment.objects.filter(patient=patient).only("medication_classes").first()
    classified = classified_medications(assessment or Assessment(patient=patient), patient, meds)
    return [
        (c.medication.name, c.ruleset_class, MEDICATION_CLASS_LABELS[c.ruleset_class])
        for c in classified
        if c.ruleset_class in FLAGGED_MEDICATION_CLASSES
    ]


def clinic_settings_context(clinic: Any, protocol_id: str) -> dict[str, Any]:
    """What the clinic-settings page shows: the clinic's values for one protocol, the measure settings,
    and the recent change history (constant number of queries)."""
    from kapclinic.measures.services import SETTING_INFO, measure_settings
    from kapclinic.sessions.models import ClinicProtocolSetting, ClinicSettingChange

    rows = ClinicProtocolSetting.objects.filter(clinic=clinic, protocol_id=protocol_id).select_related(
        "set_by"
    )
    current = {r.key: r for r in rows}
    history = list(
        ClinicSettingChange.objects.filter(clinic=clinic).select_related("by").order_by("-at", "-id")[:50]
    )
    stamp = next((h.pk for h in history if h.area == "protocol" and h.protocol_id == protocol_id), None)
    if stamp is None:
        stamp = (
            ClinicSettingChange.objects.filter(clinic=clinic, area="protocol", protocol_id=protocol_id)
            .order_by("-id")
            .values_list("id", flat=True)
            .first()
        )
    alerts_stamp = next((h.pk for h in history if h.area == "alerts"), None)
    if alerts_stamp is None:
        alerts_stamp = (
            ClinicSettingChange.objects.filter(clinic=clinic, area="alerts")
            .order_by("-id")
            .values_list("id", flat=True)
            .first()
        )
    return {
        "current": current,
        "stamp": stamp or 0,
        "alerts_stamp": alerts_stamp or 0,
        "measure_settings": measure_settings(clinic),
        "measure_info": SETTING_INFO,
        "history": history,
    }


@dataclass(frozen=True)
class SessionProcessNote:
    note: Any  # kapclinic.notes.models.ProcessNote
    text: str
    shared_with: list[str]


def session_process_notes(actor: Actor, session: DosingSession) -> list[SessionProcessNote]:
    """The therapist process notes of this session that ``actor`` may read (author or shared with),
    decrypted for display; one query for the notes and one for their shares. Nurses, front desk and
    anyone the author did not share with get nothing."""
    from kapclinic.notes.selectors import readable_process_notes
    from kapclinic.notes.services import process_note_text

    if actor.user is None or not clinic_can(actor, ClinicAction.PROCESS_NOTES):
        return []
    rows = readable_process_notes(actor.user, session.patient).filter(dosing_session=session)
    return [
        SessionProcessNote(
            r,
            process_note_text(r),
            [s.user.full_name for s in r.shares.all()] if r.author_id == actor.user.pk else [],
        )
        for r in rows.order_by("created_at", "id")
    ]


# ---------------------------------------------------------------- dose hand-off (who does what next)


@dataclass(frozen=True)
class DoseHandoff:
    """After the pre-dose checks: what the session waits for (the chair board's line) and, for the person
    looking, their part before they act."""

    step: str  # "order" | "double_check" | "give"
    waiting: str  # one sentence for the nurse's card and the chair board
    you: str  # this viewer's part ("" when nothing is theirs)


def dose_handoff(
    admin: Any,
    *,
    double_check_required: bool,
    user_id: int | None,
    role: str | None,
    stocked: bool = False,
) -> DoseHandoff:
    """The dose hand-off between prescriber, double-checker and giver, for ``user_id``: the person who
    ordered the dose cannot double-check it, and the person who double-checks cannot also give it.
    ``stocked``: the dose is drawn from a controlled-substance container (issue 14), whose lot and expiry
    go on the record, so the giver chooses the container instead of typing them."""
    if admin is None:
        you = (
            "Your part: order the dose below; a nurse then double-checks it and gives it."
            if role == Role.PRESCRIBER
            else "Nothing to do yet: a prescriber orders the dose here, then you double-check it or give it."
        )
        return DoseHandoff("order", "Waiting for the prescriber's order.", you)
    checked = admin.double_checked_by_id
    if double_check_required and checked is None:
        if admin.ordered_by_id == user_id:
            you = "You ordered this dose, so a second staff member (not you) must double-check it."
        else:
            you = (
                "Your part: double-check the dose independently, or give it. The person who double-checks "
                "cannot also give it: if you will give this dose yourself, leave the double-check to a "
                "colleague."
            )
        return DoseHandoff("double_check", "Dose ordered: waiting for the double-check.", you)
    if checked is not None and checked == user_id:
        you = (
            "You double-checked this dose, so another staff member must give it. If you are the one who "
            "will give it, withdraw your double-check and ask a colleague to double-check."
        )
    elif role in (Role.NURSE, Role.PRESCRIBER):
        you = (
            "Your part: check the patient, choose the container the dose is drawn from, and give the dose."
            if stocked
            else "Your part: check the patient, record the lot number and expiry, and give the dose."
        )
    else:
        you = ""
    waiting = "Dose ordered and double-checked: ready to give." if checked else "Dose ordered: ready to give."
    return DoseHandoff("give", waiting, you)


def dose_handoff_lines(sessions: Iterable[DosingSession]) -> dict[int, str]:
    """{session id: the hand-off sentence} for sessions whose pre-dose checks passed (one query)."""
    return _handoff_waiting([(s.pk, s.state, s.protocol_id, s.protocol_version) for s in sessions])


def _handoff_waiting(sessions: Iterable[tuple[int, str, str, str]]) -> dict[int, str]:
    """dose_handoff_lines on (pk, state, protocol id, protocol version) rows: one query, none when no
    session's pre-dose checks have passed."""
    from kapclinic.clinical.protocols import get_protocol

    waiting = [row for row in sessions if row[1] == State.PREDOSE_PASSED]
    if not waiting:
        return {}
    admins = {a.session_id: a for a in Administration.objects.filter(session__in=[row[0] for row in waiting])}
    out = {}
    for pk, _state, protocol_id, protocol_version in waiting:
        required = get_protocol(protocol_id, protocol_version).dose.double_check_required
        step = dose_handoff(admins.get(pk), double_check_required=required, user_id=None, role=None)
        out[pk] = step.waiting
    return out


def _stock_containers(session: DosingSession) -> list[str]:
    """The stock containers the dose was drawn from ("S-0003, lot L1"), issue 14."""
    from kapclinic.inventory.models import SessionDraw

    rows = SessionDraw.objects.filter(session=session).select_related("container").order_by("at", "pk")
    return [f"{d.container.identifier}, lot {d.container.lot}" for d in rows]
