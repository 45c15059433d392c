"""Who is asking: a bearer token (SMART, docs/fhir-api.md#authorization) or a signed-in session."""

from __future__ import annotations

from django.http import HttpRequest

from kapclinic.fhirapi.access import Grant, session_grant


def authenticate(request: HttpRequest) -> Grant | None:
    return session_grant(request)
