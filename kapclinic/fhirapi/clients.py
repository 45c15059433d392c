"""Registering, listing and revoking FHIR API clients and a patient's authorised apps (docs/fhir-api.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from joserfc.jwk import KeySet
from oauth2_provider.models import AccessToken, Application, RefreshToken

from kapclinic.audit.services import record_event
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.errors import DomainError
from kapclinic.fhirapi import scopes as smart
from kapclinic.fhirapi.models import ClientKind, FhirClient


def load_jwks(source: str) -> tuple[dict[str, Any] | None, str]:
    """(keys, url) from a file path or an https URL; the keys are checked to be a public key set."""
    if source.startswith(("https://", "http://")):
        return None, source
    try:
        data = json.loads(Path(source).read_text(encoding="utf-8"))
        keys = KeySet.import_key_set(data)
    except (OSError, ValueError, TypeError) as exc:
        raise DomainError(f"The key set {source!r} could not be read as a JWKS: {exc}") from None
    if any(key.is_private for key in keys.keys):
        raise DomainError("The key set holds a private key: register the public keys only.")
    return data, ""


@transaction.atomic
def register(
    actor: Actor,
    clinic: Any,
    *,
    name: str,
    scopes: str,
    kind: str = ClientKind.BACKEND,
    jwks: dict[str, Any] | None = None,
    jwks_url: str = "",
    redirect_uris: str = "",
) -> FhirClient:
    try:
        resource_scopes, _ = smart.parse_scopes(scopes)
    except ValueError as exc:
        raise DomainError(str(exc)) from None
    contexts = {s.context for s in resource_scopes}
    if kind == ClientKind.BACKEND:
        if contexts - {"system"} or not resource_scopes:
            raise DomainError("A backend service is granted system/ scopes only (e.g. system/*.rs).")
        if not jwks and not jwks_url:
            raise DomainError("A backend service needs its public keys (a JWKS file or URL).")
    elif "system" in contexts or not redirect_uris:
        raise DomainError("An app takes patient/ or user/ scopes and at least one redirect URI.")
    if any(set(s.permissions) - {"r", "s"} for s in resource_scopes):
        raise DomainError("This server is read-only: grant r and s permissions only (e.g. .rs).")
    application = Application.objects.create(
        name=name[:255],
        client_type=Application.CLIENT_CONFIDENTIAL
        if kind == ClientKind.BACKEND
        else Application.CLIENT_PUBLIC,
        authorization_grant_type=(
            Application.GRANT_CLIENT_CREDENTIALS
            if kind == ClientKind.BACKEND
            else Application.GRANT_AUTHORIZATION_CODE
        ),
        redirect_uris=redirect_uris,
        skip_authorization=False,
        # an app's `openid` id_token is signed RS256 with the server's key (docs/fhir-api.md#openid)
        algorithm=Application.RS256_ALGORITHM if kind == ClientKind.APP else Application.NO_ALGORITHM,
    )
    client = FhirClient.objects.create(
        clinic=clinic,
        application=application,
        name=name,
        kind=kind,
        scopes=scopes,
        jwks=jwks,
        jwks_url=jwks_url,
        created_by=actor.user,
    )
    record_event(actor, "admin", obj=client, clinic=clinic, detail=f"fhir client registered kind={kind}")
    return client


def clinic_clients(clinic: Any) -> QuerySet[FhirClient]:
    return FhirClient.objects.filter(clinic=clinic).select_related("application").order_by("-created_at")


@transaction.atomic
def revoke(actor: Actor, client: FhirClient) -> None:
    """Revoke a client: no new token, and every token it holds stops working now."""
    if client.revoked_at is None:
        client.revoked_at = clock.now()
        client.save(update_fields=["revoked_at"])
    AccessToken.objects.filter(application=client.application).delete()
    RefreshToken.objects.filter(application=client.application).delete()
    record_event(actor, "admin", obj=client, clinic=client.clinic, detail="fhir client revoked")


def patient_apps(user: Any) -> list[dict[str, Any]]:
    """The apps holding a token for this user: name, scopes, latest expiry."""
    apps: dict[int, dict[str, Any]] = {}
    tokens = (
        AccessToken.objects.filter(user=user).select_related("application__fhir_client").order_by("expires")
    )
    for token in tokens:
        entry = apps.setdefault(
            token.application_id or 0,
            {"application": token.application, "scopes": set(), "expires": token.expires},
        )
        entry["scopes"] |= set(token.scope.split())
        entry["expires"] = max(entry["expires"], token.expires)
    for refresh in RefreshToken.objects.filter(user=user, revoked__isnull=True).select_related("application"):
        apps.setdefault(
            refresh.application_id or 0,
            {"application": refresh.application, "scopes": set(), "expires": None},
        )
    return [
        {**entry, "scopes": [smart.describe(s) for s in sorted(entry["scopes"])]}
        for entry in apps.values()
        if entry["application"] is not None
    ]


@transaction.atomic
def patient_revoke(actor: Actor, user: Any, application_id: int, patient: Any = None) -> int:
    """Withdraw an app's access to this user's record; the number of tokens removed (0: nothing held)."""
    removed, _ = AccessToken.objects.filter(user=user, application_id=application_id).delete()
    refresh, _ = RefreshToken.objects.filter(user=user, application_id=application_id).delete()
    if removed or refresh:
        record_event(
            actor,
            "update",
            patient=patient,
            object_type="fhir:app",
            object_id=application_id,
            detail="app revoked",
        )
    return int(removed + refresh)
