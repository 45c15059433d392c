"""Reads of the scheduling app; each uses a constant number of queries."""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from kapclinic.accounts.models import CLINICAL_ROLES, Membership, User
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.patients.models import Patient
from kapclinic.policy import Action, visible_patients
from kapclinic.scheduling.models import (
    ACTIVE_STATUSES,
    Appointment,
    Kind,
    Reminder,
    ReminderStatus,
    Resource,
    ResourceKind,
    Status,
)


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    tz = timezone.get_current_timezone()
    start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
    return start, dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=tz)


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
) -> QuerySet[Appointment]:
    qs = Appointment.objects.filter(clinic=clinic, starts_at__lt=end, ends_at__gt=start).select_related(
        "patient", "staff", "resource"
    )
    if not include_cancelled:
        qs = qs.exclude(status=Status.CANCELLED)
    if staff_id:
        qs = qs.filter(staff_id=staff_id)
    if resource_id:
        qs = qs.filter(resource_id=resource_id)
    return qs.order_by("starts_at", "id")


def visible_ids(actor: Actor, patient_ids: Iterable[int]) -> set[int]:
    """Which of these patients may the actor see by name (demographics)? One query."""
    ids = set(patient_ids)
    if not ids:
        return set()
    return set(
        visible_patients(actor, Action.VIEW_DEMOGRAPHICS).filter(pk__in=ids).values_list("pk", flat=True)
    )


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
    items: list[tuple[Appointment, str, Any]]  # (appointment, phase label, dosing session or None)


def _sessions_for(patient_ids: set[int], start: dt.datetime, end: dt.datetime) -> dict[int, list[Any]]:
    """Dosing sessions of these patients on this day, from the sessions app when it is installed."""
    try:
        models = importlib.import_module("kapclinic.sessions.models")
    except ImportError:  # pragma: no cover - the sessions app is part of the project
        return {}
    session_model = getattr(models, "DosingSession", None)
    if session_model is None or not patient_ids:
        return {}
    out: dict[int, list[Any]] = {}
    for s in session_model.objects.filter(
        patient_id__in=patient_ids, scheduled_for__gte=start - dt.timedelta(hours=2), scheduled_for__lt=end
    ).order_by("scheduled_for"):
        out.setdefault(s.patient_id, []).append(s)
    return out


def _phase(appt: Appointment, sessions: list[Any], now: dt.datetime) -> tuple[str, Any]:
    # TODO(issue 5): match on an appointment link once DosingSession has one;
    # today: same patient, closest start within 4 hours.
    match = None
    if sessions:
        match = min(sessions, key=lambda s: abs((s.scheduled_for - appt.starts_at).total_seconds()))
        if abs((match.scheduled_for - appt.starts_at).total_seconds()) > 4 * 3600:
            match = None
    if match is not None:
        return match.get_state_display(), match
    if appt.status == Status.COMPLETED:
        return "Completed", None
    if appt.status == Status.NO_SHOW:
        return "Did not attend", None
    if now < appt.starts_at:
        return "Booked", None
    if now < appt.ends_at:
        return "In the chair (no session record yet)", None
    return "Time slot over", None


def chair_board(clinic: Any, day: dt.date) -> list[ChairRow]:
    start, end = day_bounds(day)
    chairs = list(resources(clinic).filter(kind=ResourceKind.CHAIR))
    appts = list(appointments_between(clinic, start, end).filter(resource__kind=ResourceKind.CHAIR))
    sessions = _sessions_for({a.patient_id for a in appts if a.kind == Kind.DOSING}, start, end)
    now = clock.now()
    rows = []
    for chair in chairs:
        mine = [a for a in appts if a.resource_id == chair.pk]
        rows.append(ChairRow(chair, [(a, *_phase(a, sessions.get(a.patient_id, []), now)) for a in mine]))
    return rows


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


def staff_membership_ok(user: User, clinic: Any) -> bool:
    return Membership.objects.filter(user=user, clinic=clinic, is_active=True).exists()
