"""Reads of the scheduling app; each uses a constant number of queries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from kapclinic.accounts.models import CLINICAL_ROLES, Membership, User
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.patients.models import Patient
from kapclinic.policy import Action, scope, visible_patients
from kapclinic.scheduling import rules
from kapclinic.scheduling.models import (
    ACTIVE_STATUSES,
    Appointment,
    Kind,
    Reminder,
    ReminderStatus,
    Resource,
    ResourceKind,
    ScheduleSettings,
    Status,
)
from kapclinic.sessions.models import DosingSession, SessionState
from kapclinic.sessions.selectors import sessions_for_appointments


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    tz = timezone.get_current_timezone()
    start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
    return start, dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=tz)


#: No appointment is longer than this (every kind's maximum is at most 3 h, rules.DEFAULT_KINDS); a
#: clinic's own dosing maximum is taken when larger.
LONGEST_APPOINTMENT = dt.timedelta(hours=24)


def longest_appointment(clinic: Any) -> dt.timedelta:
    """An upper bound on any appointment's length in this clinic (one query)."""
    configured = (
        ScheduleSettings.objects.filter(clinic=clinic).values_list("dosing_max_minutes", flat=True).first()
    )
    kinds = max(rule.max_minutes for rule in rules.DEFAULT_KINDS.values())
    return max(LONGEST_APPOINTMENT, dt.timedelta(minutes=max(kinds, configured or 0)))


def clinicians(clinic: Any) -> QuerySet[User]:
    return User.objects.filter(
        memberships__clinic=clinic, memberships__is_active=True, memberships__role__in=CLINICAL_ROLES
    ).order_by("full_name")


def resources(clinic: Any, *, active_only: bool = True) -> QuerySet[Resource]:
    qs = Resource.objects.filter(clinic=clinic)
    return qs.filter(is_active=True) if active_only else qs


def appointments_between(
    clinic: Any,
    start: dt.datetime,
    end: dt.datetime,
    *,
    staff_id: int | None = None,
    resource_id: int | None = None,
    include_cancelled: bool = False,
    longest: dt.timedelta | None = None,
) -> QuerySet[Appointment]:
    """Appointments overlapping [start, end). With ``longest`` (no appointment lasts longer) the start
    time also gets a lower bound, so the (staff|clinic, starts_at) index reads one day's range instead
    of the whole history before ``end`` (issue #7)."""
    qs = Appointment.objects.filter(clinic=clinic, starts_at__lt=end, ends_at__gt=start).select_related(
        "patient", "staff", "resource"
    )
    if longest is not None:
        qs = qs.filter(starts_at__gt=start - longest)
    if not include_cancelled:
        qs = qs.exclude(status=Status.CANCELLED)
    if staff_id:
        qs = qs.filter(staff_id=staff_id)
    if resource_id:
        qs = qs.filter(resource_id=resource_id)
    return qs.order_by("starts_at", "id")


def visible_ids(
    actor: Actor, patient_ids: Iterable[int], action: Action = Action.VIEW_DEMOGRAPHICS
) -> set[int]:
    """Which of these patients may the actor ``action`` (by default: see by name)? One query."""
    ids = set(patient_ids)
    if not ids:
        return set()
    return set(visible_patients(actor, action).filter(pk__in=ids).values_list("pk", flat=True))


def visible_id_sets(
    actor: Actor, patient_ids: Iterable[int], actions: Iterable[Action]
) -> dict[Action, frozenset[int]]:
    """``visible_ids`` for several actions at once. Actions the policy scopes alike (a nurse: all of
    them clinic-wide; a therapist: their caseload) share one query; an action the
    role does not have runs none. At most one query per action, whatever the number of patients."""
    ids = set(patient_ids)
    out: dict[Action, frozenset[int]] = {}
    asked: dict[str, frozenset[int]] = {}
    for action in actions:
        # visible_patients depends on the actor and the action's scope only, so actions sharing a
        # scope share one query.
        sc = scope(actor, action)
        if not ids or sc is None:
            out[action] = frozenset()
            continue
        if sc not in asked:
            asked[sc] = frozenset(
                visible_patients(actor, action).filter(pk__in=ids).values_list("pk", flat=True)
            )
        out[action] = asked[sc]
    return out


# ---------------------------------------------------------------- what a viewer may see of a booking

#: What a calendar shows for an appointment whose patient the viewer may not see (policy): the slot is
#: taken, nothing more (no name, record number, kind, status or session phase).
BUSY = "Booked"

#: Session states after which the chair is free again (the coarse phase shown without clinical access).
_ENDED_STATES = (SessionState.DISCHARGED, SessionState.ABORTED)
_FRONT_DESK_STATES = (SessionState.SCHEDULED, SessionState.CHECKED_IN)


