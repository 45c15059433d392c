"""The authorization matrix: every URL x every persona -> expected HTTP status.

Each app declares `MATRIX: dict[str, Entry]` in `<app>/access_matrix.py`, keyed by URL name
("namespace:name"). kapclinic/core/tests/test_access_matrix.py enumerates every URL pattern of the
project and fails when one has no entry, or when an entry does not name every persona.

Personas (see conftest.World): anonymous, admin, prescriber, therapist (on the patient's care team),
therapist_other (same clinic, not on it), nurse, front_desk, patient_user (the patient), other_patient_user
(another patient of the same clinic), other_clinic_staff (a prescriber of another clinic).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PERSONAS = (
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
)
STAFF = ("admin", "prescriber", "therapist", "therapist_other", "nurse", "front_desk")
LOGIN = 302  # anonymous users are sent to the login page


@dataclass(frozen=True)
class Entry:
    expect: dict[str, int]
    kwargs: Callable[[Any], dict[str, Any]] | None = None
    method: str = "get"
    data: Callable[[Any], dict[str, Any]] | None = None
    query: str = ""
    # Some URLs need objects the World fixture does not have: build them here (returns kwargs).
    setup: Callable[[Any], dict[str, Any]] | None = None
    note: str = field(default="")


def expect(default: int, **overrides: int) -> dict[str, int]:
    """Every persona gets `default` unless overridden; anonymous defaults to the login redirect."""
    table = dict.fromkeys(PERSONAS, default)
    table["anonymous"] = LOGIN
    for key, value in overrides.items():
        if key not in PERSONAS:
            raise KeyError(f"unknown persona {key!r}")
        table[key] = value
    return table


def roles(
    allowed: tuple[str, ...] | list[str], ok: int = 200, denied: int = 403, **overrides: int
) -> dict[str, int]:
    """`allowed` personas get `ok`, every other signed-in persona gets `denied`.

    therapist_other is a therapist too; other_clinic_staff is a prescriber in their own clinic: on
    clinic-level pages they get what a prescriber gets (their own clinic's page); patient-scoped
    entries override it with 404.
    """
    table = expect(denied, **dict.fromkeys(allowed, ok))
    if "prescriber" in allowed:
        table["other_clinic_staff"] = ok
    if "therapist" in allowed:
        table["therapist_other"] = ok  # on clinic-level pages the caseload does not matter
    table.update(overrides)
    return table


def public(ok: int = 200) -> dict[str, int]:
    return dict.fromkeys(PERSONAS, ok)


def patient_kwargs(world: Any) -> dict[str, Any]:
    return {"patient_id": world.patient.pk}


def patient_scoped(allowed: tuple[str, ...] | list[str], ok: int = 200, **overrides: int) -> dict[str, int]:
    """For pages about world.patient: the therapist not on the care team gets 403; another clinic's
    staff and another patient get 404 (the record does not exist for them)."""
    table = roles(allowed, ok)
    table["therapist_other"] = 403
    table["other_patient_user"] = 404
    table["other_clinic_staff"] = 404
    table.update(overrides)
    return table


def free_start(world: Any, start: Any, minutes: int, staff: Any) -> Any:
    """The first start at or after ``start`` where an appointment of ``minutes`` overlaps no active
    appointment of the world's patient or of ``staff``. Setups run again and again on the same world
    (the fuzz test draws URLs for one world), and PostgreSQL refuses overlapping appointments."""
    import datetime as dt

    from django.db.models import Q

    from kapclinic.scheduling.models import ACTIVE_STATUSES, Appointment

    length = dt.timedelta(minutes=minutes)
    while True:
        clash = (
            Appointment.objects.filter(
                Q(patient=world.patient) | Q(staff=staff),
                status__in=ACTIVE_STATUSES,
                starts_at__lt=start + length,
                ends_at__gt=start,
            )
            .order_by("-ends_at")
            .first()
        )
        if clash is None:
            return start
        start = clash.ends_at
