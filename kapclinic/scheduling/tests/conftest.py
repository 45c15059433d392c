from __future__ import annotations

import datetime as dt
from typing import Any

import pytest


@pytest.fixture
def ready(world: Any, clock_frozen: Any) -> None:
    """world.patient ready for dosing through the real services: a signed 'eligible' decision, current
    consent and a signed plan (kapclinic.treatment.testing)."""
    from kapclinic.treatment.testing import make_dosing_ready

    make_dosing_ready(world.patient, world.prescriber)


@pytest.fixture
def chair(world: Any) -> Any:
    from kapclinic.scheduling.models import Resource

    return Resource.objects.create(clinic=world.clinic, name="Chair 1", kind="chair")


@pytest.fixture
def room(world: Any) -> Any:
    from kapclinic.scheduling.models import Resource

    return Resource.objects.create(clinic=world.clinic, name="Room A", kind="room")


def at(hour: int, minute: int = 0, day: int = 3) -> dt.datetime:
    """2026-03-<day> hh:mm UTC (the frozen clock is 2026-03-02 14:00 UTC)."""
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=dt.UTC)