@dataclass(frozen=True)
class Visibility:
    """What one viewer may see of the patients behind a set of appointments, decided by the policy
    (kapclinic.policy.visible_patients) once per request: one query per action, whatever the number
    of appointments, so rendering a row never asks again.

    - ``named``: may see the patient by name (VIEW_DEMOGRAPHICS): name, record number, kind, status.
    - ``openable``: may open the appointment page (SCHEDULE, what scheduling:detail checks).
    - ``clinical``: may see clinical detail (VIEW_CLINICAL): the dosing session's state and link.
    - ``monitor``: may start and run the dosing session (MONITOR_SESSION).
    The last two are asked only for the chair board (``chair_board=True``).
    """

    named: frozenset[int]
    openable: frozenset[int]
    clinical: frozenset[int] = frozenset()
    monitor: frozenset[int] = frozenset()

    @classmethod
    def of(
        cls, actor: Actor, appointments: Iterable[Appointment], *, chair_board: bool = False
    ) -> Visibility:
        return cls.for_patients(actor, {a.patient_id for a in appointments}, chair_board=chair_board)

    @classmethod
    def for_patients(
        cls, actor: Actor, patient_ids: Iterable[int], *, chair_board: bool = False
    ) -> Visibility:
        """``of`` for the patients of appointments read without model instances."""
        actions = [Action.VIEW_DEMOGRAPHICS, Action.SCHEDULE]
        if chair_board:
            actions += [Action.VIEW_CLINICAL, Action.MONITOR_SESSION]
        sets = visible_id_sets(actor, patient_ids, actions)
        return cls(
            named=sets[Action.VIEW_DEMOGRAPHICS],
            openable=sets[Action.SCHEDULE],
            clinical=sets.get(Action.VIEW_CLINICAL, frozenset()),
            monitor=sets.get(Action.MONITOR_SESSION, frozenset()),
        )

    def entry(self, appt: Appointment) -> CalendarEntry:
        return CalendarEntry(appt, appt.patient_id in self.named, appt.patient_id in self.openable)


@dataclass(frozen=True)
class CalendarEntry:
    """One appointment as the viewer may see it on a calendar, a widget or a feed."""

    a: Appointment
    named: bool
    openable: bool

    @property
    def label(self) -> str:
        return self.a.patient.display_name if self.named else BUSY

    @property
    def kind(self) -> str:
        return self.a.get_kind_display() if self.named else ""

    @property
    def css(self) -> str:
        """Classes that colour the block by kind and status; a busy block gets neither."""
        return f"kind-{self.a.kind} status-{self.a.status}" if self.named else "kind-busy"

    @property
    def status(self) -> str:
        return self.a.get_status_display() if self.named else ""


@dataclass
class WeekDay:
    day: dt.date
    items: list[Appointment] = field(default_factory=list)


def week(clinic: Any, monday: dt.date, **filters: Any) -> list[WeekDay]:
    start, _ = day_bounds(monday)
    _, end = day_bounds(monday + dt.timedelta(days=6))
    days = [WeekDay(monday + dt.timedelta(days=i)) for i in range(7)]
    for appt in appointments_between(clinic, start, end, **filters):
        index = (timezone.localtime(appt.starts_at).date() - monday).days
        if 0 <= index < 7:
            days[index].items.append(appt)
    return days


# ---------------------------------------------------------------- chair board


@dataclass(frozen=True)
class ChairRow:
    resource: Resource
    items: list[tuple[Appointment, DosingSession | None]]  # (appointment, the session started from it)


def arrived(appt: Appointment) -> str:
    assert appt.checked_in_at is not None
    return f"Arrived {timezone.localtime(appt.checked_in_at):%H:%M}"


def appointment_state(appt: Appointment, session: DosingSession | None, *, clinical: bool) -> str:
    """The one state an appointment shows wherever it appears (appointment page, day list, chair board
    phase): cancelled, did not attend or completed; else its dosing session's phase when a session was
    started from it and not aborted (clinical viewers: the session's state; others: "In session" and the
    like); else arrived (checked in) or booked. Issue 18: the page said "Booked" while the board said
    "In session", and the board said "Aborted" (its own phase rule) where the page said Booked/Arrived."""
    if appt.status != Status.BOOKED:
        return str(appt.get_status_display())
    if session is not None and session.state != SessionState.ABORTED:
        return session_phase(session, clinical=clinical) or ""
    if appt.checked_in_at is not None:
        return arrived(appt)
    return str(appt.get_status_display())


def chair_board(clinic: Any, day: dt.date) -> list[ChairRow]:
    """Each dosing chair with the day's bookings, each with its phase and the dosing session started from
    it (DosingSession.appointment); three queries whatever the number of chairs and bookings."""
    start, end = day_bounds(day)
    chairs = list(resources(clinic).filter(kind=ResourceKind.CHAIR))
    appts = list(appointments_between(clinic, start, end).filter(resource__kind=ResourceKind.CHAIR))
    sessions = sessions_for_appointments(a.pk for a in appts if a.kind == Kind.DOSING)
    rows = []
    for chair in chairs:
        mine = [a for a in appts if a.resource_id == chair.pk]
        rows.append(ChairRow(chair, [(a, sessions.get(a.pk)) for a in mine]))
    return rows


