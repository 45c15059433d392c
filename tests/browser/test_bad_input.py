"""Issue 12: a booking at the end of time is refused next to the date field, a calendar address with an
impossible date answers a readable 400 page, and a session stored outside the plausible window is shown
with a flag."""

from __future__ import annotations

import datetime as dt
from typing import Any

from playwright.sync_api import expect

from kapclinic.sessions.models import DosingSession
from kapclinic.testing.factories import make_clinic, make_patient, make_staff


def test_bad_dates_are_refused_and_stored_ones_flagged(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    clinic = make_clinic("Harbor")
    nurse = make_staff(clinic, "nurse", name="Nadia Nurse", email="nadia@s.test")
    patient = make_patient(clinic, care_team=[nurse], legal_first_name="Avery")
    session = DosingSession.objects.create(
        clinic=clinic,
        patient=patient,
        protocol_id="esketamine-in-trd",
        protocol_version="1.0.0",
        scheduled_for=dt.datetime(9999, 12, 30, 12, 0, tzinfo=dt.UTC),
        created_by=nurse,
    )
    login(page, "nadia@s.test")

    page.goto(f"{server}/schedule/new/")
    page.get_by_label("Patient").select_option(label=f"Avery Synthetic ({patient.mrn})")
    page.get_by_label("Date").fill("9999-12-31")
    page.get_by_label("Start time").fill("23:00")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("The date must be between")).to_be_visible()
    shot(page, "bad-input-booking-refused")
    axe_check(page, "bad-input-booking-refused")

    response = page.goto(f"{server}/schedule/week/?date=9999-12-31")
    assert response is not None and response.status == 400
    expect(page.get_by_text("The date parameter is not valid")).to_be_visible()
    shot(page, "bad-input-400")
    axe_check(page, "bad-input-400")

    page.goto(f"{server}/sessions/patient/{patient.pk}/{session.pk}/")
    expect(page.get_by_text("Date outside the plausible window")).to_be_visible()
    shot(page, "bad-input-flagged-session")
