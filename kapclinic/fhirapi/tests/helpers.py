from __future__ import annotations

import datetime as dt
import json
from typing import Any

from kapclinic.measures import services as measures
from kapclinic.testing.factories import actor_for


def phq9(world: Any, total_items: list[int] | None = None, *, patient: Any = None, days_ago: int = 0) -> Any:
    return measures.response_submit(
        actor_for(world.prescriber, world.clinic),
        patient or world.patient,
        instrument="PHQ-9",
        version=None,
        answers=total_items or [1, 1, 1, 1, 1, 1, 1, 0, 0],
        source="paper",
        entered_by=world.prescriber,
        completed_at=dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC) + dt.timedelta(days=days_ago),
    )


def body(response: Any) -> Any:
    assert response["Content-Type"].startswith("application/fhir+json")
    return json.loads(response.content)
