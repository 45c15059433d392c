"""Who is asking: a bearer token (SMART, docs/fhir-api.md#authorization) or a signed-in session."""

from __future__ import annotations

import hashlib
from typing import Any

from django.http import HttpRequest

from kapclinic.accounts.models import Membership, Role
from kapclinic.core.actor import Actor, client_ip
from kapclinic.fhirapi import scopes as smart
from kapclinic.fhirapi.access import PATIENT, SYSTEM, USER, Grant, session_grant
from kapclinic.fhirapi.outcome import FhirError

_INVALID = 'Bearer realm="fhir", error="invalid_token"'


def _unauthorised(message: str) -> FhirError:
    return FhirError(401, "login", message, headers={"WWW-Authenticate": _INVALID})


def authenticate(request: HttpRequest) -> Grant | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header[:7].lower() == "bearer ":
        return bearer_grant(request, header[7:].strip())
    return session_grant(request)


def bearer_grant(request: HttpRequest, raw: str) -> Grant:
    """The grant of an access token: 401 (audited when the client is known) if it is not valid."""
    from kapclinic.audit.services import record_event
    from kapclinic.patients.models import Patient

    token = _load_token(raw) if raw else None
    client = getattr(token.application, "fhir_client", None) if token is not None else None
    if token is None or client is None:
        raise _unauthorised("The access token is not valid.")
    request_id = getattr(request, "request_id", "")
    if token.is_expired() or client.revoked_at is not None:
        record_event(
            Actor(
                user=token.user, clinic=client.clinic, role="", request_id=request_id, ip=client_ip(request)
            ),
            "denied",
            clinic=client.clinic,
            object_type="fhir",
            detail=f"client={client.name[:60]} {'revoked' if client.revoked_at else 'expired'}-token",
        )
        raise _unauthorised("The access token has expired or was revoked.")
    resource_scopes, _ = smart.parse_scopes(token.scope)
    clinic = client.clinic
    user = token.user
    if user is None:
        actor = Actor(user=None, clinic=clinic, role="system", request_id=request_id, ip=client_ip(request))
        system = [s for s in resource_scopes if s.context == "system"]
        return Grant(actor, clinic, SYSTEM, client.name, types=_perms(system), client_pk=client.pk)
    membership = Membership.objects.filter(user=user, clinic=clinic, is_active=True).first()
    patient = None if membership else Patient.objects.filter(user=user, clinic=clinic).first()
    if membership is None and patient is None:
        raise _unauthorised("The access token does not belong to this clinic.")
    role = membership.role if membership else Role.PATIENT
    actor = Actor(user=user, clinic=clinic, role=role, request_id=request_id, ip=client_ip(request))
    if patient is not None:
        chosen = [s for s in resource_scopes if s.context in ("patient", "user")]
        return Grant(
            actor,
            clinic,
            PATIENT,
            client.name,
            patient_id=patient.pk,
            types=_perms(chosen),
            client_pk=client.pk,
        )
    launched = getattr(token, "fhir_launch", None)  # a patient the staff member picked at authorization
    patient_scopes = [s for s in resource_scopes if s.context == "patient"]
    if launched is not None and patient_scopes:
        return Grant(
            actor,
            clinic,
            PATIENT,
            client.name,
            patient_id=launched.patient_id,
            types=_perms(patient_scopes),
            client_pk=client.pk,
        )
    user_scopes = [s for s in resource_scopes if s.context == "user"]
    return Grant(actor, clinic, USER, client.name, types=_perms(user_scopes), client_pk=client.pk)


def _load_token(raw: str) -> Any:
    """The access token with its application, registered client, clinic and user: one query.

    Looked up by its SHA-256 checksum, as django-oauth-toolkit's own validator does."""
    from oauth2_provider.models import get_access_token_model

    checksum = hashlib.sha256(raw.encode("utf-8")).hexdigest()
    return (
        get_access_token_model()
        .objects.select_related("application__fhir_client__clinic", "user", "fhir_launch")
        .filter(token_checksum=checksum)
        .first()
    )


def _perms(scopes: list[smart.ResourceScope]) -> dict[str, str]:
    perms: dict[str, str] = {}
    for scope in scopes:
        perms[scope.resource_type] = "".join(
            sorted(set(perms.get(scope.resource_type, "")) | set(scope.permissions))
        )
    return perms
