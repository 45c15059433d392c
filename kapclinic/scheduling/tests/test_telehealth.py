"""Issue 17: video appointments. The link appears for staff and patient from the clinic's time before
the start and not before, never on a public page; reminders and iCal events carry the signed-in join
page; place of service follows the modality; a pattern that is not https is refused."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.urls import reverse

from kapclinic.scheduling import services, telehealth
from kapclinic.scheduling.models import Appointment, ClinicianRoom, TelehealthSettings
from kapclinic.testing.factories import actor_for

PATTERN = "https://meet.example.org/{room}"


def _video_appt(world: Any, clock_frozen: Any, minutes_ahead: int = 60) -> Appointment:
    start = clock_frozen.now() + dt.timedelta(minutes=minutes_ahead)
    return services.appointment_book(
        actor_for(world.front_desk, world.clinic), world.patient, kind="integration", starts_at=start,
        minutes=50, staff=world.therapist, modality="video",
    )  # fmt: skip


def test_jitsi_link_appears_for_patient_and_staff_only_from_the_clinic_time(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    telehealth.settings_update(
        actor_for(world.admin, world.clinic), mode="jitsi", jitsi_pattern=PATTERN, minutes_before=10
    )
    appt = _video_appt(world, clock_frozen)
    assert appt.place_of_service == "02"
    client.force_login(world.patient_user)
    url = reverse("scheduling:my_video", kwargs={"appointment_id": appt.pk})
    early = client.get(url).content.decode()
    assert "meet.example.org" not in early and "appears here from" in early
    appt.refresh_from_db()
    assert appt.video_room == ""  # no room exists before its time
    clock_frozen.advance(dt.timedelta(minutes=51))
    page = client.get(url).content.decode()
    appt.refresh_from_db()
    room_url = f"https://meet.example.org/{appt.video_room}"
    assert appt.video_room and room_url in page and "Join the video call" in page
    client.force_login(world.therapist)
    staff = client.get(reverse("scheduling:video", kwargs={"appointment_id": appt.pk})).content.decode()
    assert room_url in staff
    # Another patient, another clinic: not found; anonymous: sign in first.
    client.force_login(world.other_patient_user)
    assert client.get(url).status_code == 404
    client.logout()
    assert client.get(url).status_code == 302
    # After the end, gone again.
    clock_frozen.advance(dt.timedelta(minutes=70))
    client.force_login(world.patient_user)
    assert room_url not in client.get(url).content.decode()


def test_personal_room_and_reminder_and_ical_carry_the_join_page_not_the_room(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    telehealth.room_set(actor_for(world.therapist, world.clinic), "https://video.example.org/theo")
    appt = _video_appt(world, clock_frozen, minutes_ahead=10)
    link = telehealth.video_link(appt)
    assert link is not None and link.url == "https://video.example.org/theo"
    _subject, body = services.reminder_email(appt)
    assert telehealth.patient_join_url(appt) in body and "video.example.org" not in body
    from kapclinic.scheduling.ical import render_feed
    from kapclinic.scheduling.models import CalendarFeed

    feed = CalendarFeed(clinic=world.clinic, patient=world.patient, show_details=False)
    ics = render_feed(feed, [appt]).decode()
    assert "/schedule/my/" in ics and "video.example.org" not in ics
    # An in-person appointment has place of service 11 and no link.
    appt2 = services.appointment_book(
        actor_for(world.front_desk, world.clinic), world.patient, kind="integration",
        starts_at=appt.ends_at + dt.timedelta(hours=2), minutes=50, staff=world.therapist,
    )  # fmt: skip
    assert appt2.place_of_service == "11" and telehealth.video_link(appt2) is None


def test_non_https_pattern_and_room_are_refused_with_a_sentence(world: Any, client: Any) -> None:
    client.force_login(world.admin)
    url = reverse("scheduling:telehealth")
    for bad in (
        "http://meet.example.org/{room}",
        "javascript:alert(1)//{room}",
        "https://meet.example.org/x",
    ):
        response = client.post(url, {"mode": "jitsi", "jitsi_pattern": bad, "minutes_before": "15"})
        assert response.status_code == 400
        assert "Jitsi URL pattern:" in response.content.decode()
    assert not TelehealthSettings.objects.exists()
    good = {"mode": "jitsi", "jitsi_pattern": PATTERN, "minutes_before": "15"}
    assert client.post(url, good).status_code == 302
    client.force_login(world.therapist)
    response = client.post(reverse("scheduling:my_room"), {"url": "http://video.example.org/theo"})
    assert response.status_code == 400 and "https://" in response.content.decode()
    assert not ClinicianRoom.objects.exists()
