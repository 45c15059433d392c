from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from kapclinic.scheduling import services


@pytest.fixture
def ready(monkeypatch: Any) -> None:
    """Treat every patient as ready for dosing (signed plan, consent, eligibility)."""
    monkeypatch.setattr(services, "readiness_provider", lambda patient: (True, []))


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
