"""FHIR R4 REST endpoints: capabilities, read and search (docs/fhir-api.md).

Views stay thin: `authenticate` gives the request's Grant, `services` reads and audits. Every answer is
`application/fhir+json`; every error an OperationOutcome (never an HTML page, never data).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from kapclinic.audit.services import record_event
from kapclinic.fhirapi import exports, services
from kapclinic.fhirapi.access import Grant
from kapclinic.fhirapi.auth import authenticate
from kapclinic.fhirapi.capability import capability_statement
from kapclinic.fhirapi.models import ExportStatus
from kapclinic.fhirapi.outcome import FhirError, error_response, fhir_response

View = Callable[..., HttpResponseBase]


def fhir_view(view: Callable[..., dict[str, Any] | HttpResponseBase]) -> View:
    """Answer FhirError as an OperationOutcome; wrap dict results as application/fhir+json."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            result = view(request, *args, **kwargs)
        except FhirError as error:
            return error_response(error)
        return result if isinstance(result, HttpResponseBase) else fhir_response(result)

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
    return services.read(request, grant, resource_type=resource_type, resource_id=resource_id)


@require_GET
@fhir_view
def search(request: HttpRequest, resource_type: str) -> dict[str, Any]:
    grant = _grant(request)
    try:
        return services.search(request, grant, resource_type=resource_type)
    except FhirError as error:
        if error.status == 400:  # bad input is recorded as a refused access, naming the client
            services.deny(grant, request, detail=f"invalid-search type={resource_type[:40]}")
        raise


@require_GET
@fhir_view
def export_kickoff(request: HttpRequest, group_id: str | None = None) -> HttpResponse:
    grant = _grant(request)
    job = exports.kick_off(request, grant, group_id)
    response = HttpResponse(status=202)
    response["Content-Location"] = f"{settings.SITE_URL}/fhir/$export-status/{job.pk}"
    return response


@csrf_exempt  # bearer tokens only (exports are for backend services); no cookie authority is used
@require_http_methods(["GET", "DELETE"])
@fhir_view
def export_status(request: HttpRequest, job_id: str) -> dict[str, Any] | HttpResponse:
    grant = _grant(request)
    job = exports.job_for(grant, request, job_id)
    if request.method == "DELETE":
        exports.cancel(grant, job)
        return HttpResponse(status=202)
    if job.status == ExportStatus.FAILED:
        raise FhirError(500, "exception", "The export failed; start a new one.")
    if job.status != ExportStatus.DONE:
        response = HttpResponse(status=202)
        response["X-Progress"] = (job.progress or "accepted")[:90]
        response["Retry-After"] = str(exports.RETRY_AFTER_SECONDS)
        return response
    response = HttpResponse(json.dumps(exports.manifest(job)), content_type="application/json")
    if job.expires_at is not None:
        response["Expires"] = http_date(job.expires_at.timestamp())
    return response


@require_GET
@fhir_view
def export_file(request: HttpRequest, job_id: str, name: str) -> HttpResponseBase:
    grant = _grant(request)
    job = exports.job_for(grant, request, job_id)
    files = {o["file"] for o in job.output} if job.status == ExportStatus.DONE else set()
    if name not in files:
        raise FhirError(404, "not-found", "No such file in this export.")
    record_event(
        grant.actor, "export", clinic=grant.clinic, obj=job, detail=f"client={grant.client} file={name}"
    )
    return FileResponse(
        (exports.export_dir(job.pk) / name).open("rb"), content_type="application/fhir+ndjson"
    )
