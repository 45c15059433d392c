"""Issue 18: the day grid shows every booking of the day (it hid 21:00 and 01:00) and each free
half-hour is a link to the booking form with date, time and clinician filled in."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from kapclinic.scheduling import rules
from kapclinic.scheduling.models import Appointment

pytestmark = pytest.mark.django_db

TZ = timezone.get_current_timezone()
DAY = dt.date(2026, 3, 3)


def make(world: Any, hour: int, minutes: int = 60, day: dt.date = DAY) -> Appointment:
    start = dt.datetime.combine(day, dt.time(hour), tzinfo=TZ)
    return Appointment.objects.create(
        clinic=world.clinic,
        patient=world.patient,
        kind="integration",
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=minutes),
        staff=world.therapist,
        created_by=world.front_desk,
    )


def test_visible_hours_extend_to_the_days_bookings() -> None:
    assert rules.visible_hours([], 7, 20) == (7, 20, 0)
    assert rules.visible_hours([(21 * 60, 22 * 60), (60, 120)], 7, 20) == (1, 22, 2)
    assert rules.visible_hours([(23 * 60 + 30, 24 * 60)], 7, 20) == (7, 24, 1)
    assert rules.visible_hours([(9 * 60, 10 * 60)], 7, 20) == (7, 20, 0)


def test_day_grid_shows_bookings_at_21_and_01(world: Any, client: Any, clock_frozen: Any) -> None:
    late = make(world, 21)
    early = make(world, 1)
    client.force_login(world.front_desk)
    body = client.get(reverse("scheduling:index"), {"date": DAY.isoformat()}).content.decode()
    pattern = r'class="cal-block[^"]*" data-cal-top="(\d+)" data-cal-height="(\d+)" href="([^"]+)"'
    blocks = re.findall(pattern, body)
    hrefs = {h for _t, _h, h in blocks}
    assert reverse("scheduling:detail", kwargs={"appointment_id": late.pk}) in hrefs
    assert reverse("scheduling:detail", kwargs={"appointment_id": early.pk}) in hrefs
    tops = {h: int(t) for t, _h, h in blocks}
    # The grid starts at 01:00, so the 01:00 booking is at the top and the 21:00 one 20 hours below.
    assert tops[reverse("scheduling:detail", kwargs={"appointment_id": early.pk})] == 0
    assert tops[reverse("scheduling:detail", kwargs={"appointment_id": late.pk})] == int(20 * 60 * 1.2)
    assert "2 bookings outside the usual hours (07:00–20:00)" in body
    assert "the grid shows 01:00–22:00" in body


def test_free_slots_link_to_the_prefilled_booking_form(world: Any, client: Any, clock_frozen: Any) -> None:
    make(world, 9)  # 09:00-10:00 with the therapist: no free slot there
    client.force_login(world.front_desk)
    body = client.get(reverse("scheduling:index"), {"date": DAY.isoformat()}).content.decode()
    new = reverse("scheduling:new")
    slot = f'href="{new}?date=2026-03-03&amp;time=10:30&amp;staff={world.therapist.pk}"'
    assert slot in body
    assert f"?date=2026-03-03&amp;time=09:30&amp;staff={world.therapist.pk}" not in body
    assert f"Book {world.therapist.full_name} at 10:30" in body
    # The link opens the booking form with the date, time and clinician chosen.
    form = client.get(new, {"date": "2026-03-03", "time": "10:30", "staff": world.therapist.pk})
    html = form.content.decode()
    assert 'value="10:30' in html
    assert re.search(rf'<option value="{world.therapist.pk}" selected>', html)


def test_no_free_slots_in_the_past(world: Any, client: Any, clock_frozen: Any) -> None:
    client.force_login(world.front_desk)
    body = client.get(reverse("scheduling:index"), {"date": "2026-03-01"}).content.decode()
    assert 'class="cal-slot"' not in body
