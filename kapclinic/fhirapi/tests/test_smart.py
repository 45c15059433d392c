"""SMART App Launch v2 (docs/fhir-api.md#authorization): discovery, backend services, PKCE apps."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.management import call_command

from kapclinic.audit.models import AuditEvent
from kapclinic.fhirapi.tests.helpers import (
    authorize_and_exchange,
    backend_keys,
    backend_token,
    body,
    phq9,
    register_app,
    register_backend,
)


def _bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_smart_configuration_offers_s256_only(client: Any) -> None:
    config = client.get("/fhir/.well-known/smart-configuration").json()
    assert config["code_challenge_methods_supported"] == ["S256"]
    for field in ("authorization_endpoint", "token_endpoint", "capabilities"):
        assert config[field]
    assert "permission-v2" in config["capabilities"]


def test_fhir_client_command_prints_the_client_id(world: Any, tmp_path: Any, capsys: Any) -> None:
    from kapclinic.fhirapi.models import FhirClient

    _, jwks = backend_keys()
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(jwks))
    call_command(
        "fhir_client", "create", "--clinic", world.clinic.slug, "--name", "Registry",
        "--scopes", "system/*.rs", "--jwks", str(path),
    )  # fmt: skip
    client_id = capsys.readouterr().out.strip()
    registered = FhirClient.objects.get(application__client_id=client_id)
    assert registered.clinic == world.clinic and registered.scopes == "system/*.rs"


def test_backend_service_token_reads_its_clinic_only(world: Any, client: Any) -> None:
    registered, key = register_backend(world)
    answer = backend_token(client, key, registered.client_id)
    assert answer.status_code == 200, answer.content
    token = answer.json()["access_token"]
    phq9(world)
    bundle = body(client.get("/fhir/Patient?_count=50", **_bearer(token)))
    ids = {e["resource"]["id"] for e in bundle["entry"]}
    assert f"p{world.patient.pk}" in ids and f"p{world.other_clinic_patient.pk}" not in ids
    other = client.get(f"/fhir/Patient/p{world.other_clinic_patient.pk}", **_bearer(token))
    assert other.status_code == 404 and body(other)["resourceType"] == "OperationOutcome"
    event = AuditEvent.objects.filter(action="list", object_type="fhir:Patient").last()
    assert event is not None and event.detail.startswith("client=Registry")


def test_replayed_jti_is_refused_and_audited(world: Any, client: Any) -> None:
    registered, key = register_backend(world)
    assert backend_token(client, key, registered.client_id, jti="once").status_code == 200
    again = backend_token(client, key, registered.client_id, jti="once")
    assert again.status_code in (400, 401)
    assert again.json()["error"] == "invalid_client"
    assert AuditEvent.objects.filter(action="denied", detail__contains="replayed-jti").exists()


@pytest.mark.parametrize(
    "change",
    [{"aud": "https://elsewhere.example/token"}, {"seconds": -60}, {"seconds": 3600}],
)
def test_bad_assertions_are_refused(world: Any, client: Any, change: dict[str, Any]) -> None:
    registered, key = register_backend(world)
    assert backend_token(client, key, registered.client_id, **change).status_code in (400, 401)


def test_backend_cannot_get_scopes_it_was_not_registered_for(world: Any, client: Any) -> None:
    registered, key = register_backend(world, scopes="system/Patient.rs")
    assert backend_token(client, key, registered.client_id, scope="system/*.rs").status_code == 400
    token = backend_token(client, key, registered.client_id, scope="system/Patient.rs").json()["access_token"]
    assert client.get("/fhir/Observation", **_bearer(token)).status_code == 403
    assert client.get("/fhir/Patient", **_bearer(token)).status_code == 200


def test_revoked_client_token_stops_working_and_is_audited(world: Any, client: Any) -> None:
    from kapclinic.core.actor import Actor
    from kapclinic.fhirapi import clients

    registered, key = register_backend(world)
    token = backend_token(client, key, registered.client_id).json()["access_token"]
    clients.revoke(Actor.system(world.clinic), registered)
    response = client.get("/fhir/Patient", **_bearer(token))
    assert response.status_code == 401 and body(response)["resourceType"] == "OperationOutcome"
    assert backend_token(client, key, registered.client_id).status_code in (400, 401)
    assert AuditEvent.objects.filter(action="denied", detail__contains="revoked").exists()


def test_expired_token_is_401_and_audited(world: Any, client: Any) -> None:
    import datetime as dt

    from oauth2_provider.models import AccessToken

    registered, key = register_backend(world)
    token = backend_token(client, key, registered.client_id).json()["access_token"]
    AccessToken.objects.update(expires=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    assert client.get("/fhir/Patient", **_bearer(token)).status_code == 401
    assert AuditEvent.objects.filter(action="denied", detail__contains="expired-token").exists()


def test_unknown_token_is_401(db: Any, client: Any) -> None:
    response = client.get("/fhir/Patient", **_bearer("not-a-token"))
    assert response.status_code == 401 and "invalid_token" in response["WWW-Authenticate"]


def test_patient_app_with_pkce_sees_one_patient(world: Any, client: Any) -> None:
    app = register_app(world)
    phq9(world)
    theirs = phq9(world, patient=world.other_patient)
    answer = authorize_and_exchange(
        client, app, world.patient_user, "launch/patient patient/*.rs offline_access"
    )
    assert answer.status_code == 200, answer.content
    data = answer.json()
    assert data["patient"] == f"p{world.patient.pk}"
    token = data["access_token"]
    bundle = body(client.get("/fhir/Observation?code=http://loinc.org|44261-6", **_bearer(token)))
    assert bundle["total"] == 1
    assert {e["resource"]["subject"]["reference"] for e in bundle["entry"]} == {
        f"Patient/p{world.patient.pk}"
    }
    assert client.get(f"/fhir/Observation/score{theirs.pk}", **_bearer(token)).status_code == 404
    assert client.get(f"/fhir/Patient/p{world.other_patient.pk}", **_bearer(token)).status_code == 404


def test_plain_pkce_is_refused(world: Any, client: Any) -> None:
    app = register_app(world)
    answer = authorize_and_exchange(
        client, app, world.patient_user, "launch/patient patient/*.rs", method="plain"
    )
    assert answer.status_code != 200 or "access_token" not in answer.content.decode()


def test_user_token_sees_what_policy_lets_the_user_see(world: Any, client: Any) -> None:
    app = register_app(world)
    phq9(world)
    token = authorize_and_exchange(client, app, world.therapist_other, "user/*.rs").json()["access_token"]
    # therapist_other is not on the patient's care team: the chart is refused, the search is empty.
    assert client.get(f"/fhir/Patient/p{world.patient.pk}", **_bearer(token)).status_code == 403
    assert body(client.get(f"/fhir/Observation?patient=p{world.patient.pk}", **_bearer(token)))["total"] == 0
    desk = authorize_and_exchange(client, app, world.front_desk, "user/*.rs").json()["access_token"]
    assert client.get("/fhir/Observation", **_bearer(desk)).status_code == 403
    assert client.get(f"/fhir/Patient/p{world.patient.pk}", **_bearer(desk)).status_code == 200


def test_patient_sees_and_revokes_their_apps(world: Any, client: Any) -> None:
    app = register_app(world)
    token = authorize_and_exchange(client, app, world.patient_user, "launch/patient patient/*.rs").json()[
        "access_token"
    ]
    client.force_login(world.patient_user)
    page = client.get("/fhir/auth/my-apps/")
    assert page.status_code == 200 and "Mood app" in page.content.decode()
    client.post(f"/fhir/auth/my-apps/{app.application.pk}/revoke")
    client.logout()
    assert client.get("/fhir/Patient", **_bearer(token)).status_code == 401


def test_admin_lists_and_revokes_clients(world: Any, client: Any) -> None:
    registered, _ = register_backend(world)
    client.force_login(world.admin)
    assert "Registry" in client.get("/fhir/auth/clients/").content.decode()
    client.post(f"/fhir/auth/clients/{registered.pk}/revoke")
    registered.refresh_from_db()
    assert registered.revoked_at is not None
