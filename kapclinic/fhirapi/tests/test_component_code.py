"""`component-code` on Observations (US Core, token; docs/fhir-api.md#observation): the blood-pressure
panels (85354-9) by their systolic (8480-6) or diastolic (8462-4) component; nothing on Observations
without components (scores, weight, height); 400 for a malformed value. Codes: docs/clinical-reference.md
§5.1."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from kapclinic.audit.models import AuditEvent
from kapclinic.documents.testing import session_with_monitoring
from kapclinic.fhirapi.tests.helpers import body, phq9
from kapclinic.sessions.models import Observation

LOINC = "http://loinc.org"


def _bp_rows(world: Any) -> dict[str, Any]:
    """A paired reading (systolic + diastolic), a systolic alone and a diastolic alone."""
    session = session_with_monitoring(world.patient, world.prescriber, world.nurse, world.clinic)
    paired = Observation.objects.get(session=session, code="8480-6")
    common = {
        "session": session,
        "kind": "vital",
        "unit": "mm[Hg]",
        "phase": "recovery",
        "recorded_by": world.nurse,
    }
    lone_sbp = Observation.objects.create(
        code="8480-6", display="Systolic blood pressure", value=140, at=paired.at + dt.timedelta(minutes=20),
        reading=paired.reading + 1, **common,
    )  # fmt: skip
    lone_dbp = Observation.objects.create(
        code="8462-4", display="Diastolic blood pressure", value=70, at=paired.at + dt.timedelta(minutes=40),
        reading=paired.reading + 2, **common,
    )  # fmt: skip
    return {"paired": f"vs{paired.pk}", "lone_sbp": f"vs{lone_sbp.pk}", "lone_dbp": f"vs{lone_dbp.pk}"}


def test_component_code_finds_the_panels_with_that_component(world: Any, client: Any) -> None:
    rows = _bp_rows(world)
    phq9(world)  # a score Observation: no components
    client.force_login(world.prescriber)

    def ids(query: str) -> set[str]:
        found = body(client.get(f"/fhir/Observation?{query}"))
        return {e["resource"]["id"] for e in found.get("entry", [])}

    assert ids(f"component-code={LOINC}|8480-6") == {rows["paired"], rows["lone_sbp"]}
    assert ids("component-code=8480-6") == {rows["paired"], rows["lone_sbp"]}
    assert ids(f"component-code={LOINC}|8462-4") == {rows["paired"], rows["lone_dbp"]}
    assert ids("component-code=8480-6,8462-4") == set(rows.values())
    # every panel found really has the component asked for
    for resource_id in ids("component-code=8462-4"):
        panel = body(client.get(f"/fhir/Observation/{resource_id}"))
        assert "8462-4" in [c["code"]["coding"][0]["code"] for c in panel["component"]]
    # combined with the other parameters (AND)
    assert ids(f"component-code=8480-6&code={LOINC}|85354-9&patient=p{world.patient.pk}") == {
        rows["paired"],
        rows["lone_sbp"],
    }
    assert ids(f"component-code=8480-6&patient=p{world.other_patient.pk}") == set()
    # not a blood-pressure component, or another system: nothing (the panel itself, heart rate, weight,
    # height, a score's code)
    for code in (
        "85354-9",
        "8867-4",
        "29463-7",
        "8302-2",
        "44261-6",
        "http://snomed.info/sct|8480-6",
        "|8480-6",
    ):
        assert ids(f"component-code={code}") == set(), code
    total = body(client.get("/fhir/Observation?component-code=8480-6"))["total"]
    assert total == 2  # scores, weight and height rows contribute nothing


@pytest.mark.parametrize(
    "query",
    ["component-code=", "component-code=http://loinc.org|", "component-code=8480-6,", "component-code=a|b|c",
     "component-code=8480 6", "component-code:text=systolic", "component-code:not=8480-6"],
)  # fmt: skip
def test_malformed_component_code_is_400(world: Any, client: Any, query: str) -> None:
    client.force_login(world.prescriber)
    response = client.get(f"/fhir/Observation?{query}")
    assert response.status_code == 400, query
    assert body(response)["resourceType"] == "OperationOutcome"
    assert AuditEvent.objects.filter(action="denied", detail__contains="invalid-search").count() == 1


def test_component_code_is_only_an_observation_parameter(world: Any, client: Any) -> None:
    client.force_login(world.prescriber)
    assert client.get("/fhir/Condition?component-code=8480-6").status_code == 400
    statement = body(client.get("/fhir/metadata"))
    observation = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Observation")
    param = next(p for p in observation["searchParam"] if p["name"] == "component-code")
    assert param["type"] == "token" and "8480-6" in param["documentation"]
