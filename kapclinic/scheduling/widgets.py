from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from kapclinic.core import clock
from kapclinic.core.actor import actor_from_request
from kapclinic.policy import Action, can
from kapclinic.scheduling import selectors


def chart_context(request: HttpRequest, patient: Any) -> dict[str, Any]:
    actor = actor_from_request(request)
    return {
        "upcoming": list(selectors.patient_appointments(patient, upcoming_only=True)[:5]),
        "can_schedule": can(actor, Action.SCHEDULE, patient),
    }


def today_context(request: HttpRequest) -> dict[str, Any]:
    actor = actor_from_request(request)
    start, end = selectors.day_bounds(clock.today())
    mine_only = actor.role not in ("admin", "front_desk")
    staff_id = actor.user_id if mine_only else None
    longest = selectors.longest_appointment(actor.clinic)
    appts = list(
        selectors.appointments_between(actor.clinic, start, end, staff_id=staff_id, longest=longest)[:20]
    )
    seen = selectors.Visibility.of(actor, appts)  # names only of patients the viewer may see (policy)
    items = [seen.entry(a) for a in appts]
    problems = (
        selectors.problem_reminder_count(actor.clinic)
        if actor.role in ("admin", "front_desk", "nurse", "prescriber")
        else 0
    )
    return {"items": items, "problems": problems, "mine_only": mine_only}
