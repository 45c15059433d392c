"""The clinic's Group (docs/fhir-api.md, Group): read and search, validated, audited, for system clients
and clinic managers; the id Bulk Data `Group/<id>/$export` takes."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from oauth2_provider.models import AccessToken

from kapclinic.audit.models import AuditEvent
from kapclinic.core import clock
from kapclinic.fhirapi.tests.helpers import body, register_app, register_backend
from kapclinic.patients.models import Patient
from kapclinic.testing.factories import make_patient


def _token(app: Any, user: Any, scope: str) -> dict[str, str]:
    raw = secrets.token_urlsafe(24)
    AccessToken.objects.create(
        application=app, user=user, token=raw, scope=scope, expires=clock.now() + dt.timedelta(hours=1)
    )
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_system_client_reads_and_searches_its_clinic_group(world: Any, client: Any) -> None:
    registered, _ = register_backend(world)
    auth = _token(registered.application, None, "system/*.rs")
    group_id = f"g{world.clinic.pk}"
    group = body(client.get(f"/fhir/Group/{group_id}", **auth))
    assert group["resourceType"] == "Group" and group["id"] == group_id
    assert group["type"] == "person" and group["actual"] is True
    assert group["quantity"] == Patient.objects.filter(clinic=world.clinic).count() >= 2
    assert group["managingEntity"]["reference"] == f"Organization/org{world.clinic.pk}"
    assert "member" not in group  # counted, not listed
    assert AuditEvent.objects.filter(action="view", object_type="fhir:Group", object_id=group_id).exists()

    bundle = body(client.get("/fhir/Group", **auth))
    assert bundle["total"] == 1 and bundle["entry"][0]["resource"] == group
    assert AuditEvent.objects.filter(action="list", object_type="fhir:Group").exists()
    assert body(client.get(f"/fhir/Group?_id={group_id}", **auth))["total"] == 1
    assert body(client.get("/fhir/Group?_id=g999999", **auth))["total"] == 0
    updated = group["meta"]["lastUpdated"][:10]
    assert body(client.get(f"/fhir/Group?_lastUpdated=ge{updated}", **auth))["total"] == 1
    assert body(client.get("/fhir/Group?_lastUpdated=lt2000-01-01", **auth))["total"] == 0
    assert client.get("/fhir/Group?name=x", **auth).status_code == 400  # strict: unknown parameter
    assert client.get(f"/fhir/Group/g{world.other_clinic.pk}", **auth).status_code == 404
    assert client.get("/fhir/Group/nope", **auth).status_code == 404


def test_group_quantity_follows_new_patients(world: Any, client: Any) -> None:
    registered, _ = register_backend(world)
    auth = _token(registered.application, None, "system/Group.rs")
    before = body(client.get(f"/fhir/Group/g{world.clinic.pk}", **auth))["quantity"]
    make_patient(world.clinic)
    assert body(client.get(f"/fhir/Group/g{world.clinic.pk}", **auth))["quantity"] == before + 1


def test_scopes_without_group_are_refused(world: Any, client: Any) -> None:
    registered, _ = register_backend(world, scopes="system/Patient.rs")
    auth = _token(registered.application, None, "system/Patient.rs")
    assert client.get(f"/fhir/Group/g{world.clinic.pk}", **auth).status_code == 403
    assert client.get("/fhir/Group", **auth).status_code == 403


def test_admin_reads_the_group_and_other_roles_are_refused(world: Any, client: Any) -> None:
    app = register_app(world)
    assert client.get(f"/fhir/Group/g{world.clinic.pk}", **_token(app.application, world.admin, "user/*.rs")
                      ).status_code == 200  # fmt: skip
    for user, scope in (
        (world.therapist, "user/*.rs"),
        (world.front_desk, "user/*.rs"),
        (world.patient_user, "patient/*.rs"),
    ):
        answer = client.get(f"/fhir/Group/g{world.clinic.pk}", **_token(app.application, user, scope))
        assert answer.status_code == 403 and body(answer)["resourceType"] == "OperationOutcome"
    # a signed-in session: the same rule
    client.force_login(world.admin)
    assert client.get(f"/fhir/Group/g{world.clinic.pk}").status_code == 200
    client.force_login(world.therapist)
    assert client.get("/fhir/Group").status_code == 403


def test_capability_statement_lists_group(client: Any) -> None:
    statement = body(client.get("/fhir/metadata"))
    group = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Group")
    assert [i["code"] for i in group["interaction"]] == ["read", "search-type"]
    assert {p["name"] for p in group["searchParam"]} == {"_id", "_lastUpdated", "_count", "_sort"}
