"""Issue #7: the staff home's "today" widget reads one day's range of the index, with the same result."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from kapclinic.core import clock
from kapclinic.scheduling import rules, selectors, widgets
from kapclinic.scheduling.models import Appointment, ScheduleSettings
from kapclinic.testing.factories import make_patient

pytestmark = pytest.mark.django_db


def _appt(world: Any, staff: Any, start: dt.datetime, minutes: int) -> Appointment:
    return Appointment.objects.create(
        clinic=world.clinic,
        patient=make_patient(world.clinic),
        kind="dosing",
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=minutes),
        staff=staff,
        created_by=world.front_desk,
    )


def _today(world: Any, user: Any, role: str) -> dict[str, Any]:
    request = RequestFactory().get("/home/")
    request.user = user
    request.clinic = world.clinic  # type: ignore[attr-defined]
    request.role = role  # type: ignore[attr-defined]
    request.request_id = "t"  # type: ignore[attr-defined]
    return widgets.today_context(request)


def test_today_widget_same_appointments_with_a_lower_bound(world: Any, clock_frozen: Any) -> None:
    day_start, day_end = selectors.day_bounds(clock.today())
    nurse = world.nurse
    overnight = _appt(world, nurse, day_start - dt.timedelta(hours=2), 180)  # ends today: shown
    ended = _appt(world, nurse, day_start - dt.timedelta(hours=5), 180)  # ended before today
    old = _appt(world, nurse, day_start - dt.timedelta(days=300), 180)
    today = _appt(world, nurse, day_start + dt.timedelta(hours=10), 180)
    _appt(world, nurse, day_end, 60)  # tomorrow
    _appt(world, world.prescriber, day_start + dt.timedelta(hours=9), 60)  # someone else's
    with CaptureQueriesContext(connection) as ctx:
        items = _today(world, nurse, "nurse")["items"]
    assert [e.pk for e in items] == [overnight.pk, today.pk]
    unbounded = selectors.appointments_between(world.clinic, day_start, day_end, staff_id=nurse.pk)
    assert [a.pk for a in unbounded] == [e.pk for e in items]
    assert ended.pk not in [e.pk for e in items] and old.pk not in [e.pk for e in items]
    sql = next(q["sql"] for q in ctx.captured_queries if "scheduling_appointment" in q["sql"])
    assert sql.count('"scheduling_appointment"."starts_at" >') == 1 and '"starts_at" <' in sql


def test_longest_appointment_covers_every_kind_and_the_clinic_setting(world: Any) -> None:
    longest = selectors.longest_appointment(world.clinic)
    assert all(dt.timedelta(minutes=r.max_minutes) <= longest for r in rules.DEFAULT_KINDS.values())
    ScheduleSettings.objects.create(clinic=world.clinic, dosing_max_minutes=2000)
    assert selectors.longest_appointment(world.clinic) == dt.timedelta(minutes=2000)
