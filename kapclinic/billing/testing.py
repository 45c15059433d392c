"""Test and demo helpers for billing (synthetic data only)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.utils import timezone

from kapclinic.billing import services
from kapclinic.billing.models import FeeItem
from kapclinic.core.actor import Actor

# A clinic's starting fee schedule (prices are synthetic examples, not published rates).
STARTER: tuple[tuple[str, str, list[str], list[str]], ...] = (
    ("99204", "250.00", ["consultation"], []),
    ("99214", "180.00", ["follow_up"], []),
    ("90837", "200.00", ["integration", "preparation"], []),
    ("90834", "160.00", ["integration", "preparation"], []),
    ("G2082", "400.00", ["dosing"], ["esketamine-in-trd", "esketamine-in-mdsi"]),
    ("G2083", "450.00", ["dosing"], ["esketamine-in-trd", "esketamine-in-mdsi"]),
    ("96365", "300.00", ["dosing"], ["ketamine-iv-racemic"]),
    ("96366", "120.00", ["dosing"], ["ketamine-iv-racemic"]),
    ("0820T", "150.00", ["dosing"], ["ketamine-im-racemic", "ketamine-sl-lozenge"]),
)


def starter_fee_schedule(actor: Actor) -> list[FeeItem]:
    return [
        services.add_fee_item(actor, code=code, price=price, appointment_kinds=kinds, protocols=protocols)
        for code, price, kinds, protocols in STARTER
        if not FeeItem.objects.filter(clinic=actor.clinic, code=code).exists()
    ]


def add_diagnosis(
    patient: Any, by: Any, icd10: str = "F33.2", description: str = "Synthetic: MDD, recurrent"
) -> Any:
    from kapclinic.patients.models import Diagnosis

    return Diagnosis.objects.create(patient=patient, icd10=icd10, description=description, recorded_by=by)


def discharged_session(
    patient: Any,
    prescriber: Any,
    *,
    protocol_id: str = "esketamine-in-trd",
    dose_mg: str = "84",
    at: dt.datetime | None = None,
    infusion_minutes: int | None = None,
) -> Any:
    """A discharged dosing session written straight to the database (unit tests and the speed check;
    the real path is the sessions app's state machine, used by the browser journey)."""
    from kapclinic.sessions.models import Administration, DosingSession, SessionState

    at = at or timezone.now() - dt.timedelta(days=1)
    s = DosingSession.objects.create(
        clinic=patient.clinic,
        patient=patient,
        protocol_id=protocol_id,
        protocol_version="1.1.0",
        scheduled_for=at,
        state=SessionState.DISCHARGED,
        created_by=prescriber,
        first_dose_at=at,
        discharged_at=at + dt.timedelta(hours=2, minutes=10),
        discharged_by=prescriber,
    )
    Administration.objects.create(
        session=s,
        product="Synthetic product",
        route="IN" if protocol_id.startswith("esk") else "IV",
        dose_mg=Decimal(dose_mg),
        ordered_by=prescriber,
        ordered_at=at,
        administered_at=at,
        infusion_stopped_at=at + dt.timedelta(minutes=infusion_minutes) if infusion_minutes else None,
    )
    return s


def completed_visit(
    patient: Any,
    staff: Any,
    *,
    kind: str = "integration",
    minutes: int = 55,
    video: bool = False,
    at: dt.datetime | None = None,
) -> Any:
    from kapclinic.scheduling.models import Appointment, Modality, Status

    at = at or timezone.now() - dt.timedelta(days=2)
    return Appointment.objects.create(
        clinic=patient.clinic,
        patient=patient,
        kind=kind,
        starts_at=at,
        ends_at=at + dt.timedelta(minutes=minutes),
        staff=staff,
        status=Status.COMPLETED,
        created_by=staff,
        modality=Modality.VIDEO if video else Modality.IN_PERSON,
    )


def npi(first_nine: str) -> str:
    """A synthetic NPI: nine digits plus the check digit (services._npi_problem accepts it)."""
    for d in "0123456789":
        if services._npi_problem(first_nine + d) is None:
            return first_nine + d
    raise AssertionError("unreachable")  # pragma: no cover
