from __future__ import annotations

import datetime as dt
from typing import Any

import icalendar
import pytest
from django.urls import reverse

from kapclinic.audit.models import AuditEvent
from kapclinic.scheduling import services
from kapclinic.scheduling.models import Appointment, CalendarFeed
from kapclinic.scheduling.tests.conftest import at
from kapclinic.testing.factories import actor_for, make_patient

pytestmark = pytest.mark.django_db


def book(world: Any, patient: Any, start: dt.datetime, staff: Any = None, **kw: Any) -> Appointment:
    return services.appointment_book(
        actor_for(world.front_desk, world.clinic),
        patient,
        kind=kw.pop("kind", "integration"),
        starts_at=start,
        minutes=kw.pop("minutes", 60),
        staff=staff or world.therapist,
        **kw,
    )


def many(world: Any, n: int, chair: Any = None) -> None:
    for i in range(n):
        p = make_patient(world.clinic, care_team=[world.therapist])
        book(world, p, at(8) + dt.timedelta(minutes=60 * i), resource=chair)


@pytest.mark.parametrize("n", [1, 8])
@pytest.mark.parametrize("name", ["scheduling:index", "scheduling:week", "scheduling:chairs"])
def test_calendar_views_constant_queries(
    name: str,
    n: int,
    world: Any,
    client: Any,
    clock_frozen: Any,
    chair: Any,
    django_assert_max_num_queries: Any,
) -> None:
    many(world, n, chair)
    client.force_login(world.therapist)
    with django_assert_max_num_queries(24):
        response = client.get(reverse(name), {"date": "2026-03-03"})
    assert response.status_code == 200
    assert response.content.decode().count("Synthetic") >= n


def test_day_view_hides_names_outside_caseload(world: Any, client: Any, clock_frozen: Any) -> None:
    book(world, world.other_patient, at(15), staff=world.therapist_other)
    client.force_login(world.therapist)
    body = client.get(reverse("scheduling:index"), {"date": "2026-03-03"}).content.decode()
    assert world.other_patient.legal_first_name not in body
    assert world.other_patient.mrn not in body
    assert body.count('class="cal-busy">Booked<') == 1  # the list row; the block is a kind-busy block
    assert body.count('class="cal-block kind-busy"') == 1
    client.force_login(world.front_desk)
    body = client.get(reverse("scheduling:index"), {"date": "2026-03-03"}).content.decode()
    assert world.other_patient.legal_first_name in body


def test_day_view_leaves_one_audit_event(world: Any, client: Any, clock_frozen: Any) -> None:
    client.force_login(world.nurse)
    before = AuditEvent.objects.count()
    client.get(reverse("scheduling:index"))
    assert AuditEvent.objects.count() == before + 1


def test_book_by_post_and_refusal_rerenders(world: Any, client: Any, clock_frozen: Any) -> None:
    client.force_login(world.front_desk)
    data = {
        "patient": world.patient.pk,
        "kind": "integration",
        "date": "2026-03-03",
        "time": "10:00",
        "minutes": "",
        "staff": world.therapist.pk,
        "modality": "in_person",
        "resource": "",
    }
    response = client.post(reverse("scheduling:new"), data)
    assert response.status_code == 302
    appt = Appointment.objects.get()
    assert appt.minutes == 60
    response = client.post(reverse("scheduling:new"), {**data, "time": "10:30"})
    assert response.status_code == 400
    assert "is already booked from" in response.content.decode()
    assert Appointment.objects.count() == 1


def test_therapist_cannot_book_outside_caseload(world: Any, client: Any, clock_frozen: Any) -> None:
    client.force_login(world.therapist)
    response = client.post(
        reverse("scheduling:new"),
        {
            "patient": world.other_patient.pk,
            "kind": "integration",
            "date": "2026-03-03",
            "time": "10:00",
            "staff": world.therapist.pk,
            "modality": "in_person",
        },
    )
    assert response.status_code == 400  # not in the choices: the form refuses it
    assert not Appointment.objects.exists()


def test_cancel_view(world: Any, client: Any, clock_frozen: Any) -> None:
    appt = book(world, world.patient, at(15))
    client.force_login(world.front_desk)
    client.post(reverse("scheduling:cancel", args=[appt.pk]), {"reason": "", "version": appt.version})
    appt.refresh_from_db()
    assert appt.status == "booked"
    client.post(reverse("scheduling:cancel", args=[appt.pk]), {"reason": "Ill", "version": appt.version})
    appt.refresh_from_db()
    assert appt.status == "cancelled"


