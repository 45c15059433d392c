"""Issue 18: the front desk marks arrival (check-in) and no-show, audited; the appointment page, the day
list and the chair board agree on the state; an appointment in session cannot be cancelled."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from kapclinic.audit.models import AuditEvent
from kapclinic.clinical.session_state import Event
from kapclinic.core.errors import DomainError
from kapclinic.scheduling import services
from kapclinic.scheduling.models import Appointment, Status
from kapclinic.sessions.models import DosingSession
from kapclinic.sessions.services import session_start_from_appointment, session_transition
from kapclinic.testing.factories import actor_for

pytestmark = pytest.mark.django_db

TZ = timezone.get_current_timezone()
TODAY = dt.date(2026, 3, 2)  # the frozen clock: 2026-03-02 14:00 UTC is 09:00 in New York


def make(world: Any, hour: int, day: dt.date = TODAY, **kw: Any) -> Appointment:
    start = dt.datetime.combine(day, dt.time(hour), tzinfo=TZ)
    return Appointment.objects.create(
        clinic=world.clinic,
        patient=world.patient,
        kind=kw.pop("kind", "integration"),
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=kw.pop("minutes", 60)),
        staff=kw.pop("staff", world.therapist),
        created_by=world.front_desk,
        **kw,
    )


def test_front_desk_checks_a_patient_in_once_on_the_day(world: Any, client: Any, clock_frozen: Any) -> None:
    appt = make(world, 10)
    client.force_login(world.front_desk)
    day_url = f"{reverse('scheduling:index')}?date={TODAY.isoformat()}"
    body = client.get(day_url).content.decode()
    assert reverse("scheduling:check_in", kwargs={"appointment_id": appt.pk}) in body
    before = AuditEvent.objects.count()
    url = reverse("scheduling:check_in", kwargs={"appointment_id": appt.pk})
    response = client.post(url, {"version": appt.version, "next": day_url})
    assert response.status_code == 302 and response["Location"] == day_url
    appt.refresh_from_db()
    assert appt.checked_in_at is not None and appt.checked_in_by == world.front_desk
    assert appt.status == Status.BOOKED
    event = AuditEvent.objects.order_by("-id").first()
    assert AuditEvent.objects.count() == before + 1
    assert event is not None and event.action == "update" and event.detail == "checked in"
    assert "Arrived 09:00" in client.get(day_url).content.decode()
    assert "Arrived 09:00" in client.get(reverse("scheduling:detail", args=[appt.pk])).content.decode()
    # Twice: refused with a sentence.
    client.post(url, {"version": appt.version})
    page = client.get(reverse("scheduling:detail", args=[appt.pk])).content.decode()
    assert "already checked in at 09:00" in page


def test_check_in_is_refused_on_another_day(world: Any, clock_frozen: Any) -> None:
    appt = make(world, 10, day=TODAY + dt.timedelta(days=1))
    with pytest.raises(DomainError, match="on the day of the appointment"):
        services.appointment_check_in(
            actor_for(world.front_desk, world.clinic), appt, expected_version=appt.version
        )


def test_front_desk_marks_no_show_but_not_after_check_in(world: Any, client: Any, clock_frozen: Any) -> None:
    missed = make(world, 7)
    arrived = make(world, 8)
    client.force_login(world.front_desk)
    before = AuditEvent.objects.count()
    status_url = reverse("scheduling:status", args=[missed.pk])
    client.post(status_url, {"version": missed.version, "status": "no_show"})
    missed.refresh_from_db()
    assert missed.status == Status.NO_SHOW
    assert AuditEvent.objects.filter(pk__gt=before, detail="status=no_show").count() == 1
    actor = actor_for(world.front_desk, world.clinic)
    services.appointment_check_in(actor, arrived, expected_version=arrived.version)
    arrived.refresh_from_db()
    with pytest.raises(DomainError, match="they attended"):
        services.appointment_set_status(actor, arrived, expected_version=arrived.version, status="no_show")


def test_an_appointment_in_session_cannot_be_cancelled_and_shows_in_session(
    world: Any, client: Any, ready: Any, chair: Any
) -> None:
    appt = make(world, 8, kind="dosing", minutes=180, staff=world.nurse, resource=chair)
    session, _ = session_start_from_appointment(actor_for(world.nurse, world.clinic), appt)
    DosingSession.objects.filter(pk=session.pk).update(state="monitoring")
    actor = actor_for(world.front_desk, world.clinic)
    with pytest.raises(DomainError, match="in progress"):
        services.appointment_cancel(actor, appt, expected_version=appt.version, reason="Patient asked")
    with pytest.raises(DomainError, match="in progress"):
        services.appointment_set_status(actor, appt, expected_version=appt.version, status="no_show")

    client.force_login(world.front_desk)
    response = client.post(
        reverse("scheduling:cancel", args=[appt.pk]), {"version": appt.version, "reason": "Asked"}
    )
    assert response.status_code == 302
    appt.refresh_from_db()
    assert appt.status == Status.BOOKED
    page = client.get(reverse("scheduling:detail", args=[appt.pk])).content.decode()
    assert "A dosing session is in progress for this appointment, so you cannot cancel it." in page
    assert "Cancel appointment</button>" not in page
    assert '">In session</span>' in page
    assert ">Booked</span>" not in page
    board = client.get(reverse("scheduling:chairs"), {"date": TODAY.isoformat()}).content.decode()
    assert '<span class="badge ">In session</span>' in board or ">In session</span>" in board
    day = client.get(reverse("scheduling:index"), {"date": TODAY.isoformat()}).content.decode()
    assert "<td>In session</td>" in day
    # A clinician sees the session's own state in both places.
    client.force_login(world.nurse)
    page = client.get(reverse("scheduling:detail", args=[appt.pk])).content.decode()
    board = client.get(reverse("scheduling:chairs"), {"date": TODAY.isoformat()}).content.decode()
    state = DosingSession.objects.get(pk=session.pk).get_state_display()
    assert f">{state}</span>" in page and f">{state}</span>" in board


def _shown_states(client: Any, appt: Appointment) -> tuple[list[str], list[str], list[str]]:
    """The state badge of ``appt`` on its page and on the chair board, and its state cell on the day list."""
    date = {"date": TODAY.isoformat()}
    link = re.escape(reverse("scheduling:detail", args=[appt.pk]))
    page = client.get(reverse("scheduling:detail", args=[appt.pk])).content.decode()
    board = client.get(reverse("scheduling:chairs"), date).content.decode()
    day = client.get(reverse("scheduling:index"), date).content.decode()
    return (
        re.findall(r'<dt>Status</dt><dd><span class="badge[^"]*">([^<]*)</span>', page),
        re.findall(link + r'">[^<]*</a>[^<]*<br>\s*<span class="badge[^"]*">([^<]*)</span>', board),
        re.findall(link + r'">[^<]*</a></td>(?:\s*<td>.*?</td>){4}\s*<td>([^<]*)</td>', day, flags=re.S),
    )


def test_after_an_aborted_session_page_day_list_and_chair_board_show_one_state(
    world: Any, client: Any, ready: Any, chair: Any
) -> None:
    """The chair board read "Aborted" (its own phase rule, the aborted session's state) while the
    appointment page and the day list read Booked or Arrived: all three now show
    ``selectors.appointment_state``, to clinicians and front desk alike."""
    appt = make(world, 8, kind="dosing", minutes=180, staff=world.nurse, resource=chair)
    nurse = actor_for(world.nurse, world.clinic)
    session, _ = session_start_from_appointment(nurse, appt)
    session_transition(
        nurse, session, Event.ABORT, expected_version=session.version, reason="Patient felt unwell on arrival"
    )
    for user in (world.nurse, world.front_desk):
        client.force_login(user)
        assert _shown_states(client, appt) == (["Booked"], ["Booked"], ["Booked"]), user
    # The board offers a new start, like the appointment page (an aborted session does not count).
    client.force_login(world.nurse)
    board = client.get(reverse("scheduling:chairs"), {"date": TODAY.isoformat()}).content.decode()
    assert reverse("sessions:start", args=[appt.pk]) in board and "Aborted" not in board
    page = client.get(reverse("scheduling:detail", args=[appt.pk])).content.decode()
    assert reverse("sessions:start", args=[appt.pk]) in page
    assert "An earlier session from this appointment was aborted" in page
    assert reverse("sessions:detail", args=[world.patient.pk, session.pk]) in page
    # The patient arrives (front desk check-in): "Arrived 09:00" in all three places.
    client.force_login(world.front_desk)
    check_in = reverse("scheduling:check_in", kwargs={"appointment_id": appt.pk})
    assert client.post(check_in, {"version": appt.version}).status_code == 302
    for user in (world.nurse, world.front_desk):
        client.force_login(user)
        assert _shown_states(client, appt) == (["Arrived 09:00"],) * 3, user
    # A new session started from it: its state everywhere (the session's own state for the nurse).
    again, _ = session_start_from_appointment(nurse, appt)
    client.force_login(world.nurse)
    state = again.get_state_display()
    assert _shown_states(client, appt) == ([state], [state], [state])


def _weekly(world: Any, repeat: Any) -> dict[str, Any]:
    return {
        "patient": world.patient.pk,
        "kind": "integration",
        "date": "2026-03-03",
        "time": "11:00",
        "repeat": repeat,
        "staff": world.therapist.pk,
        "modality": "in_person",
    }


def test_repeat_weekly_books_each_free_week_and_reports_the_others(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    busy = make(world, 11, day=dt.date(2026, 3, 17), staff=world.therapist)  # week 3 is taken
    client.force_login(world.front_desk)
    response = client.post(reverse("scheduling:new"), _weekly(world, 4), follow=True)
    body = response.content.decode()
    got = Appointment.objects.filter(patient=world.patient).exclude(pk=busy.pk).order_by("starts_at")
    assert [timezone.localtime(a.starts_at).date().isoformat() for a in got] == [
        "2026-03-03",
        "2026-03-10",
        "2026-03-24",
    ]
    assert all(f"{timezone.localtime(a.starts_at):%H:%M}" == "11:00" for a in got)  # across the DST change
    assert "3 of 4" in body
    assert "Tue 17 Mar 2026 11:00: not booked." in body


def test_repeat_weekly_with_nothing_free_rerenders_with_each_reason(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    for day in (3, 10):
        make(world, 11, day=dt.date(2026, 3, day))
    client.force_login(world.front_desk)
    before = Appointment.objects.count()
    response = client.post(reverse("scheduling:new"), _weekly(world, 2))
    assert response.status_code == 400
    body = response.content.decode()
    assert "Tue 03 Mar 2026 11:00: not booked." in body and "Tue 10 Mar 2026 11:00: not booked." in body
    assert Appointment.objects.count() == before
    bad = client.post(reverse("scheduling:new"), _weekly(world, 0))
    assert bad.status_code == 400
    assert "greater than or equal to 1" in bad.content.decode()
