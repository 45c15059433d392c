"""Issue 12: a patient, a clinician or a chair is never double-booked, even by bookings made at the same
moment. The service locks the patient, staff and resource rows before its overlap check; on PostgreSQL
exclusion constraints (migration 0002) refuse any overlap that still reaches the database, and the
service answers their refusal with the check's own sentence (never a 500)."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse

from kapclinic.core import clock
from kapclinic.core.errors import DomainError
from kapclinic.scheduling import services
from kapclinic.scheduling.models import Appointment, Resource, Status
from kapclinic.scheduling.tests.conftest import at
from kapclinic.testing.factories import actor_for, make_clinic, make_patient, make_staff

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="exclusion constraints and row locks: PostgreSQL only"
)
PATIENT_CLASH = "The patient already has an appointment from"
THREADS = 16


def _race(clinic: Any, patient: Any, staff: list[Any], starts_at: dt.datetime) -> list[Any]:
    """THREADS bookings of `patient` at `starts_at`, each with another clinician, each on its own database
    connection, released together. Returns each thread's outcome (an Appointment or the exception)."""
    actor = actor_for(make_staff(clinic, "front_desk"), clinic)
    barrier = threading.Barrier(len(staff))
    outcomes: list[Any] = [None] * len(staff)

    def book(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[i] = services.appointment_book(
                actor, patient, kind="integration", starts_at=starts_at, minutes=60, staff=staff[i]
            )
        except Exception as exc:  # recorded and asserted on below
            outcomes[i] = exc
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=book, args=(i,)) for i in range(len(staff))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return outcomes


def _assert_exactly_one(patient: Any, starts_at: dt.datetime, outcomes: list[Any]) -> None:
    made = [o for o in outcomes if isinstance(o, Appointment)]
    refused = [o for o in outcomes if isinstance(o, DomainError)]
    others = [o for o in outcomes if not isinstance(o, Appointment | DomainError)]
    assert not others, f"unexpected outcomes (a 500 in the view): {others!r}"
    assert len(made) == 1 and len(refused) == THREADS - 1
    for err in refused:
        assert err.field_errors["starts_at"][0].startswith(PATIENT_CLASH), err.field_errors
    assert Appointment.objects.filter(patient=patient, starts_at=starts_at).count() == 1


def _setup() -> tuple[Any, Any, list[Any]]:
    clinic = make_clinic()
    # Prescribers cover the whole clinic, so none needs to be on the care team.
    staff = [make_staff(clinic, "prescriber") for _ in range(THREADS)]
    return clinic, make_patient(clinic), staff


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_sixteen_concurrent_bookings_of_one_patient_make_one_appointment() -> None:
    clinic, patient, staff = _setup()
    first = (clock.now() + dt.timedelta(days=10)).replace(hour=15, minute=0, second=0, microsecond=0)
    for round_ in range(6):
        starts_at = first + dt.timedelta(days=round_)
        _assert_exactly_one(patient, starts_at, _race(clinic, patient, staff, starts_at))


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_without_the_row_lock_the_database_still_refuses_with_the_same_sentence(monkeypatch: Any) -> None:
    """The exclusion constraint alone (row locks switched off) keeps one appointment per slot, and every
    booking it refuses gets the check's sentence."""
    monkeypatch.setattr(services, "_lock_rows", lambda *args: None)
    seen: list[str] = []
    real = services._overlap_constraint

    def spy(exc: IntegrityError) -> str | None:
        name = real(exc)
        seen.append(str(name))
        return name

    monkeypatch.setattr(services, "_overlap_constraint", spy)
    clinic, patient, staff = _setup()
    first = (clock.now() + dt.timedelta(days=10)).replace(hour=9, minute=0, second=0, microsecond=0)
    for round_ in range(3):
        starts_at = first + dt.timedelta(days=round_)
        _assert_exactly_one(patient, starts_at, _race(clinic, patient, staff, starts_at))
    # Without the lock the bookings passed the check together: the database refused the others.
    assert seen and set(seen) == {"appt_no_patient_overlap"}


# ------------------------------------------------------------------ the constraints themselves


def _appt(world: Any, start: dt.datetime, minutes: int = 60, **kw: Any) -> Appointment:
    values: dict[str, Any] = {
        "clinic": world.clinic, "patient": world.patient, "kind": "integration", "starts_at": start,
        "ends_at": start + dt.timedelta(minutes=minutes), "staff": world.therapist,
        "created_by": world.front_desk, **kw,
    }  # fmt: skip
    return Appointment.objects.create(**values)


def _refused(world: Any, start: dt.datetime, **kw: Any) -> str:
    with pytest.raises(IntegrityError) as err, transaction.atomic():
        _appt(world, start, **kw)
    return str(err.value)


