"""SQL queries per request stay constant in data size and list length (issue #7).

Each foundation list or dashboard page is requested twice, once with 1 row of the thing it lists and
once with 50, and must run exactly the same number of queries (plus a generous absolute cap so a
constant-but-wasteful page is noticed too). The first request of each pair warms per-process caches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from kapclinic.audit.services import record_event
from kapclinic.patients.models import CareTeamMember, Diagnosis, Medication, Patient, TimelineEvent
from kapclinic.testing.factories import actor_for, make_patient

pytestmark = pytest.mark.django_db


def _count(client: Any, url: str) -> int:
    client.get(url)  # warm-up: template loading, content types, ...
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(ctx.captured_queries)


def _constant(
    client: Any, url: Callable[[], str], grow: Callable[[int], object], cap: int
) -> tuple[int, int]:
    grow(1)
    one = _count(client, url())
    grow(49)
    many = _count(client, url())
    assert one == many, f"{url()}: {one} queries with 1 row, {many} with 50 (N+1)"
    assert many <= cap, f"{url()}: {many} queries (cap {cap})"
    return one, many


def _patients(world: Any, n: int, *, team: list[Any] | None = None) -> list[Patient]:
    return [
        make_patient(
            world.clinic, care_team=team or [world.prescriber, world.therapist], pathway_status="active"
        )
        for _ in range(n)
    ]


def test_patient_list(world: Any, client: Any) -> None:
    client.force_login(world.front_desk)
    _constant(client, lambda: "/patients/", lambda n: _patients(world, n), cap=12)


def test_patient_list_search(world: Any, client: Any) -> None:
    client.force_login(world.prescriber)
    _constant(client, lambda: "/patients/?q=Synthetic", lambda n: _patients(world, n), cap=12)


def test_therapist_patient_list_caseload_scope(world: Any, client: Any) -> None:
    client.force_login(world.therapist)
    _constant(client, lambda: "/patients/", lambda n: _patients(world, n), cap=12)


def _grow_chart(world: Any, n: int) -> None:
    patient = world.patient
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for i in range(n):
        TimelineEvent.objects.create(
            patient=patient,
            at=at + dt.timedelta(hours=i),
            kind="x.y",
            title=f"Event {i}",
            actor=world.nurse,
            url_name="measures:patient",  # links are built with reverse when shown: no query per row
            url_kwargs={"patient_id": patient.pk},
        )
        Diagnosis.objects.create(
            patient=patient,
            icd10="F33.1",
            description="Major depressive disorder",
            recorded_by=world.prescriber,
        )
        Medication.objects.create(patient=patient, name=f"Med {i}", recorded_by=world.prescriber)


@pytest.mark.parametrize("persona", ["prescriber", "therapist", "nurse", "front_desk", "admin"])
def test_chart(world: Any, client: Any, persona: str) -> None:
    client.force_login(getattr(world, persona))
    _constant(client, lambda: f"/patients/{world.patient.pk}/", lambda n: _grow_chart(world, n), cap=40)


def test_timeline_page(world: Any, client: Any) -> None:
    client.force_login(world.prescriber)
    _constant(
        client, lambda: f"/patients/{world.patient.pk}/timeline/", lambda n: _grow_chart(world, n), cap=15
    )


def test_audit_log(world: Any, client: Any) -> None:
    client.force_login(world.admin)
    actor = actor_for(world.prescriber, world.clinic)

    def grow(n: int) -> None:
        for _ in range(n):
            patient = make_patient(world.clinic)
            record_event(actor, "view", patient=patient, object_type="chart")

    _constant(client, lambda: "/audit/", grow, cap=12)


def test_audit_log_search_by_record_number(world: Any, client: Any) -> None:
    client.force_login(world.admin)
    actor = actor_for(world.prescriber, world.clinic)

    def grow(n: int) -> None:
        for _ in range(n):
            record_event(actor, "view", patient=world.patient, object_type="chart")

    _constant(client, lambda: f"/audit/?mrn={world.patient.mrn}&action=view", grow, cap=12)


@pytest.mark.parametrize("persona", ["therapist", "prescriber", "nurse"])
def test_home_dashboard_caseload(world: Any, client: Any, persona: str) -> None:
    """The staff home with its widgets: constant whatever the size of the caseload."""
    client.force_login(getattr(world, persona))

    def grow(n: int) -> None:
        for patient in _patients(world, n):
            if persona == "nurse":
                CareTeamMember.objects.create(patient=patient, user=world.nurse, role="nurse")

    _constant(client, lambda: "/home/", grow, cap=45)


@pytest.mark.parametrize("persona", ["front_desk", "admin"])
def test_home_dashboard_other_roles(world: Any, client: Any, persona: str) -> None:
    client.force_login(getattr(world, persona))
    _constant(client, lambda: "/home/", lambda n: _patients(world, n), cap=45)


@pytest.mark.parametrize("persona", ["therapist", "prescriber", "nurse", "front_desk"])
def test_home_dashboard_today(world: Any, client: Any, clock_frozen: Any, persona: str) -> None:
    """The staff home's "today" widgets (dosing sessions, appointments): constant whatever the number of
    the day's sessions and bookings, and no more than before issue #7 (the same cap)."""
    from kapclinic.core import clock
    from kapclinic.scheduling.models import Appointment
    from kapclinic.sessions.models import DosingSession

    user = getattr(world, persona)
    client.force_login(user)

    def grow(n: int) -> None:
        # One after the other: a clinician is never booked twice at once (PostgreSQL refuses it).
        taken = Appointment.objects.filter(staff=user).count()
        for i, patient in enumerate(_patients(world, n), taken):
            at = clock.now() + dt.timedelta(minutes=5 * i)
            DosingSession.objects.create(
                clinic=world.clinic,
                patient=patient,
                protocol_id="esketamine-in-trd",
                protocol_version="1.0.0",
                scheduled_for=at,
                created_by=world.prescriber,
            )
            Appointment.objects.create(
                clinic=world.clinic,
                patient=patient,
                kind="dosing",
                starts_at=at,
                ends_at=at + dt.timedelta(minutes=5),
                staff=user,
                created_by=world.front_desk,
            )

    _constant(client, lambda: "/home/", grow, cap=45)
    body = client.get("/home/").content.decode()
    assert body.count('href="/schedule/a/') == 20  # the widget's first 20 of the day's 50
    assert body.count('href="/sessions/patient/') == (0 if persona == "front_desk" else 20)