def test_staff_feed_parses_and_has_no_names(world: Any, client: Any, clock_frozen: Any) -> None:
    book(world, world.patient, at(15))
    token = services.feed_reset(actor_for(world.therapist, world.clinic))
    response = client.get(reverse("scheduling:feed", args=[token]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    cal = icalendar.Calendar.from_ical(response.content)
    events = list(cal.walk("VEVENT"))
    assert len(events) == 1
    assert str(events[0]["summary"]) == f"Integration session · {world.patient.mrn}"
    assert world.patient.legal_first_name not in response.content.decode()


def test_patient_feed_says_only_appointment_at_clinic_unless_opted_in(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    book(world, world.patient, at(15))
    actor = actor_for(world.patient_user, world.clinic)
    token = services.feed_reset(actor, patient=world.patient)
    cal = icalendar.Calendar.from_ical(client.get(reverse("scheduling:feed", args=[token])).content)
    event = next(iter(cal.walk("VEVENT")))
    assert str(event["summary"]) == f"Appointment at {world.clinic.name}"
    assert "description" not in event
    services.feed_set_details(actor, world.patient, show_details=True)
    cal = icalendar.Calendar.from_ical(client.get(reverse("scheduling:feed", args=[token])).content)
    event = next(iter(cal.walk("VEVENT")))
    assert str(event["summary"]) == f"Integration session at {world.clinic.name}"
    assert AuditEvent.objects.filter(patient=world.patient, object_type="scheduling.calendarfeed").exists()


def test_tampered_and_reset_tokens_are_refused(world: Any, client: Any, clock_frozen: Any) -> None:
    actor = actor_for(world.therapist, world.clinic)
    token = services.feed_reset(actor)
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    response = client.get(reverse("scheduling:feed", args=[tampered]))
    assert response.status_code == 404
    assert "not valid" in response.content.decode()
    new_token = services.feed_reset(actor)
    assert client.get(reverse("scheduling:feed", args=[token])).status_code == 404
    assert client.get(reverse("scheduling:feed", args=[new_token])).status_code == 200
    assert CalendarFeed.objects.count() == 1


def test_my_feed_page_shows_address_once(world: Any, client: Any) -> None:
    client.force_login(world.therapist)
    response = client.post(reverse("scheduling:my_feed"))
    assert "/schedule/feed/" in response.content.decode()
    response = client.get(reverse("scheduling:my_feed"))
    assert "/schedule/feed/" not in response.content.decode()


@pytest.mark.parametrize("n", [1, 10])
def test_reminders_page_constant_queries(
    n: int, world: Any, client: Any, clock_frozen: Any, django_assert_max_num_queries: Any
) -> None:
    from kapclinic.scheduling.models import Reminder

    many(world, n)
    Reminder.objects.update(status="failed", attempts=5, last_error="SMTPException: refused")
    client.force_login(world.front_desk)
    with django_assert_max_num_queries(16):
        response = client.get(reverse("scheduling:reminders"))
    assert response.content.decode().count("Retry now") == n


def test_refused_booking_leaves_exactly_one_audit_event(world: Any, client: Any, clock_frozen: Any) -> None:
    book(world, world.patient, at(15))
    client.force_login(world.front_desk)
    before = AuditEvent.objects.count()
    response = client.post(
        reverse("scheduling:new"),
        {
            "patient": world.patient.pk,
            "kind": "follow_up",
            "date": "2026-03-03",
            "time": "10:15",
            "staff": world.therapist.pk,
            "modality": "in_person",
        },
    )
    assert response.status_code == 400
    assert AuditEvent.objects.count() == before + 1


def test_booking_a_therapist_off_the_care_team_rerenders_with_the_fix(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    """The nurse may schedule world.patient, but world.therapist_other is not on the patient's care team:
    the form comes back (400) with the sentence on the clinician field, nothing is booked, and the
    request leaves its one audit event."""
    client.force_login(world.nurse)
    before = AuditEvent.objects.count()
    response = client.post(
        reverse("scheduling:new"),
        {
            "patient": world.patient.pk,
            "kind": "integration",
            "date": "2026-03-03",
            "time": "10:00",
            "staff": world.therapist_other.pk,
            "modality": "in_person",
        },
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "is not on" in body and "Add them to the care team first" in body
    assert not Appointment.objects.exists()
    assert AuditEvent.objects.count() == before + 1
