"""The FHIR API in the authorization matrix (a signed-in browser session = user context).
Anonymous API requests get 401 (an OperationOutcome with WWW-Authenticate), not the login redirect.
Bearer-token contexts x types x other ids: kapclinic/fhirapi/tests/test_authorization.py."""

from __future__ import annotations

from typing import Any

from kapclinic.testing.matrix import LOGIN, Entry, expect, public, roles


def _patient(world: Any) -> dict[str, Any]:
    return {"resource_type": "Patient", "resource_id": f"p{world.patient.pk}"}


def _client(world: Any) -> dict[str, Any]:
    from kapclinic.fhirapi.tests.helpers import register_backend

    registered, _ = register_backend(world)
    return {"client_id": registered.pk}


def _app(world: Any) -> dict[str, Any]:
    from kapclinic.fhirapi.tests.helpers import register_app

    return {"application_id": register_app(world).application.pk}


def _group(world: Any) -> dict[str, Any]:
    from kapclinic.fhirapi import groups
    from kapclinic.fhirapi.models import PatientGroup
    from kapclinic.testing.factories import actor_for

    actor = actor_for(world.admin, world.clinic)
    found = PatientGroup.objects.filter(clinic=world.clinic, active=True).first()
    name = f"Matrix group {PatientGroup.objects.filter(clinic=world.clinic).count() + 1}"
    group = found or groups.group_create(actor, name=name, description="", member_ids=[world.patient.pk])
    return {"group_id": group.pk}


_BACKEND_ONLY = expect(403, anonymous=401)
_JOB = "00000000-0000-4000-8000-000000000001"
_PATIENTS_ONLY = expect(403, patient_user=200, other_patient_user=200)

MATRIX = {
    "fhirapi:metadata": Entry(public()),
    "fhirapi:smart_configuration": Entry(public()),
    "fhirapi:openid_configuration": Entry(public()),
    "fhirapi:jwks": Entry(public(), note="the public key that verifies id_tokens"),
    "fhirapi:userinfo": Entry(public(401), note="OpenID userinfo: a bearer token only, never the session"),
    "fhirapi:token": Entry(public(405), note="POST only (OAuth token endpoint)"),
    "fhirapi:authorize": Entry(expect(400), note="without OAuth parameters: the error page"),
    "fhirapi:read": Entry(
        expect(200, anonymous=401, therapist_other=403, other_patient_user=404, other_clinic_staff=404),
        kwargs=_patient,
    ),
    "fhirapi:search": Entry(
        expect(200, anonymous=401, admin=403, front_desk=403),
        kwargs=lambda world: {"resource_type": "Observation"},
    ),
    # Bulk export is for backend services (bearer tokens with system scopes): a session is refused.
    "fhirapi:export_patients": Entry(_BACKEND_ONLY),
    "fhirapi:export_group": Entry(_BACKEND_ONLY, kwargs=lambda world: {"group_id": f"g{world.clinic.pk}"}),
    "fhirapi:export_status": Entry(_BACKEND_ONLY, kwargs=lambda world: {"job_id": _JOB}),
    "fhirapi:export_file": Entry(
        _BACKEND_ONLY, kwargs=lambda world: {"job_id": _JOB, "name": "Patient.ndjson"}
    ),
    "fhirapi:clients": Entry(roles(("admin",))),
    "fhirapi:client_revoke": Entry(roles(("admin",), ok=302), method="post", setup=_client),
    # Admin-defined patient groups (docs/fhir-api.md#groups); their FHIR ids `ag<id>` by token context:
    # kapclinic/fhirapi/tests/test_authorization.py::test_group_by_context.
    "fhirapi:groups": Entry(roles(("admin",))),
    "fhirapi:group_create": Entry(roles(("admin",))),
    "fhirapi:group_edit": Entry(roles(("admin",)), setup=_group),
    "fhirapi:group_deactivate": Entry(roles(("admin",), ok=302), method="post", setup=_group),
    "fhirapi:my_apps": Entry(_PATIENTS_ONLY),
    "fhirapi:my_app_revoke": Entry(
        expect(403, patient_user=302, other_patient_user=302, anonymous=LOGIN), method="post", setup=_app
    ),
}
