"""Read and search, validated and audited (docs/fhir-api.md).

A search runs a constant number of queries whatever its size: the visible patients are a subquery,
`total` one COUNT, the page one SELECT (plus one prefetch for QuestionnaireResponse answers), the audit
one event. Paging is by keyset (the sort value and id of the last row, signed into `_cursor`), never by
offset.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Q
from django.http import HttpRequest

from kapclinic.audit.services import record_event
from kapclinic.core import clock
from kapclinic.fhirapi.access import Grant
from kapclinic.fhirapi.outcome import FhirError, operation_outcome
from kapclinic.fhirapi.resources import PARTS, SPECS, Spec, part_for_id, prefetch, row_patient, row_patient_id
from kapclinic.fhirapi.search import (
    DEFAULT_COUNT,
    MAX_COUNT,
    invalid,
    make_cursor,
    parse_count,
    parse_id,
    read_cursor,
)
from kapclinic.fhirapi.validation import validate_bundle, validate_resource
from kapclinic.interop import fhir

# Result parameters every search accepts; anything else not declared for the type is a 400.
RESULT_PARAMS = frozenset({"_count", "_sort", "_cursor", "_format"})
JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json"})


def base_url() -> str:
    return f"{settings.SITE_URL}/fhir"


def _spec(grant: Grant, request: HttpRequest, resource_type: str, interaction: str) -> Spec | None:
    """The type's spec (None for Questionnaire); 404 unknown type; 403 audited when not granted."""
    if resource_type == "Questionnaire":
        if not grant.may_read_type(resource_type, interaction):
            deny(grant, request, detail=f"type={resource_type}")
            raise FhirError(403, "forbidden", "This access does not include Questionnaire resources.")
        return None
    spec = SPECS.get(resource_type)
    if spec is None:
        raise FhirError(404, "not-supported", f"This server has no resource type {resource_type[:40]!r}.")
    no_access = (spec.clinic_filter is None and not grant.has_any_access(spec.clinical)) or (
        spec.managers_only and not grant.manages_clinic()
    )
    if not grant.may_read_type(resource_type, interaction) or no_access:
        deny(grant, request, detail=f"type={resource_type}")
        raise FhirError(403, "forbidden", f"This access does not include {resource_type} resources.")
    return spec


def deny(grant: Grant, request: HttpRequest, *, detail: str, patient: Any = None) -> None:
    """Audit a refusal as "denied", naming the client; one per request."""
    if getattr(request, "_kap_refusal", None) is not None:
        return
    event = record_event(
        grant.actor,
        "denied",
        patient=patient,
        clinic=grant.clinic,
        object_type="fhir",
        detail=f"client={grant.client} {detail}",
    )
    request._kap_refusal = (event.pk, {"patient": patient, "object_type": "fhir", "detail": detail})  # type: ignore[attr-defined]


@cache
def _questionnaires() -> tuple[dict[str, Any], ...]:
    """The instruments' Questionnaires: package data, read and validated once per process."""
    from kapclinic.clinical.instruments import questionnaire_json

    return tuple(validate_resource(questionnaire_json(key)) for key in fhir.QUESTIONNAIRE_IDS)


def read(request: HttpRequest, grant: Grant, *, resource_type: str, resource_id: str) -> dict[str, Any]:
    spec = _spec(grant, request, resource_type, "r")
    if spec is None:
        for questionnaire in _questionnaires():
            if questionnaire["id"] == resource_id:
                return questionnaire
        raise FhirError(404, "not-found", f"No Questionnaire {resource_id[:40]!r}.")
    spec = part_for_id(resource_type, resource_id) or spec
    try:
        pk = parse_id("id", resource_id, spec.prefix)
    except FhirError:
        raise FhirError(404, "not-found", f"No {resource_type} with this id.") from None
    if spec.clinic_filter is not None:
        found = spec.queryset().filter(spec.clinic_filter(grant.clinic), pk=pk).first()
        if found is None:
            raise FhirError(404, "not-found", f"No {resource_type} with this id.")
        resource = validate_resource(spec.render([found], grant)[0])
        record_event(
            grant.actor,
            "view",
            clinic=grant.clinic,
            object_type=f"fhir:{resource_type}",
            object_id=resource["id"],
            detail=f"client={grant.client}",
        )
        return resource
    qs = spec.queryset().filter(pk=pk)
    if spec.patient_field != "pk":
        qs = qs.select_related(spec.patient_field)
    qs = qs.prefetch_related(*prefetch(spec))
    row = qs.first()
    patient = row_patient(spec, row) if row is not None else None
    if row is None or patient is None or not grant.exists_for(patient):
        raise FhirError(404, "not-found", f"No {resource_type} with this id.")
    if not grant.can_read(patient, spec.clinical):
        deny(grant, request, detail=f"type={resource_type}", patient=patient)
        raise FhirError(403, "forbidden", "This access does not include this patient's record.")
    resource = validate_resource(spec.render([row], grant)[0])
    record_event(
        grant.actor,
        "view",
        patient=patient,
        clinic=grant.clinic,
        object_type=f"fhir:{resource_type}",
        object_id=resource["id"],
        detail=f"client={grant.client}",
    )
    return resource


