"""Issue #6: the front desk books appointments, the schedule refuses double-booking with a sentence,
and the day, week and chair-board views render accessibly."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from playwright.sync_api import expect

from kapclinic.core import clock
from kapclinic.scheduling.models import Appointment, Resource
from kapclinic.testing.factories import make_clinic, make_patient, make_staff


def test_booking_conflict_and_calendar_views(
    page: Any, phone_page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    clinic = make_clinic("Harbor")
    make_staff(clinic, "front_desk", name="Frankie Frontdesk", email="desk@s.test")
    therapist = make_staff(clinic, "therapist", name="Theo Therapist", email="theo@s.test")
    nurse = make_staff(clinic, "nurse", name="Nadia Nurse", email="nadia@s.test")
    a = make_patient(clinic, care_team=[therapist], legal_first_name="Avery")
    b = make_patient(clinic, care_team=[therapist], legal_first_name="Blake")
    chair = Resource.objects.create(clinic=clinic, name="Chair 1", kind="chair")
    Resource.objects.create(clinic=clinic, name="Integration room", kind="room")
    day = timezone.localdate(clock.now()) + dt.timedelta(days=1)
    tz = timezone.get_current_timezone()
    start = dt.datetime.combine(day, dt.time(9, 0), tzinfo=tz)
    Appointment.objects.create(
        clinic=clinic, patient=a, kind="dosing", starts_at=start, ends_at=start + dt.timedelta(minutes=180),
        staff=nurse, resource=chair, created_by=nurse,
    )  # fmt: skip

    login(page, "desk@s.test")
    page.goto(f"{server}/schedule/new/?date={day.isoformat()}")
    page.get_by_label("Patient").select_option(label=f"Blake Synthetic ({b.mrn})")
    page.get_by_label("Kind of appointment").select_option("integration")
    page.get_by_label("Start time").fill("11:30")
    page.get_by_label("Clinician").select_option(label="Nadia Nurse")
    axe_check(page, "scheduling-form")
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_text("Nadia Nurse is already booked from")).to_be_visible()

    axe_check(page, "scheduling-form-refused")
    shot(page, "scheduling-1-double-booking-refused")
    # Back-to-back is fine.
    page.get_by_label("Start time").fill("12:00")
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_text("Integration session booked for Blake Synthetic.")).to_be_visible()

    assert Appointment.objects.filter(patient=b).count() == 1
    shot(page, "scheduling-2-booked")

    page.goto(f"{server}/schedule/?date={day.isoformat()}")
    expect(page.get_by_role("region", name="Nadia Nurse")).to_be_visible()

    axe_check(page, "scheduling-day")
    shot(page, "scheduling-3-day")
    page.goto(f"{server}/schedule/week/?date={day.isoformat()}")
    axe_check(page, "scheduling-week")
    shot(page, "scheduling-4-week")
    page.goto(f"{server}/schedule/chairs/?date={day.isoformat()}")
    expect(page.get_by_role("region", name="Chair 1")).to_be_visible()

    axe_check(page, "scheduling-chairs")
    shot(page, "scheduling-5-chair-board")

    login(phone_page, "desk@s.test")
    phone_page.goto(f"{server}/schedule/?date={day.isoformat()}")
    axe_check(phone_page, "scheduling-day-phone")
    shot(phone_page, "scheduling-6-day-phone")


def test_calendar_hides_patients_outside_a_therapists_caseload(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    clinic = make_clinic("Harbor")
    theo = make_staff(clinic, "therapist", name="Theo Therapist", email="theo@v.test")
    tara = make_staff(clinic, "therapist", name="Tara Therapist", email="tara@v.test")
    mine = make_patient(clinic, care_team=[theo], legal_first_name="Avery")
    theirs = make_patient(clinic, care_team=[tara], legal_first_name="Blake")
    room = Resource.objects.create(clinic=clinic, name="Integration room", kind="room")
    day = timezone.localdate(clock.now()) + dt.timedelta(days=1)
    tz = timezone.get_current_timezone()
    for patient, who, hour in ((mine, theo, 9), (theirs, tara, 11)):
        start = dt.datetime.combine(day, dt.time(hour, 0), tzinfo=tz)
        Appointment.objects.create(
            clinic=clinic, patient=patient, kind="integration", starts_at=start,
            ends_at=start + dt.timedelta(minutes=60), staff=who, resource=room, created_by=who,
        )  # fmt: skip

    login(page, "theo@v.test")
    page.goto(f"{server}/schedule/?date={day.isoformat()}")
    expect(page.get_by_text("Avery Synthetic").first).to_be_visible()
    expect(page.get_by_text("Booked").first).to_be_visible()
    assert "Blake" not in page.content()
    axe_check(page, "scheduling-day-caseload-only")
    shot(page, "scheduling-7-day-caseload-only")
