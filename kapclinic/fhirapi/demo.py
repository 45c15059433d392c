"""Demo FHIR API clients: a patient app (authorization code + PKCE, redirect to a local test app) so the
SMART flow can be tried against `make run`. Backend services hold their own private keys and are
registered by `manage.py fhir_client create` (README "Connect an app"). Idempotent."""

from __future__ import annotations

from typing import Any

from kapclinic.core.actor import Actor
from kapclinic.fhirapi import clients
from kapclinic.fhirapi.models import ClientKind, FhirClient

DEMO_APP = "Demo mood diary (SMART app)"


def seed(ctx: Any) -> None:
    if FhirClient.objects.filter(clinic=ctx.clinic, name=DEMO_APP).exists():
        return
    clients.register(
        Actor.system(ctx.clinic, reason="seed-demo"),
        ctx.clinic,
        name=DEMO_APP,
        scopes="launch/patient patient/*.rs user/*.rs openid fhirUser offline_access",
        kind=ClientKind.APP,
        redirect_uris="http://127.0.0.1:9000/callback",
    )