@postgres_only
@pytest.mark.django_db
def test_the_database_refuses_overlaps_of_patient_staff_and_chair(world: Any) -> None:
    chair = Resource.objects.create(clinic=world.clinic, name="Chair 1", kind="chair")
    other = make_patient(world.clinic)
    _appt(world, at(10), resource=chair)
    assert "appt_no_patient_overlap" in _refused(world, at(10, 30), staff=world.nurse)
    assert "appt_no_staff_overlap" in _refused(world, at(10, 30), patient=other)
    refused = _refused(world, at(10, 59), patient=other, staff=world.nurse, resource=chair)
    assert "appt_no_resource_overlap" in refused
    # Back to back is fine ([start, end) ranges); so is a slot freed by cancelling or a missed visit.
    _appt(world, at(11), resource=chair)
    _appt(world, at(9), resource=chair)
    _appt(world, at(14), status=Status.CANCELLED)
    _appt(world, at(14), status=Status.NO_SHOW)
    _appt(world, at(14))
    with pytest.raises(IntegrityError), transaction.atomic():
        Appointment.objects.filter(patient=world.patient, status=Status.CANCELLED).update(
            status=Status.BOOKED
        )
    assert Appointment.objects.filter(patient=world.patient, status__in=["booked", "completed"]).count() == 4


@postgres_only
@pytest.mark.django_db
def test_a_refusal_by_the_database_is_the_checks_sentence_in_the_form(
    world: Any, client: Any, clock_frozen: Any, monkeypatch: Any
) -> None:
    """As if the other booking committed just after our check: the check saw nothing, the INSERT is
    refused by the constraint, the form shows the same sentence as the check (400, not 500)."""
    _appt(world, at(15), staff=world.nurse)  # 10:00 to 11:00 in the clinic's time zone
    real = services._overlap_errors
    calls: list[int] = []

    def blind_first_time(*args: Any) -> dict[str, list[str]]:
        calls.append(1)
        return {} if len(calls) == 1 else real(*args)

    monkeypatch.setattr(services, "_overlap_errors", blind_first_time)
    client.force_login(world.front_desk)
    data = {
        "patient": world.patient.pk, "kind": "integration", "date": "2026-03-03", "time": "10:30",
        "minutes": "60", "staff": world.therapist.pk, "modality": "in_person", "resource": "",
    }  # fmt: skip
    response = client.post(reverse("scheduling:new"), data)
    assert response.status_code == 400, response.status_code
    assert PATIENT_CLASH in response.content.decode()
    assert len(calls) == 2 and Appointment.objects.filter(patient=world.patient).count() == 1

    # Rescheduling onto the slot is refused the same way.
    monkeypatch.setattr(services, "_overlap_errors", real)
    moved = _appt(world, at(18))
    calls.clear()
    monkeypatch.setattr(services, "_overlap_errors", blind_first_time)
    with pytest.raises(DomainError) as err:
        services.appointment_reschedule(
            actor_for(world.front_desk, world.clinic),
            moved,
            expected_version=moved.version,
            starts_at=at(15, 15),
            minutes=60,
            staff=world.therapist,
            resource=None,
            modality="in_person",
        )
    assert err.value.field_errors["starts_at"][0].startswith(PATIENT_CLASH)
    moved.refresh_from_db()
    assert moved.starts_at == at(18)


@postgres_only
@pytest.mark.django_db
def test_the_migration_names_overlaps_already_in_the_data_instead_of_failing_obscurely(world: Any) -> None:
    import importlib

    migration = importlib.import_module("kapclinic.scheduling.migrations.0002_appointment_no_overlap")
    with connection.schema_editor() as editor:
        migration.backwards(None, editor)  # as before the migration (rolled back with the test)
    first = _appt(world, at(10))
    second = _appt(world, at(10, 30), staff=world.nurse)
    _appt(world, at(10, 30), status=Status.CANCELLED)  # not active: no clash
    with connection.cursor() as cur:  # fire the deferred foreign-key checks, so the table can be altered
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
    with pytest.raises(RuntimeError) as err, connection.schema_editor() as editor:
        migration.forwards(None, editor)
    assert str(err.value).startswith("Cannot add the no-double-booking constraints")
    assert f"same patient: {first.pk} and {second.pk}." in str(err.value)
    assert "clinician" not in str(err.value)
    Appointment.objects.filter(pk=second.pk).update(status=Status.NO_SHOW)
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
    with connection.schema_editor() as editor:
        migration.forwards(None, editor)
    assert "appt_no_patient_overlap" in _refused(world, at(10, 15), staff=world.prescriber)