def shown_phase(appt: Appointment, session: DosingSession | None, seen: Visibility) -> str:
    """The chair board's state of a booking as this viewer may see it: ``appointment_state``, as on the
    appointment page and the day list (the session's state needs clinical access, VIEW_CLINICAL; without
    it, front desk and admin see "In session" and the like); a patient the viewer may not see shows only
    that the slot is booked."""
    if appt.patient_id not in seen.named:
        return BUSY
    return appointment_state(appt, session, clinical=appt.patient_id in seen.clinical)


def session_phase(session: DosingSession | None, *, clinical: bool) -> str | None:
    """The session's state for viewers with clinical access, the coarse phase for the others."""
    if session is None:
        return None
    return session.get_state_display() if clinical else session_phase_without_clinical(session)


def session_phase_without_clinical(session: DosingSession) -> str:
    """A dosing session's phase without clinical detail: scheduled or checked in (the front desk's own
    steps), in the chair (checks, dose, monitoring, recovery all read "In session"), or over (discharge
    and abort alike)."""
    if session.state in _ENDED_STATES:
        return "Session ended"
    if session.state in _FRONT_DESK_STATES:
        return session.get_state_display()
    return "In session"


# ---------------------------------------------------------------- per patient


def patient_appointments(patient: Patient, *, upcoming_only: bool = False) -> QuerySet[Appointment]:
    qs = (
        Appointment.objects.filter(patient=patient)
        .select_related("staff", "resource")
        .order_by("starts_at", "id")
    )
    if upcoming_only:
        qs = qs.filter(ends_at__gt=clock.now(), status=Status.BOOKED)
    return qs


def dosing_appointments(patient: Patient) -> QuerySet[Appointment]:
    """The patient's dosing appointments (not cancelled), newest first: anchors of the integration thread."""
    return (
        Appointment.objects.filter(patient=patient, kind=Kind.DOSING)
        .exclude(status=Status.CANCELLED)
        .select_related("staff", "resource")
        .order_by("-starts_at", "-id")
    )


def measure_next_dosing(patient_ids: Iterable[int]) -> dict[int, dt.datetime]:
    """Hook read by the measures app: next booked dosing appointment per patient."""
    ids = list(patient_ids)
    if not ids:
        return {}
    out: dict[int, dt.datetime] = {}
    for pid, start in (
        Appointment.objects.filter(
            patient_id__in=ids, kind=Kind.DOSING, status=Status.BOOKED, starts_at__gt=clock.now()
        )
        .order_by("patient_id", "starts_at")
        .values_list("patient_id", "starts_at")
    ):
        out.setdefault(pid, start)
    return out


def feed_appointments(feed: Any) -> QuerySet[Appointment]:
    since = clock.now() - dt.timedelta(days=60)
    qs = Appointment.objects.filter(clinic=feed.clinic, ends_at__gte=since, status__in=ACTIVE_STATUSES)
    qs = qs.filter(patient=feed.patient) if feed.patient_id else qs.filter(staff=feed.user)
    return qs.select_related("patient", "staff", "resource", "clinic").order_by("starts_at")[:500]


# ---------------------------------------------------------------- reminders and dashboard


def reminders_for_staff(clinic: Any, *, problems_only: bool = False) -> QuerySet[Reminder]:
    qs = Reminder.objects.filter(clinic=clinic).select_related("appointment__patient", "appointment__staff")
    if problems_only:
        qs = qs.filter(status__in=[ReminderStatus.FAILED, ReminderStatus.RETRYING])
    return qs.order_by("-send_at", "-id")


def problem_reminder_count(clinic: Any) -> int:
    return Reminder.objects.filter(
        clinic=clinic, status__in=[ReminderStatus.FAILED, ReminderStatus.RETRYING]
    ).count()


def staff_role(user: User, clinic: Any) -> str | None:
    """The user's active role in this clinic (one per clinic), or None. One query."""
    role = (
        Membership.objects.filter(user=user, clinic=clinic, is_active=True)
        .values_list("role", flat=True)
        .first()
    )
    return str(role) if role else None


def dosing_preparation(patient_id: int, clinic_id: int) -> tuple[str, ...] | None:
    """The preparation lines for the patient's dosing appointments: from the protocol of their signed
    plan with the clinic's settings (fasting times, the route's own instructions), or None when there is
    no signed plan. Read once per request and patient."""
    from kapclinic.clinical.protocols import UnknownProtocol, preparation_lines
    from kapclinic.core import request_cache

    def compute() -> tuple[str, ...] | None:
        from kapclinic.treatment.models import PlanStatus, TreatmentPlan
        from kapclinic.treatment.selectors import clinic_protocol

        row = (
            TreatmentPlan.objects.filter(patient_id=patient_id, status=PlanStatus.SIGNED)
            .order_by("-signed_at", "-id")
            .values_list("protocol_id", "protocol_version")
            .first()
        )
        if row is None:
            return None
        try:
            return preparation_lines(clinic_protocol(clinic_id, row[0], row[1]))
        except UnknownProtocol:
            return None

    return request_cache.remember(("scheduling.dosing_preparation", patient_id), compute)
