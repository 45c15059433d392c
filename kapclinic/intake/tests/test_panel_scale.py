"""Issue #7: the chart's pathway panel computes eligibility and consent state once, same output."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from kapclinic.intake.apps import _pathway_context
from kapclinic.intake.testing import complete_assessment
from kapclinic.treatment.selectors import dosing_readiness

pytestmark = pytest.mark.django_db


def _request(world: Any) -> Any:
    request: Any = RequestFactory().get("/")
    request.user = world.prescriber
    request.clinic = world.clinic
    request.role = "prescriber"
    request.request_id = "t"
    return request


@pytest.mark.parametrize("ready", [False, True])
def test_pathway_panel_runs_no_query_twice(world: Any, ready: bool) -> None:
    if ready:
        from kapclinic.treatment.testing import make_dosing_ready

        make_dosing_ready(world.patient, world.prescriber)
    else:
        complete_assessment(world.patient)
    with CaptureQueriesContext(connection) as ctx:
        data = _pathway_context(_request(world), world.patient)
        list(data["plans"])
    repeats = [sql for sql, n in Counter(q["sql"] for q in ctx.captured_queries).items() if n > 1]
    assert repeats == []
    assert (data["ready"], data["reasons"]) == dosing_readiness(world.patient)
    assert data["ready"] is ready
