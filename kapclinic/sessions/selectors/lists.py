"""Lists of sessions: the clinic's day and today's board, REMS submissions overdue, appointments not
yet started, a patient's sessions, protocol titles."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Count, Exists, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format, time_format

from kapclinic.clinical.session_state import State
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.policy import ALL, CASELOAD, Action, scope, visible_patients
from kapclinic.scheduling.models import Appointment, Kind, Status
from kapclinic.sessions.models import (
    DosingSession,
    SessionAlert,
    SessionState,
)
from kapclinic.sessions.selectors.administration import _handoff_waiting

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
    waiting = _handoff_waiting([(r[0], r[3], r[8], r[9]) for r in rows])
    return [
        TodaySession(
            pk=pk,
            patient_id=patient_id,
            url=reverse("sessions:detail", args=[patient_id, pk]),
            time=time_format(timezone.localtime(when), "H:i"),
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
    return [
        PatientSession(
            pk,
            reverse("sessions:detail", args=[patient.pk, pk]),
            date_format(timezone.localtime(when), "j M Y"),
            protocol_id,
            state_label(state),
            protocol_title(protocol_id, version),
        )
        for pk, when, protocol_id, version, state in rows
    ]
