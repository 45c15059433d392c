from __future__ import annotations

import datetime as dt
from typing import Any

import pytest


@pytest.fixture
def dosing_appt(world: Any) -> Any:
    from kapclinic.scheduling.models import Appointment

    start = dt.datetime(2026, 3, 1, 14, 0, tzinfo=dt.UTC)
    return Appointment.objects.create(
        clinic=world.clinic,
        patient=world.patient,
        kind="dosing",
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=180),
        staff=world.therapist,
        created_by=world.front_desk,
        status="completed",
    )
