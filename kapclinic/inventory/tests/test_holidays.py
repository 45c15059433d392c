"""Clinic holidays in the business-day deadline (docs/controlled-substances.md §6): the loss report's
written notice is due the next business day, skipping weekends and the holidays the clinic records."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.urls import reverse

from kapclinic.audit.models import AuditEvent
from kapclinic.core import clock
from kapclinic.inventory import services
from kapclinic.inventory.models import ClinicHoliday
from kapclinic.inventory.testing import make_registration
from kapclinic.testing.factories import actor_for

FRI = dt.date(2026, 12, 4)  # a Friday


def test_business_days_skip_weekends_and_holidays() -> None:
    assert services.next_business_day(FRI) == dt.date(2026, 12, 7)
    assert services.next_business_day(FRI, {dt.date(2026, 12, 7)}) == dt.date(2026, 12, 8)
    assert services.next_business_day(FRI, {dt.date(2026, 12, 7), dt.date(2026, 12, 8)}) == dt.date(
        2026, 12, 9
    )
    # a holiday on a weekend changes nothing; Thursday before a Friday holiday goes to Monday
    assert services.next_business_day(FRI, {dt.date(2026, 12, 5)}) == dt.date(2026, 12, 7)
    assert services.next_business_day(dt.date(2026, 12, 3), {FRI}) == dt.date(2026, 12, 7)
    # Form 106 stays 45 calendar days
    assert services.loss_deadlines(FRI, {dt.date(2026, 12, 7)}) == (
        dt.date(2026, 12, 8),
        dt.date(2027, 1, 18),
    )


@pytest.mark.django_db
def test_holidays_page_records_them_and_the_loss_deadline_skips_them(
    client: Any, world: Any, clock_frozen: Any
) -> None:
    client.force_login(world.admin)
    url = reverse("inventory:holidays")
    today = clock.today()
    friday = today - dt.timedelta(days=(today.weekday() - 4) % 7)  # the latest Friday, today or before
    monday = friday + dt.timedelta(days=3)
    r = client.post(url, {"day": monday.isoformat(), "name": "Synthetic Day"})
    assert r.status_code == 302
    assert client.post(url, {"day": monday.isoformat(), "name": "Again"}).status_code == 400
    assert client.post(url, {"day": "", "name": "No date"}).status_code == 400
    assert ClinicHoliday.objects.filter(clinic=world.clinic).count() == 1
    assert "Synthetic Day" in client.get(url).content.decode()
    # a loss discovered on the Friday before it: the written notice is due Tuesday
    reg = make_registration(world.clinic)
    services.open_loss_report(
        actor_for(world.prescriber, world.clinic),
        reg,
        discovered_at=min(dt.datetime.combine(friday, dt.time(9), tzinfo=world.clinic.zone), clock.now()),
        description="Synthetic: one vial missing",
    )
    client.force_login(world.prescriber)
    page = client.get(reverse("inventory:losses")).content.decode()
    assert f"due {(monday + dt.timedelta(days=1)).isoformat()}" in page
    # nurses read the calendar but cannot change it; another clinic's holiday is not this one's
    client.force_login(world.nurse)
    assert client.post(url, {"day": "2027-01-01", "name": "New Year"}).status_code == 403
    h = ClinicHoliday.objects.get()
    client.force_login(world.other_clinic_staff)
    assert client.post(url, {"remove": h.pk}).status_code == 400
    client.force_login(world.admin)
    assert client.post(url, {"remove": h.pk}).status_code == 302
    assert not ClinicHoliday.objects.exists()
    assert AuditEvent.objects.filter(detail="inventory.holiday.removed").exists()
