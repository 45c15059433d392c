"""Bulk Data $export (docs/fhir-api.md#bulk-data): kick-off, polling, manifest, NDJSON, cancel, expiry."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from kapclinic.fhirapi.tests.helpers import backend_token, phq9, register_backend
from kapclinic.patients import services as patients
from kapclinic.testing.factories import actor_for

ASYNC = {"HTTP_PREFER": "respond-async", "HTTP_ACCEPT": "application/fhir+json"}


@pytest.fixture(autouse=True)
def _export_dir(settings: Any, tmp_path: Any) -> None:
    settings.FHIR_EXPORT_DIR = tmp_path / "exports"


def _token(world: Any, client: Any) -> tuple[Any, str]:
    registered, key = register_backend(world)
    return registered, backend_token(client, key, registered.client_id).json()["access_token"]


def _auth(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[-1].split("/", 1)[-1]


def test_export_runs_to_a_manifest_of_valid_ndjson(
    world: Any, client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    patients.diagnosis_add(actor_for(world.prescriber, world.clinic), world.patient, icd10="F33.1", snomed="",
                           description="MDD")  # fmt: skip
    phq9(world)
    _, token = _token(world, client)
    with django_capture_on_commit_callbacks(execute=True):
        kick = client.get(f"/fhir/Group/g{world.clinic.pk}/$export", **ASYNC, **_auth(token))
    assert kick.status_code == 202
    status = client.get(_path(kick["Content-Location"]), **_auth(token))
    assert status.status_code == 200 and status["Expires"]
    manifest = status.json()
    assert manifest["requiresAccessToken"] is True
    types = {o["type"]: o for o in manifest["output"]}
    assert types["Observation"]["count"] == 1 and types["Condition"]["count"] == 1
    seen_patients = set()
    for output in manifest["output"]:
        assert client.get(_path(output["url"])).status_code == 401  # no token, no file
        response = client.get(_path(output["url"]), **_auth(token))
        assert response["Content-Type"] == "application/fhir+ndjson"
        lines = b"".join(response.streaming_content).decode().splitlines()
        assert len(lines) == output["count"]
        for line in lines:
            resource = json.loads(line)
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)
            if resource["resourceType"] == "Patient":
                seen_patients.add(resource["id"])
    assert f"p{world.other_clinic_patient.pk}" not in seen_patients
    assert f"p{world.patient.pk}" in seen_patients
    assert all(re.fullmatch(rf".*/{o['type']}\.[1-4]\.ndjson", o["url"]) for o in manifest["output"])
    folder = _path(manifest["output"][0]["url"]).rsplit("/", 1)[0]
    for name in ("Patient.ndjson", "Patient.9.ndjson", "Basic.1.ndjson"):  # not in this job's output
        assert client.get(f"{folder}/{name}", **_auth(token)).status_code == 404


def test_type_and_since_filter_the_output(
    world: Any, client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    phq9(world)
    _, token = _token(world, client)
    with django_capture_on_commit_callbacks(execute=True):
        kick = client.get(
            "/fhir/Patient/$export?_type=Observation&_since=2099-01-01T00:00:00Z", **ASYNC, **_auth(token)
        )
    manifest = client.get(_path(kick["Content-Location"]), **_auth(token)).json()
    assert manifest["output"] == []  # an empty part writes no file (Bulk Data: an empty output array)


def test_polling_answers_202_with_progress_then_delete_cancels(world: Any, client: Any) -> None:
    _, token = _token(world, client)
    kick = client.get("/fhir/Patient/$export", **ASYNC, **_auth(token))  # not committed: the worker waits
    status_url = _path(kick["Content-Location"])
    polled = client.get(status_url, **_auth(token))
    assert polled.status_code == 202 and polled["X-Progress"] and polled["Retry-After"]
    assert client.get("/fhir/Patient/$export", **ASYNC, **_auth(token)).status_code == 429
    assert client.delete(status_url, **_auth(token)).status_code == 202
    assert client.get(status_url, **_auth(token)).status_code == 404


def test_another_client_cannot_poll_or_download(
    world: Any, client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _, token = _token(world, client)
    _, other = _token(world, client)
    with django_capture_on_commit_callbacks(execute=True):
        kick = client.get("/fhir/Patient/$export", **ASYNC, **_auth(token))
    assert client.get(_path(kick["Content-Location"]), **_auth(other)).status_code == 404


def test_expired_exports_are_deleted(
    world: Any, client: Any, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    import datetime as dt

    from kapclinic.fhirapi import exports
    from kapclinic.fhirapi.models import ExportJob

    _, token = _token(world, client)
    with django_capture_on_commit_callbacks(execute=True):
        kick = client.get("/fhir/Patient/$export", **ASYNC, **_auth(token))
    job = ExportJob.objects.get()
    assert exports.export_dir(job.pk).exists()
    ExportJob.objects.update(expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    assert exports.purge_expired() == 1
    assert not exports.export_dir(job.pk).exists()
    assert client.get(_path(kick["Content-Location"]), **_auth(token)).status_code == 404


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [
        ("", {}, 400),  # no Prefer: respond-async
        ("?_type=Basic", ASYNC, 400),
        ("?_since=soon", ASYNC, 400),
        ("?_outputFormat=csv", ASYNC, 400),
        ("?_elements=id", ASYNC, 400),
    ],
)
def test_bad_kickoffs(world: Any, client: Any, query: str, headers: dict[str, str], status: int) -> None:
    _, token = _token(world, client)
    response = client.get(f"/fhir/Patient/$export{query}", **headers, **_auth(token))
    assert response.status_code == status
    assert response.json()["resourceType"] == "OperationOutcome"


def test_other_clinic_group_and_session_users_are_refused(world: Any, client: Any) -> None:
    _, token = _token(world, client)
    other_group = client.get(f"/fhir/Group/g{world.other_clinic.pk}/$export", **ASYNC, **_auth(token))
    assert other_group.status_code == 404
    client.force_login(world.prescriber)
    assert client.get("/fhir/Patient/$export", **ASYNC).status_code == 403
