"""FHIR OperationOutcome answers: every error of the API is one, never an HTML page."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse

FHIR_JSON = "application/fhir+json; charset=utf-8"


class FhirError(Exception):
    """Raised anywhere in the API; answered as an OperationOutcome with `status`."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code  # an issue-type code: invalid, not-found, forbidden, login, not-supported...
        self.message = message
        self.headers = headers or {}


def operation_outcome(code: str, message: str, severity: str = "error") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": message}],
    }


def fhir_response(body: dict[str, Any], status: int = 200) -> HttpResponse:
    return HttpResponse(json.dumps(body, separators=(",", ":")), status=status, content_type=FHIR_JSON)


def error_response(error: FhirError) -> HttpResponse:
    response = fhir_response(operation_outcome(error.code, error.message), error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response