def search_includes(spec: Spec | None) -> list[str]:
    """The `_include` values a type supports: its patient reference parameters (docs/fhir-api.md#include)."""
    if spec is None or spec.clinic_filter is not None or spec.patient_field == "pk":
        return []
    return [f"{spec.type}:{name}" for name in ("patient", "subject") if name in spec.params]


def _includes(spec: Spec | None, values: list[str]) -> list[str]:
    supported = search_includes(spec)
    for value in values:
        if value not in supported:
            raise FhirError(
                400,
                "not-supported",
                f"_include={value[:60]!r} is not supported here"
                + (f" (supported: {', '.join(supported)})." if supported else "."),
            )
    return values


def _parse(request: HttpRequest, spec: Spec | None) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(search criteria, result parameters) of the query string; 400 for anything not supported."""
    criteria: list[tuple[str, str]] = []
    result: dict[str, str] = {}
    allowed = spec.params if spec is not None else {"_id": None, "url": None}
    for name, values in request.GET.lists():
        if name == "_include":
            result[name] = ",".join(_includes(spec, values))
        elif name in RESULT_PARAMS:
            if len(values) > 1:
                raise invalid(name, "it may be given only once.")
            result[name] = values[0]
        elif name in allowed:
            criteria.extend((name, value) for value in values)
        else:
            raise FhirError(
                400,
                "not-supported",
                f"The search parameter {name[:40]!r} is not supported for this type "
                "(this server refuses unknown parameters: handling=strict).",
            )
    if "_format" in result and result["_format"] not in JSON_FORMATS:
        raise invalid("_format", "this server answers JSON only.")
    return criteria, result


def _bundle(
    request: HttpRequest,
    resources: list[dict[str, Any]],
    total: int,
    links: dict[str, str],
    warning: str = "",
    included: list[dict[str, Any]] | tuple[()] = (),
) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"{base_url()}/{r['resourceType']}/{r['id']}",
            "resource": r,
            "search": {"mode": mode},
        }
        for mode, group in (("match", resources), ("include", included))
        for r in group
    ]
    if warning:
        entries.append(
            {
                "resource": operation_outcome("informational", warning, "warning"),
                "search": {"mode": "outcome"},
            }
        )
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": fhir.iso(clock.now()),
        "total": total,
        "link": [{"relation": rel, "url": url} for rel, url in links.items()],
    }
    if entries:
        bundle["entry"] = entries
    return validate_bundle(bundle)  # and every resource in it


def _self_url(resource_type: str, params: list[tuple[str, str]]) -> str:
    query = urlencode(params)
    return f"{base_url()}/{resource_type}" + (f"?{query}" if query else "")


def search(request: HttpRequest, grant: Grant, *, resource_type: str) -> dict[str, Any]:
    spec = _spec(grant, request, resource_type, "s")
    criteria, result = _parse(request, spec)
    if spec is None:
        return _search_questionnaires(request, resource_type, criteria)
    count, clamped = parse_count(result["_count"]) if "_count" in result else (DEFAULT_COUNT, False)
    sort = result.get("_sort", "_id")
    parts = PARTS[resource_type]
    if sort.removeprefix("-") not in spec.sort_fields():
        raise invalid("_sort", f"supported: {', '.join(sorted(spec.sort_fields()))} (with - for descending).")
    descending = sort.startswith("-")
    cursor = (
        _cursor_key(read_cursor(result["_cursor"], sort), sort.removeprefix("-") != "_id")
        if "_cursor" in result
        else None
    )

    # One COUNT and one page SELECT per table behind the type (four for Observation), whatever the size;
    # none for a table a criterion rules out (an empty `pk__in`: Django sends no query).
    total = 0
    candidates: list[tuple[tuple[Any, ...], int, Any]] = []
    for index, part in enumerate(parts):
        qs = _part_queryset(grant, part, criteria)
        total += qs.count()
        if not count:
            continue
        sort_field = part.sort_fields()[sort.removeprefix("-")]
        page_qs = _after_cursor(qs, sort_field, index, cursor, descending)
        if page_qs is None:
            continue
        order = [f"-{sort_field}", "-pk"] if descending else [sort_field, "pk"]
        page_qs = page_qs.order_by(*order).prefetch_related(*prefetch(part))
        for row in page_qs[: count + 1]:
            value = getattr(row, sort_field) if sort_field != "pk" else None
            candidates.append(((value, index, row.pk), index, row))
    candidates.sort(key=lambda c: c[0], reverse=descending)
    has_next = len(candidates) > count
    page = candidates[:count]
    resources = [r for _, index, row in page for r in parts[index].render([row], grant)]

    base_params = [(n, v) for n, values in request.GET.lists() if n != "_cursor" for v in values]
    if clamped:
        base_params = [(n, v if n != "_count" else str(MAX_COUNT)) for n, v in base_params]
    links = {"self": _self_url(resource_type, [(n, v) for n, values in request.GET.lists() for v in values])}
    if has_next and page:
        (key_value, last_index, last_pk), _, _ = page[-1]
        if isinstance(key_value, dt.datetime):
            key_value = key_value.isoformat()
        links["next"] = _self_url(
            resource_type, [*base_params, ("_cursor", make_cursor(sort, [key_value, last_index, last_pk]))]
        )
    warning = (
        f"_count was {result['_count'][:20]}; this server returns at most {MAX_COUNT} per page."
        if clamped
        else ""
    )
    patient_ids = (
        {row_patient_id(parts[index], row) for _, index, row in page} if spec.clinic_filter is None else set()
    )
    included = _included_patients(request, grant, patient_ids) if result.get("_include") else []
    bundle = _bundle(request, resources, total, links, warning, included)
    named = None
    if len(patient_ids) == 1:
        from kapclinic.patients.models import Patient

        named = Patient(pk=patient_ids.pop(), clinic=grant.clinic)
    record_event(
        grant.actor,
        "list",
        patient=named,
        clinic=grant.clinic,
        object_type=f"fhir:{resource_type}",
        detail=f"client={grant.client} n={len(resources)} total={total}"
        + (f" included={len(included)}" if included else ""),
    )
    return bundle


def _included_patients(request: HttpRequest, grant: Grant, patient_ids: set[int]) -> list[dict[str, Any]]:
    """The Patients the page's resources refer to (`_include=<Type>:patient`): one query, whatever the
    page size; only patients whose demographics this grant may read (403 without Patient access)."""
    spec = SPECS["Patient"]
    if not grant.may_read_type("Patient", "r") or not grant.has_any_access(spec.clinical):
        deny(grant, request, detail="type=Patient include")
        raise FhirError(403, "forbidden", "This access does not include Patient resources (_include).")
    if not patient_ids:
        return []
    visible = grant.patients(spec.clinical).values("pk")
    rows = spec.queryset().filter(pk__in=sorted(patient_ids)).filter(pk__in=visible).order_by("pk")
    return spec.render(list(rows), grant)


def _part_queryset(grant: Grant, part: Spec, criteria: list[tuple[str, str]]) -> Any:
    """The rows of one table of the type this grant may see, filtered by the search criteria."""
    if part.clinic_filter is not None:
        qs = part.queryset().filter(part.clinic_filter(grant.clinic))
    else:
        visible = grant.patients(part.clinical)
        qs = part.queryset().filter(**{f"{part.patient_field}__in": visible.values("pk")})
    for name, value in criteria:
        qs = qs.filter(part.params[name].handler(name, value))
    return qs


def _after_cursor(
    qs: Any, sort_field: str, index: int, cursor: tuple[Any, int, int] | None, descending: bool
) -> Any:
    """The rows after the keyset cursor (sort value, table index, pk), or None when none can be.
    Rows sort by (value, table, pk): for the `_id` sort the value is absent, so by (table, pk)."""
    if cursor is None:
        return qs
    value, last_index, last_pk = cursor
    cmp = "lt" if descending else "gt"
    later = index < last_index if descending else index > last_index
    if sort_field == "pk":
        if index == last_index:
            return qs.filter(**{f"pk__{cmp}": last_pk})
        return qs if later else None
    if index == last_index:
        return qs.filter(
            Q(**{f"{sort_field}__{cmp}": value}) | Q(**{sort_field: value, f"pk__{cmp}": last_pk})
        )
    return qs.filter(**{f"{sort_field}__{cmp}{'e' if later else ''}": value})


def _cursor_key(key: list[Any], dated: bool) -> tuple[Any, int, int]:
    if len(key) != 3 or not isinstance(key[1], int) or not isinstance(key[2], int):
        raise invalid("_cursor", "it is not a page link of this server.")
    value = key[0]
    if dated:
        try:
            value = dt.datetime.fromisoformat(str(value))
        except ValueError:
            raise invalid("_cursor", "it is not a page link of this server.") from None
    return value, key[1], key[2]


def _search_questionnaires(
    request: HttpRequest, resource_type: str, criteria: list[tuple[str, str]]
) -> dict[str, Any]:
    found = list(_questionnaires())
    for name, value in criteria:
        wanted = set(value.split(","))
        found = [q for q in found if (q["id"] if name == "_id" else q["url"]) in wanted]
    links = {"self": _self_url(resource_type, [(n, v) for n, values in request.GET.lists() for v in values])}
    return _bundle(request, found, len(found), links)
