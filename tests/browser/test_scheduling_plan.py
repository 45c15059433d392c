"""Issue 18, "scheduling follows the plan": the prescriber signs the plan, the front desk books its whole
proposed series in one step and sees each line's result (one line is not free and says why), opens the
day view and checks the patient in. The application clock is frozen (the live server shares the process)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from kapclinic.clinical.protocols import get_protocol
from kapclinic.clinical.terminology import BY_ICD10
from kapclinic.core import clock
from kapclinic.scheduling import series, services
from kapclinic.scheduling.models import Appointment, Resource
from kapclinic.testing.factories import actor_for, make_clinic, make_patient, make_staff
from kapclinic.treatment import services as treatment_services
from kapclinic.treatment.testing import sign_consent, sign_eligible

T0 = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)  # 09:00 in New York


@pytest.fixture
def frozen() -> Any:
    clock.freeze(T0)
    yield
    clock.reset()


def test_front_desk_books_the_plans_series_and_checks_the_patient_in(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any, frozen: Any
) -> None:
    clinic = make_clinic("Harbor")
    prescriber = make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="pp@plan.test")
    therapist = make_staff(clinic, "therapist", name="Theo Therapist", email="theo@plan.test")
    make_staff(clinic, "nurse", name="Nadia Nurse", email="nadia@plan.test")
    make_staff(clinic, "front_desk", name="Frankie Frontdesk", email="desk@plan.test")
    patient = make_patient(clinic, care_team=[prescriber, therapist], legal_first_name="Robin")
    other = make_patient(clinic, care_team=[therapist], legal_first_name="Kai")
    room = Resource.objects.create(clinic=clinic, name="Integration room", kind="room")
    Resource.objects.create(clinic=clinic, name="Chair 1", kind="chair")
    sign_eligible(patient, prescriber)
    sign_consent(patient, witness=prescriber)
    proto = get_protocol("esketamine-in-trd")
    per_week = proto.sessions.phases[0].sessions_per_week if proto.sessions.phases else ()
    plan = treatment_services.plan_create(
        actor_for(prescriber, clinic),
        patient,
        protocol=proto,
        indication=BY_ICD10["F33.1"],
        goals="Feel like myself again",
        modality="cbt",
        modality_other="",
        dosing_sessions=proto.sessions.count.value or 6,
        sessions_per_week=per_week[0] if per_week else Decimal(1),
        targets=[{"instrument": "PHQ-9", "comparator": "lt", "value": 10, "timepoint": "after induction"}],
    )
    today = timezone.localdate(clock.now())
    # The room is taken when the first integration session would be: that line will say so.
    first_integration = plan.proposals.filter(kind="integration").order_by("sequence").first()
    assert first_integration is not None
    when = series.suggestions(plan, today)[first_integration.pk]
    services.appointment_book(
        actor_for(therapist, clinic),
        other,
        kind="follow_up",
        starts_at=dt.datetime.combine(when, dt.time(10), tzinfo=timezone.get_current_timezone()),
        minutes=30,
        staff=therapist,
        resource=room,
    )
    plan_url = server + reverse("treatment:plan", kwargs={"patient_id": patient.pk, "plan_id": plan.pk})

    # The prescriber signs the plan; the signed plan offers "Book the series".
    login(page, "pp@plan.test")
    page.goto(plan_url)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign treatment plan").click()
    expect(page.get_by_text("Treatment plan signed.")).to_be_visible()
    expect(page.get_by_role("link", name="Book the series")).to_be_visible()
    page.context.clear_cookies()

    # The front desk books the whole series from the patient's appointments page.
    login(page, "desk@plan.test")
    page.goto(server + reverse("scheduling:patient", kwargs={"patient_id": patient.pk}))
    with page.expect_navigation():
        page.get_by_role("link", name="Book the plan's series").click()
    page.get_by_label("Date of the first appointment").fill(today.isoformat())
    page.get_by_label("Start time").fill("10:00")
    page.get_by_label("Clinician for preparation, integration and assessment").select_option(
        label="Theo Therapist"
    )
    page.get_by_label("Clinician for the dosing sessions").select_option(label="Nadia Nurse")
    page.locator("#id_room").select_option(label="Integration room")
    page.get_by_label("Dosing chair").select_option(label="Chair 1")
    with page.expect_navigation():
        page.get_by_role("button", name="Suggest dates and check them").click()
    n = plan.proposals.count()
    expect(page.locator(".series-table .badge", has_text=re.compile("^Free$"))).to_have_count(n - 1)
    expect(page.get_by_text("Integration room is already booked from")).to_be_visible()
    axe_check(page, "plan-series-preview")
    shot(page, "plan-series-1-preview")
    with page.expect_navigation():
        page.get_by_role("button", name="Book all that are free").click()
    expect(page.get_by_text(f"Booked {n - 1} of {n}")).to_be_visible()
    expect(page.locator(".series-table .badge", has_text=re.compile("^Booked$"))).to_have_count(n - 1)
    axe_check(page, "plan-series-booked")
    shot(page, "plan-series-2-booked")
    assert Appointment.objects.filter(patient=patient, proposal__plan=plan).count() == n - 1

    # The day view: the preparation session at 10:00; the front desk checks Robin in.
    page.goto(f"{server}/schedule/?date={today.isoformat()}")
    expect(page.get_by_role("region", name="Theo Therapist")).to_be_visible()
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile("^Check in Robin")).click()
    expect(page.get_by_text("Robin Synthetic checked in.")).to_be_visible()
    expect(page.get_by_role("cell", name="Arrived 09:00")).to_be_visible()
    axe_check(page, "plan-series-day-checked-in")
    shot(page, "plan-series-3-day-checked-in")

    # The plan now links each booked line to its appointment.
    page.context.clear_cookies()
    login(page, "pp@plan.test")
    page.goto(plan_url)
    expect(page.locator("td .badge", has_text="Booked")).to_have_count(n - 1)
    shot(page, "plan-series-4-plan-booked")
