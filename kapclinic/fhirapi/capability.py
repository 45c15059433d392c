"""The CapabilityStatement: exactly what this server implements (docs/fhir-api.md#capabilities).

Built from the same registry the views use (resources.SPECS), so it cannot list a parameter the server
refuses or miss one it accepts. R4 requires status, date, kind, fhirVersion and format; kind=instance
requires `implementation` (docs/fhir-api.md, [D17])."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from kapclinic.fhirapi.resources import PARTS, Spec
from kapclinic.fhirapi.search import MAX_COUNT

RELEASE_DATE = "2026-12-06"

_RESULT_PARAMS = [
    {
        "name": "_count",
        "type": "number",
        "documentation": (
            f"Page size, default 50; above {MAX_COUNT} it is clamped to {MAX_COUNT} with a warning entry."
        ),
    },
    {"name": "_sort", "type": "string", "documentation": "_id, date or _lastUpdated; - for descending."},
]


def _resource(
    spec_type: str, params: list[dict[str, Any]], includes: list[str] | None = None
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "type": spec_type,
        "interaction": [{"code": "read"}, {"code": "search-type"}],
    }
    if includes:
        resource["searchInclude"] = includes
    resource["searchParam"] = params
    return resource


def _params(parts: tuple[Spec, ...]) -> list[dict[str, Any]]:
    """The search parameters of a type; a type served from several tables (Observation) takes the same
    names in each, documented together."""
    out = []
    for name, param in parts[0].params.items():
        docs = [d for d in dict.fromkeys(part.params[name].documentation for part in parts) if d]
        out.append({"name": name, "type": param.type, **({"documentation": " ".join(docs)} if docs else {})})
    return out


def capability_statement() -> dict[str, Any]:
    """The statement (built and validated once per process and base URL: it changes only with code)."""
    return _statement(settings.SITE_URL)


@cache
def _statement(site_url: str) -> dict[str, Any]:
    base = f"{site_url}/fhir"
    from kapclinic.fhirapi.services import search_includes

    resources = [
        _resource(name, _params(parts) + _RESULT_PARAMS, search_includes(parts[0]))
        for name, parts in PARTS.items()
    ]
    resources.append(
        _resource(
            "Questionnaire",
            [{"name": "_id", "type": "token"}, {"name": "url", "type": "uri"}],
        )
    )
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": RELEASE_DATE,
        "publisher": "KAP Clinic",
        "kind": "instance",
        "implementation": {"description": "KAP Clinic FHIR R4 API (read and search)", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Unknown search parameters are refused with 400 (handling=strict).",
                "resource": sorted(resources, key=lambda r: r["type"]),
            }
        ],
    }
    CapabilityStatement.model_validate(statement)
    return statement
