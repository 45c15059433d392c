"""Shared pytest fixtures: a clinic world with every persona the authorization tests need."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("KAP_ENV", "test")

# Property tests judge behaviour, not speed: on a busy CI machine a slow example is not a failure.
settings.register_profile(
    "kapclinic", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("kapclinic")


@dataclass
class World:
    clinic: Any
    other_clinic: Any
    admin: Any
    prescriber: Any
    therapist: Any  # on the patient's care team
    therapist_other: Any  # same clinic, not on the care team
    nurse: Any
    front_desk: Any
    patient_user: Any
    patient: Any
    other_patient_user: Any
    other_patient: Any
    other_clinic_staff: Any
    other_clinic_patient: Any

    def persona(self, name: str) -> Any:
        return None if name == "anonymous" else getattr(self, name)


PERSONAS = [
    "anonymous",
    "admin",
    "prescriber",
    "therapist",
    "therapist_other",
    "nurse",
    "front_desk",
    "patient_user",
    "other_patient_user",
    "other_clinic_staff",
]


@pytest.fixture
def world(db: Any) -> World:
    from kapclinic.testing.factories import make_clinic, make_patient, make_patient_user, make_staff

    clinic = make_clinic("Harbor")
    other = make_clinic("Summit")
    prescriber = make_staff(clinic, "prescriber")
    therapist = make_staff(clinic, "therapist")
    therapist_other = make_staff(clinic, "therapist")
    patient_user, patient = make_patient_user(clinic, care_team=[prescriber, therapist])
    other_patient_user, other_patient = make_patient_user(clinic, care_team=[prescriber, therapist_other])
    other_staff = make_staff(other, "prescriber")
    return World(
        clinic=clinic,
        other_clinic=other,
        admin=make_staff(clinic, "admin"),
        prescriber=prescriber,
        therapist=therapist,
        therapist_other=therapist_other,
        nurse=make_staff(clinic, "nurse"),
        front_desk=make_staff(clinic, "front_desk"),
        patient_user=patient_user,
        patient=patient,
        other_patient_user=other_patient_user,
        other_patient=other_patient,
        other_clinic_staff=other_staff,
        other_clinic_patient=make_patient(other, care_team=[other_staff]),
    )


@pytest.fixture
def clock_frozen() -> Any:
    """Freeze the application clock at a fixed instant; advance it with clock.advance()."""
    import datetime as dt

    from kapclinic.core import clock

    clock.freeze(dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC))
    yield clock
    clock.reset()


@pytest.fixture(autouse=True)
def _reset_clock() -> Any:
    from kapclinic.core import clock

    yield
    clock.reset()


@pytest.fixture(autouse=True)
def _idle_timeout_out_of_the_way(settings: Any) -> None:
    """Many tests move the application clock by hours or days between two requests of one signed-in
    client; the staff idle timeout reads that clock and would sign them out. The timeout has its own
    tests (accounts/tests/test_idle_timeout.py), which set STAFF_IDLE_TIMEOUT_MINUTES themselves."""
    settings.STAFF_IDLE_TIMEOUT_MINUTES = 10 * 366 * 24 * 60


@pytest.fixture(autouse=True)
def _empty_cache() -> Any:
    """Row ids repeat between tests (rolled-back transactions), so derived figures cached by one test
    must never be read by the next."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
