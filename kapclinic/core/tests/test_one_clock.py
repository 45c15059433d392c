"""One clock (issue 18): every date and time a person sees is in the clinic's time zone.

A Portland clinic's appointment at 23:30 on Saturday 5 December is 07:30 UTC on Sunday 6 December (and
02:30 on Sunday in New York, the server's default zone). Every page and message that shows it must say
Saturday 5 December, 23:30.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.core import mail
from django.urls import reverse

from kapclinic.accounts.models import Clinic
from kapclinic.audit.models import AuditEvent
from kapclinic.core import clock
from kapclinic.scheduling.models import Appointment

LATE = dt.datetime(2026, 12, 6, 7, 30, tzinfo=dt.UTC)  # 23:30 on 5 Dec in Portland


@pytest.fixture
def late_appointment(world: Any) -> Appointment:
    Clinic.objects.filter(pk=world.clinic.pk).update(time_zone="America/Los_Angeles")
    clock.freeze(dt.datetime(2026, 12, 1, 17, 0, tzinfo=dt.UTC))
    return Appointment.objects.create(
        clinic=world.clinic,
        patient=world.patient,
        kind="integration",
        starts_at=LATE,
        ends_at=LATE + dt.timedelta(minutes=50),
        staff=world.therapist,
        created_by=world.front_desk,
    )


def _says_saturday_2330(text: str) -> None:
    assert "23:30" in text, "the local time is not shown"
    assert not re.search(r"\b0?7:30\b|\b0?2:30\b", text), "a UTC or server-zone time is shown"
    assert re.search(r"\b(Sat|Saturday)\b", text) or re.search(r"\b5 Dec|Dec(ember)? 5\b|2026-12-05", text)
    assert not re.search(r"\b6 Dec|Dec(ember)? 6\b|2026-12-06|\bSun\b", text), "the UTC date is shown"


def test_staff_pages_show_the_clinic_time(world: Any, client: Any, late_appointment: Appointment) -> None:
    client.force_login(world.front_desk)
    body = client.get(reverse("scheduling:detail", args=[late_appointment.pk])).content.decode()
    main = body[body.index("<main") :]
    _says_saturday_2330(main[: main.index("</main>")])
    day = client.get(reverse("scheduling:index") + "?date=2026-12-05").content.decode()
    assert "23:30" in day and "07:30" not in day


def test_portal_shows_the_clinic_time(world: Any, client: Any, late_appointment: Appointment) -> None:
    client.force_login(world.patient_user)
    body = client.get(reverse("portal:index")).content.decode()
    upcoming = body[body.index('id="appt-h"') :]
    upcoming = upcoming[: upcoming.index("</section>")]
    _says_saturday_2330(upcoming)


def test_reminder_email_sent_by_the_worker_shows_the_clinic_time(
    world: Any, late_appointment: Appointment
) -> None:
    from kapclinic.scheduling.models import Reminder
    from kapclinic.scheduling.services import reminder_deliver

    reminder = Reminder.objects.create(
        clinic=world.clinic, appointment=late_appointment, send_at=LATE - dt.timedelta(days=1)
    )
    clock.freeze(LATE - dt.timedelta(hours=20))
    assert reminder_deliver(reminder.pk) == "sent"
    _says_saturday_2330(mail.outbox[-1].subject + "\n" + mail.outbox[-1].body)


def test_admin_sets_the_time_zone_with_checks(world: Any, client: Any) -> None:
    client.force_login(world.admin)
    url = reverse("accounts:clinic_details")
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["form"]
    data = {k: (v if v is not None else "") for k, v in form.initial.items() if k in form.fields}
    bad = client.post(url, {**data, "time_zone": "Mars/Olympus_Mons"})
    assert bad.status_code == 400 and "Time zone" in bad.content.decode()
    assert Clinic.objects.get(pk=world.clinic.pk).time_zone == "America/New_York"
    ok = client.post(url, {**data, "time_zone": "America/Los_Angeles"})
    assert ok.status_code == 302
    assert Clinic.objects.get(pk=world.clinic.pk).time_zone == "America/Los_Angeles"
    event = AuditEvent.objects.filter(object_type="accounts.clinic").latest("id")
    assert "time_zone" in event.detail
    stale = client.post(url, {**data, "time_zone": "Europe/London"})  # the version it was rendered with
    assert stale.status_code == 409
    assert Clinic.objects.get(pk=world.clinic.pk).time_zone == "America/Los_Angeles"
