from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format, time_format

from kapclinic.accounts.models import Role
from kapclinic.core import clock
from kapclinic.core.actor import actor_from_request
from kapclinic.policy import Action, ClinicAction, can, clinic_can
from kapclinic.scheduling import selectors
from kapclinic.scheduling.models import Kind

_KIND_LABELS: dict[str, str] = {str(value): str(label) for value, label in Kind.choices}


@dataclass(frozen=True)
class UpcomingRow:
    """One appointment of the chart's "Upcoming appointments" panel, ready to print."""

    pk: int
    url: str
    when: str  # "D j M H:i" in the clinic's time zone
    kind: str
    staff: str


def chart_context(request: HttpRequest, patient: Any) -> dict[str, Any]:
    """The patient's next five booked appointments: one query of the shown columns (issue #7)."""
    actor = actor_from_request(request)
    rows = selectors.patient_appointments(patient, upcoming_only=True).values_list(
        "pk", "starts_at", "kind", "staff__full_name"
    )[:5]
    return {
        "upcoming": [
            UpcomingRow(
                pk,
                reverse("scheduling:detail", args=[pk]),
                date_format(timezone.localtime(starts_at), "D j M H:i"),
                _KIND_LABELS.get(kind, kind),
                staff,
            )
            for pk, starts_at, kind, staff in rows
        ],
        "can_schedule": can(actor, Action.SCHEDULE, patient),
    }


@dataclass(frozen=True)
class TodayItem:
    """One appointment of the home page's "Today's appointments" widget as the viewer may see it
    (selectors.Visibility decides; the same rules as CalendarEntry), ready to print."""

    pk: int
    time: str  # start, H:i in the clinic's time zone
    url: str  # the appointment page, "" when the viewer may not open it
    named: bool
    label: str  # the patient's name, or selectors.BUSY
    kind: str  # "" when not named
    resource: str | None  # the room or chair, None when there is none
    staff: str  # "" when the widget shows only the viewer's own day


def today_context(request: HttpRequest) -> dict[str, Any]:
    """Today's first 20 appointments (the viewer's own unless front desk or admin): one query of the
    shown columns, no model instances, plus the visibility query (issue #7)."""
    actor = actor_from_request(request)
    start, end = selectors.day_bounds(clock.today())
    mine_only = actor.role not in (Role.ADMIN, Role.FRONT_DESK)
    staff_id = actor.user_id if mine_only else None
    longest = selectors.longest_appointment(actor.clinic)
    fields = [
        "pk",
        "patient_id",
        "starts_at",
        "kind",
        "resource__name",
        "patient__preferred_name",
        "patient__legal_first_name",
        "patient__legal_last_name",
    ]
    if not mine_only:
        fields.append("staff__full_name")
    rows = list(
        selectors.appointments_between(
            actor.clinic, start, end, staff_id=staff_id, longest=longest
        ).values_list(*fields)[:20]
    )
    # names only of patients the viewer may see (policy)
    seen = selectors.Visibility.for_patients(actor, {row[1] for row in rows})
    items = []
    for pk, patient_id, starts_at, kind, resource, preferred, first, last, *staff in rows:
        named = patient_id in seen.named
        items.append(
            TodayItem(
                pk=pk,
                time=time_format(timezone.localtime(starts_at), "H:i"),
                url=reverse("scheduling:detail", args=[pk]) if patient_id in seen.openable else "",
                named=named,
                label=f"{preferred or first} {last}" if named else selectors.BUSY,  # Patient.display_name
                kind=_KIND_LABELS.get(kind, kind) if named else "",
                resource=resource,
                staff=staff[0] if staff else "",
            )
        )
    problems = (
        selectors.problem_reminder_count(actor.clinic)
        if clinic_can(actor, ClinicAction.VIEW_REMINDERS)
        else 0
    )
    return {"items": items, "problems": problems, "mine_only": mine_only}
