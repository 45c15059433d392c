"""Small factories for tests and benchmarks (synthetic data only)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from kapclinic.accounts.models import Clinic, Membership, Role, User
from kapclinic.core.actor import Actor
from kapclinic.patients.models import CareTeamMember, Patient

_seq = itertools.count(1)
PASSWORD = "test-password-123"


def make_clinic(name: str = "Test Clinic", *, configured: bool = True, **kwargs: Any) -> Clinic:
    """A clinic; ``configured`` (default) gives it the demo medical director's values for what the
    protocols leave to the clinic (kapclinic.sessions.medical_director), so every protocol is usable.
    ``configured=False``: a clinic whose medical director has set nothing yet."""
    from kapclinic.sessions.medical_director import configure_protocols

    n = next(_seq)
    clinic = Clinic.objects.create(name=f"{name} {n}", slug=f"clinic-{n}", **kwargs)
    if configured:
        configure_protocols(clinic)
    return clinic


def make_staff(clinic: Clinic, role: str, *, name: str | None = None, email: str | None = None) -> User:
    n = next(_seq)
    user = User.objects.create_user(
        email=email or f"{role}{n}@test.kapclinic.test",
        full_name=name or f"{role.title()} {n}",
        password=PASSWORD,
    )
    Membership.objects.create(user=user, clinic=clinic, role=role)
    return user


def make_patient(
    clinic: Clinic, *, user: User | None = None, care_team: list[User] | None = None, **kwargs: Any
) -> Patient:
    n = next(_seq)
    defaults: dict[str, Any] = {
        "legal_first_name": f"Pat{n}",
        "legal_last_name": "Synthetic",
        "date_of_birth": dt.date(1985, 4, 12),
        "mrn": f"T-{n:06d}",
        "email": f"pat{n}@example.test",
    }
    defaults.update(kwargs)
    patient = Patient.objects.create(clinic=clinic, user=user, **defaults)
    for member in care_team or []:
        role = Membership.objects.get(user=member, clinic=clinic).role
        CareTeamMember.objects.create(patient=patient, user=member, role=role)
    return patient


def make_patient_user(clinic: Clinic, **kwargs: Any) -> tuple[User, Patient]:
    n = next(_seq)
    user = User.objects.create_user(
        email=f"patient{n}@example.test", full_name=f"Patient {n}", password=PASSWORD
    )
    return user, make_patient(clinic, user=user, **kwargs)


def actor_for(user: User, clinic: Clinic) -> Actor:
    membership = Membership.objects.filter(user=user, clinic=clinic).first()
    role = membership.role if membership else Role.PATIENT
    return Actor(user=user, clinic=clinic, role=role, request_id="test")
