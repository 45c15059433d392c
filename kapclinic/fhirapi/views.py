"""FHIR R4 REST endpoints: capabilities, read and search (docs/fhir-api.md).

Views stay thin: `authenticate` gives the request's Grant, `services` reads and audits. Every answer is
`application/fhir+json`; every error an OperationOutcome (never an HTML page, never data).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from kapclinic.fhirapi import services
from kapclinic.fhirapi.access import Grant
from kapclinic.fhirapi.auth import authenticate
from kapclinic.fhirapi.capability import capability_statement
from kapclinic.fhirapi.outcome import FhirError, error_response, fhir_response

View = Callable[..., HttpResponse]


def fhir_view(view: Callable[..., dict[str, Any] | HttpResponse]) -> View:
    """Answer FhirError as an OperationOutcome; wrap dict results as application/fhir+json."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            result = view(request, *args, **kwargs)
        except FhirError as error:
            return error_response(error)
        return result if isinstance(result, HttpResponse) else fhir_response(result)

    return wrapper


def _grant(request: HttpRequest) -> Grant:
    grant = authenticate(request)
    if grant is None:
        raise FhirError(
            401,
            "login",
            "This API needs an access token.",
            headers={"WWW-Authenticate": 'Bearer realm="fhir"'},
        )
    return grant


@require_GET
@fhir_view
def metadata(request: HttpRequest) -> dict[str, Any]:
    return capability_statement()


@require_GET
@fhir_view
def read(request: HttpRequest, resource_type: str, resource_id: str) -> dict[str, Any]:
    grant = _grant(request)
    return services.read(request, grant, resource_type, resource_id)


@require_GET
@fhir_view
def search(request: HttpRequest, resource_type: str) -> dict[str, Any]:
    grant = _grant(request)
    return services.search(request, grant, resource_type)
