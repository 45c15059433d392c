"""Issue 17: a video integration session's link appears at the clinic's time before the start, for the
patient (phone, from the portal home) and the therapist (appointment page), and not before."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from kapclinic.core import clock
from kapclinic.scheduling import services, telehealth
from kapclinic.testing.factories import actor_for, make_clinic, make_patient, make_staff

T0 = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)
PASSWORD = "test-password-123"


@pytest.fixture
def frozen() -> Iterator[None]:
    clock.freeze(T0)
    yield
    clock.reset()


def test_video_link_appears_for_both_at_the_right_time_and_not_before(
    frozen: None, phone_page: Any, page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    from kapclinic.accounts.models import User

    clinic = make_clinic("Harbor")
    admin = make_staff(clinic, "admin", name="Ada Admin", email="ada@p.test")
    therapist = make_staff(clinic, "therapist", name="Theo Therapist", email="theo@p.test")
    desk = make_staff(clinic, "front_desk", name="Fran Desk", email="fran@p.test")
    user = User.objects.create_user(email="robin@p.test", full_name="Robin Demo", password=PASSWORD)
    patient = make_patient(clinic, user=user, care_team=[therapist], legal_first_name="Robin")
    telehealth.settings_update(
        actor_for(admin, clinic),
        mode="jitsi",
        jitsi_pattern="https://meet.example.org/{room}",
        minutes_before=15,
    )
    appt = services.appointment_book(
        actor_for(desk, clinic), patient, kind="integration", starts_at=T0 + dt.timedelta(hours=1),
        minutes=50, staff=therapist, modality="video",
    )  # fmt: skip

    # An hour before: the portal says when the link opens, and shows no room.
    login(phone_page, "robin@p.test")
    phone_page.get_by_role("link", name="Join the video call").click()
    expect(phone_page.get_by_text("The link to join appears here from")).to_be_visible()
    assert "meet.example.org" not in phone_page.content()
    shot(phone_page, "video-1-early-phone")

    # Ten minutes before the start: the patient and the therapist both see the room.
    clock.advance(dt.timedelta(minutes=50))
    phone_page.reload()
    join = phone_page.get_by_role("link", name="Join the video call")
    expect(join).to_be_visible()
    appt.refresh_from_db()
    assert join.get_attribute("href") == f"https://meet.example.org/{appt.video_room}"
    expect(phone_page.get_by_role("heading", name="Not monitored in real time")).to_be_visible()
    axe_check(phone_page, "video-join-phone")
    shot(phone_page, "video-2-open-phone")

    login(page, "theo@p.test")
    page.goto(f"{server}/schedule/a/{appt.pk}/")
    expect(page.get_by_text("02 Telehealth")).to_be_visible()
    page.get_by_role("link", name="Video call link").click()
    staff_join = page.get_by_role("link", name="Join the video call")
    expect(staff_join).to_be_visible()
    assert staff_join.get_attribute("href") == f"https://meet.example.org/{appt.video_room}"
    axe_check(page, "video-join-staff")
    shot(page, "video-3-open-staff")
