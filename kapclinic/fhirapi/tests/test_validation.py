"""Every resource is validated before it leaves, each distinct content once (fhirapi/validation.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pydantic import ValidationError

from kapclinic.fhirapi import validation
from kapclinic.fhirapi.tests.helpers import backend_token, body, phq9, register_backend


def _observation(value: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "score1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
        "subject": {"reference": "Patient/p1"},
        "valueInteger": value,
    }


@pytest.fixture
def counted(monkeypatch: Any) -> Iterator[list[str]]:
    """The resource types actually run through fhir.resources (not answered from memory)."""
    validation.forget()
    calls: list[str] = []
    real = validation.model_class

    def counting(resource_type: str) -> Any:
        calls.append(resource_type)
        return real(resource_type)

    monkeypatch.setattr(validation, "model_class", counting)
    yield calls
    validation.forget()


def test_same_content_is_validated_once_changed_content_again(counted: list[str]) -> None:
    validation.validate_resource(_observation(7))
    validation.validate_resource(_observation(7))
    assert counted == ["Observation"]
    validation.validate_resource(_observation(8))
    assert counted == ["Observation", "Observation"]


def test_malformed_resource_is_refused_every_time(counted: list[str]) -> None:
    bad = {**_observation(7), "valueInteger": "seven"}
    for _ in range(2):
        with pytest.raises(ValidationError):
            validation.validate_resource(bad)
    assert counted == ["Observation", "Observation"]


def test_bundle_refuses_a_bad_entry_resource_and_a_bad_shell(counted: list[str]) -> None:
    good = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "entry": [{"fullUrl": "http://testserver/fhir/Observation/score1", "resource": _observation(7)}],
    }
    assert validation.validate_bundle(good) is good
    with pytest.raises(ValidationError):
        validation.validate_bundle({**good, "entry": [{"resource": {**_observation(7), "status": 5}}]})
    with pytest.raises(ValidationError):
        validation.validate_bundle({k: v for k, v in good.items() if k != "type"})  # type is required
    with pytest.raises(ValidationError):
        validation.validate_bundle({**good, "entry": [{"search": {"score": "high"}}]})


def test_a_malformed_mapped_resource_never_leaves(world: Any, client: Any, monkeypatch: Any) -> None:
    import dataclasses

    from kapclinic.fhirapi import resources

    phq9(world)
    spec = resources.SPECS["Observation"]
    broken = lambda rows, grant: [{**r, "effectiveDateTime": "maybe"} for r in spec.render(rows, grant)]  # noqa: E731
    monkeypatch.setitem(resources.PARTS, "Observation", (dataclasses.replace(spec, render=broken),))
    client.force_login(world.prescriber)
    client.raise_request_exception = False
    response = client.get("/fhir/Observation?_count=5")
    assert response.status_code == 500
    assert b"maybe" not in response.content


def test_bearer_search_queries_do_not_grow_with_results(world: Any, client: Any) -> None:
    registered, key = register_backend(world)
    token = backend_token(client, key, registered.client_id).json()["access_token"]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    phq9(world)
    url = f"/fhir/Observation?patient=p{world.patient.pk}&code=http://loinc.org|44261-6&_count=50"
    client.get(url, **auth)
    with CaptureQueriesContext(connection) as small:
        assert body(client.get(url, **auth))["total"] == 1
    for day in range(1, 50):
        phq9(world, days_ago=-day)
    with CaptureQueriesContext(connection) as large:
        assert len(body(client.get(url, **auth))["entry"]) == 50
    assert len(large) == len(small)
    # The token, its registered client and clinic: one query.
    auth_queries = [
        q for q in large.captured_queries if "oauth2_provider" in q["sql"] or "fhirclient" in q["sql"]
    ]
    assert len(auth_queries) == 1
