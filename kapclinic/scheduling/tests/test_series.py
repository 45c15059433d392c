"""Issue 18: a signed plan's proposed appointments are booked in one step, each line checked for conflicts
and linked back to its plan line."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from kapclinic.audit.models import AuditEvent
from kapclinic.scheduling import rules, series, services
from kapclinic.scheduling.models import Appointment
from kapclinic.testing.factories import actor_for
from kapclinic.treatment.models import ProposedAppointment, TreatmentPlan

pytestmark = pytest.mark.django_db

TZ = timezone.get_current_timezone()
FIRST = dt.date(2026, 3, 9)


def local(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=TZ)


def plan_of(world: Any) -> TreatmentPlan:
    return TreatmentPlan.objects.get(patient=world.patient, status="signed")


def setup_query(world: Any, chair: Any, room: Any) -> dict[str, Any]:
    return {
        "first": FIRST.isoformat(),
        "time": "09:00",
        "staff": world.therapist.pk,
        "dosing_staff": world.nurse.pk,
        "room": room.pk,
        "chair": chair.pk,
    }


def test_suggested_dates_follow_the_plans_spacing() -> None:
    lines = [
        (1, "preparation", 0),
        (2, "dosing", 1),
        (3, "integration", 1),
        (4, "dosing", 1),
        (5, "integration", 1),
        (6, "dosing", 2),
        (7, "integration", 2),
        (8, "reassessment", 3),
    ]
    got = rules.suggest_series_dates(lines, FIRST, float(Decimal(2)))
    assert got[1] == FIRST
    assert got[2] == FIRST + dt.timedelta(days=7)  # week 1 starts a week after preparation
    assert got[3] == got[2] + dt.timedelta(days=1)  # integration the day after its dosing session
    assert got[4] == got[2] + dt.timedelta(days=3)  # two a week: 3 days apart
    assert got[5] == got[4] + dt.timedelta(days=1)
    assert got[6] == FIRST + dt.timedelta(days=14)
    assert got[8] == FIRST + dt.timedelta(days=21)


def test_preview_shows_each_lines_conflict_and_books_nothing(
    world: Any, client: Any, ready: Any, chair: Any, room: Any
) -> None:
    plan = plan_of(world)
    dates = series.suggestions(plan, FIRST)
    integration = plan.proposals.filter(kind="integration").order_by("sequence").first()
    assert integration is not None
    # The therapist is already busy when the first integration session would be.
    other = services.appointment_book(
        actor_for(world.front_desk, world.clinic),
        world.other_patient,
        kind="follow_up",
        starts_at=local(dates[integration.pk], 9),
        minutes=30,
        staff=world.therapist_other,
    )
    services.appointment_book(
        actor_for(world.front_desk, world.clinic),
        world.patient,
        kind="follow_up",
        starts_at=local(dates[integration.pk], 9) - dt.timedelta(minutes=15),
        minutes=30,
        staff=world.nurse,
    )
    before = Appointment.objects.count()
    client.force_login(world.front_desk)
    events = AuditEvent.objects.count()
    url = reverse("scheduling:plan_series", kwargs={"patient_id": world.patient.pk, "plan_id": plan.pk})
    body = client.get(url, setup_query(world, chair, room)).content.decode()
    assert Appointment.objects.count() == before  # the preview booked nothing
    assert AuditEvent.objects.count() == events + 1  # only the page view
    assert "The patient already has an appointment from" in body
    assert body.count("Not free") == 1
    assert body.count(">Free<") == plan.proposals.count() - 1
    assert other.pk  # unrelated booking of another patient does not clash


def _post_data(world: Any, plan: TreatmentPlan, chair: Any, room: Any) -> dict[str, Any]:
    dates = series.suggestions(plan, FIRST)
    data: dict[str, Any] = {"action": "book"}
    for p in plan.proposals.all():
        dosing = p.kind == "dosing"
        data.update(
            {
                f"l{p.pk}-book": "on",
                f"l{p.pk}-date": dates[p.pk].isoformat(),
                f"l{p.pk}-time": "09:00",
                f"l{p.pk}-staff": (world.nurse if dosing else world.therapist).pk,
                f"l{p.pk}-resource": (chair if dosing else room).pk,
            }
        )
    return data


def test_book_all_that_are_free_links_each_line_and_reports_the_others(
    world: Any, client: Any, ready: Any, chair: Any, room: Any
) -> None:
    plan = plan_of(world)
    data = _post_data(world, plan, chair, room)
    prep = plan.proposals.get(kind="preparation")
    # The room is taken at the preparation session's time.
    services.appointment_book(
        actor_for(world.front_desk, world.clinic),
        world.other_patient,
        kind="follow_up",
        starts_at=local(FIRST, 9),
        minutes=30,
        staff=world.therapist_other,
        resource=room,
    )
    client.force_login(world.front_desk)
    url = reverse("scheduling:plan_series", kwargs={"patient_id": world.patient.pk, "plan_id": plan.pk})
    response = client.post(url, data)
    assert response.status_code == 200
    body = response.content.decode()
    n = plan.proposals.count()
    booked = Appointment.objects.filter(patient=world.patient)
    assert booked.count() == n - 1
    assert "Room A is already booked from" in body
    assert f"Booked {n - 1} of {n}" in body
    # Booked lines show their booking, no longer their inputs; the line that was not free keeps its own.
    assert body.count('type="date" name="l') == 1
    assert f'name="l{prep.pk}-date"' in body
    for p in plan.proposals.exclude(pk=prep.pk):
        appt = Appointment.objects.get(proposal=p)
        assert appt.kind == rules.KIND_FOR_PROPOSAL[p.kind]
        assert ProposedAppointment.objects.get(pk=p.pk).booked_ref == str(appt.pk)
    assert not Appointment.objects.filter(proposal=prep).exists()
    # One create event per booking, audited.
    assert AuditEvent.objects.filter(action="create", object_type="scheduling.appointment").count() >= n - 1

    # Sending the same form again books nothing twice: the booked lines are no longer open.
    client.post(url, data)
    assert Appointment.objects.filter(patient=world.patient).count() == n - 1

    # The plan page shows each line's booking with a link.
    client.force_login(world.prescriber)
    page = client.get(reverse("treatment:plan", kwargs={"patient_id": world.patient.pk, "plan_id": plan.pk}))
    html = page.content.decode()
    first_booked = Appointment.objects.filter(patient=world.patient).order_by("starts_at").first()
    assert first_booked is not None
    assert reverse("scheduling:detail", kwargs={"appointment_id": first_booked.pk}) in html
    assert html.count('badge ok">Booked<') == n - 1
    assert "Book the series" in html and "1 not booked yet" in html


def test_a_line_booked_meanwhile_is_not_booked_twice(world: Any, ready: Any, chair: Any, room: Any) -> None:
    plan = plan_of(world)
    prep = plan.proposals.get(kind="preparation")
    actor = actor_for(world.front_desk, world.clinic)
    line = series.LineRequest(prep, local(FIRST, 9), world.therapist, room)
    first = series.book_series(actor, world.patient, plan, [line])
    assert first[0].booked
    again = series.book_series(
        actor, world.patient, plan, [series.LineRequest(prep, local(FIRST, 13), world.therapist, room)]
    )
    assert not again[0].booked
    assert again[0].problems[0].startswith("Already booked for")
    assert Appointment.objects.filter(proposal=prep).count() == 1


def test_a_draft_plan_cannot_be_booked(world: Any, client: Any, clock_frozen: Any, room: Any) -> None:
    from kapclinic.treatment.access_matrix import _plan

    kwargs = _plan(world)
    client.force_login(world.front_desk)
    url = reverse("scheduling:plan_series", kwargs=kwargs)
    response = client.post(url, {"action": "book"})
    assert response.status_code == 400
    assert "Only a signed plan" in response.content.decode()
