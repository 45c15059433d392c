"""Demo dosing sessions (synthetic): a completed esketamine session whose REMS form is overdue, a completed
IV session, and sessions scheduled for today.  Idempotent.

Completed sessions are written directly (not through the gate services) because the demo must not depend
on the treatment module's readiness answer; their values follow the protocol library.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import transaction

from kapclinic.clinical.vitals import LOINC, Vital
from kapclinic.core import clock
from kapclinic.patients.models import PathwayStatus
from kapclinic.sessions.models import (
    Administration,
    ClinicProtocolSetting,
    DosingSession,
    Observation,
    SessionEvent,
    SessionTransition,
)


def _vitals(s: DosingSession, at: dt.datetime, reading: int, phase: str, by: Any, **values: int) -> None:
    for vital in Vital:
        if vital.value in values:
            code = LOINC[vital]
            Observation.objects.create(
                session=s,
                kind="vital",
                code=code.loinc,
                display=code.display,
                value=values[vital.value],
                unit=code.ucum,
                at=at,
                reading=reading,
                phase=phase,
                recorded_by=by,
            )


def _rating(s: DosingSession, at: dt.datetime, kind: str, value: int, by: Any) -> None:
    code, display = (
        ("moaas", "MOAA/S") if kind == "sedation" else ("dissociation-0-4", "Dissociation (clinician 0-4)")
    )
    Observation.objects.create(
        session=s,
        kind=kind,
        code_system="https://kapclinic.example/codes",
        code=code,
        display=display,
        value=value,
        unit="{score}",
        at=at,
        phase="intra",
        recorded_by=by,
    )


def _completed(ctx: Any, patient: Any, protocol: str, start: dt.datetime, dose: dict[str, Any]) -> None:
    nurse, prescriber = ctx.staff["nurse"], ctx.staff["prescriber"]
    s = DosingSession.objects.create(
        clinic=ctx.clinic,
        patient=patient,
        protocol_id=protocol,
        protocol_version="1.0.0",
        scheduled_for=start - dt.timedelta(minutes=30),
        created_by=prescriber,
        state="discharged",
        weight_kg=Decimal("72.0"),
        escort_name=ctx.faker.name(),
        medication_changes_reviewed=True,
        pregnancy_status="not_applicable",
        intention="Notice what comes up, with kindness",
        phq9_done=True,
        rems_enrolled=protocol.startswith("esk"),
        nasal_steroid="none",
        checked_in_at=start - dt.timedelta(minutes=30),
        predose_passed_at=start - dt.timedelta(minutes=10),
        first_dose_at=start,
        monitoring_started_at=start + dt.timedelta(minutes=10),
        recovery_started_at=start + dt.timedelta(minutes=95),
        discharged_at=start + dt.timedelta(minutes=125),
        escort_present=True,
        no_driving_advice_given=True,
        ready_to_leave_minutes=90,
        discharged_by=nurse,
    )
    steps = [
        ("check_in", "scheduled", "checked_in", s.checked_in_at),
        ("pass_predose", "checked_in", "predose_passed", s.predose_passed_at),
        ("start_dosing", "predose_passed", "dosing", s.first_dose_at),
        ("start_monitoring", "dosing", "monitoring", s.monitoring_started_at),
        ("start_recovery", "monitoring", "recovery", s.recovery_started_at),
        ("discharge", "recovery", "discharged", s.discharged_at),
    ]
    for event, a, b, at in steps:
        SessionTransition.objects.create(session=s, event=event, from_state=a, to_state=b, at=at, by=nurse)
    values = {"administered_by": nurse, **dose}
    Administration.objects.create(
        session=s,
        ordered_by=prescriber,
        ordered_at=start - dt.timedelta(minutes=8),
        administered_at=start,
        lot_number=f"LOT{ctx.rng.randint(10000, 99999)}",
        expiry_date=clock.today() + dt.timedelta(days=300),
        **values,
    )
    _vitals(s, start - dt.timedelta(minutes=20), 1, "pre_dose", nurse, sbp=128, dbp=82, hr=74, rr=14, spo2=98)
    _vitals(s, start + dt.timedelta(minutes=40), 2, "intra", nurse, sbp=146, dbp=90, hr=82, rr=15, spo2=97)
    _vitals(
        s, start + dt.timedelta(minutes=110), 3, "recovery", nurse, sbp=130, dbp=84, hr=72, rr=14, spo2=98
    )
    _rating(s, start + dt.timedelta(minutes=30), "sedation", 4, nurse)
    _rating(s, start + dt.timedelta(minutes=30), "dissociation", 2, nurse)
    _rating(s, start + dt.timedelta(minutes=105), "sedation", 5, nurse)
    _rating(s, start + dt.timedelta(minutes=105), "dissociation", 0, nurse)
    SessionEvent.objects.create(
        session=s,
        kind="side_effect",
        code="nausea",
        text="mild",
        at=start + dt.timedelta(minutes=25),
        recorded_by=nurse,
    )


@transaction.atomic
def seed(ctx: Any) -> None:
    if DosingSession.objects.filter(clinic=ctx.clinic).exists():
        return
    ClinicProtocolSetting.objects.get_or_create(
        clinic=ctx.clinic,
        protocol_id="ketamine-iv-racemic",
        key="observation.minimum_minutes",
        defaults={"value": "120"},
    )
    active = [
        p for p in ctx.patients if p.pathway_status in (PathwayStatus.ACTIVE, PathwayStatus.MAINTENANCE)
    ]
    now = clock.now()
    for i, patient in enumerate(active[:4]):
        if i % 2 == 0:
            _completed(
                ctx,
                patient,
                "esketamine-in-trd",
                now - dt.timedelta(days=10 + i),
                {
                    "product": "Esketamine nasal spray (Spravato), 28 mg per device",
                    "route": "IN",
                    "dose_mg": Decimal(56),
                    "devices": 2,
                    "units_description": "2 × 28 mg device",
                    "maximum_mg": Decimal(84),
                    "calculation": [
                        {"label": "Dose", "working": "fixed 56 mg"},
                        {"label": "Devices", "working": "56 mg ÷ 28 mg = 2 devices, 5 min apart"},
                    ],
                },
            )
        else:
            _completed(
                ctx,
                patient,
                "ketamine-iv-racemic",
                now - dt.timedelta(days=3 + i),
                {
                    "product": "Racemic ketamine HCl injection",
                    "route": "IV",
                    "dose_mg": Decimal(36),
                    "mg_per_kg": Decimal("0.5"),
                    "weight_basis": "actual",
                    "weight_used_kg": Decimal("72.0"),
                    "maximum_mg": Decimal(54),
                    "concentration_mg_per_ml": Decimal(10),
                    "volume_ml": Decimal("3.6"),
                    "diluent_ml": Decimal(100),
                    "infusion_minutes": 40,
                    "rate_ml_per_h": Decimal("155.4"),
                    "double_checked_by": ctx.staff["nurse"],
                    "administered_by": ctx.staff["prescriber"],
                    "double_checked_at": now - dt.timedelta(days=3 + i, minutes=9),
                    "calculation": [
                        {"label": "Dose", "working": "0.5 mg/kg × 72 kg (actual weight) = 36 mg"}
                    ],
                },
            )
    today = [ctx.demo_patient, *active[4:6]]
    for i, patient in enumerate(today):
        DosingSession.objects.create(
            clinic=ctx.clinic,
            patient=patient,
            protocol_id="esketamine-in-trd" if i != 1 else "ketamine-iv-racemic",
            protocol_version="1.0.0",
            scheduled_for=now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=i + 1),
            created_by=ctx.staff["prescriber"],
        )
