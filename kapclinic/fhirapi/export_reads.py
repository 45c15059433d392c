"""Lean reads for the Bulk export only (the REST read/search path keeps resources.py's querysets).

The export reads every row of a clinic, so what matters is the cost per row: for the vital signs (four
fifths of a clinic's resources) the rows are read as named tuples (no model instances, no join of the
session beyond its patient id), ordered by session, and the blood-pressure pairing of `_vital_signs()`
(a systolic row carries the first diastolic value, by id, of the same session, reading and time; a
diastolic row with such a systolic partner is not a resource of its own) is done in Python on each
session's rows instead of a correlated Subquery and Exists per row. A chunk always ends at a session
boundary, so a pair is never split. The resources are built by the same builders
(kapclinic/interop/fhir.py) with the same attribute names; test_export_equality.py proves each line
equals the API's read of the same resource.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kapclinic.fhirapi.resources import (
    BODY_HEIGHT_SPEC,
    BODY_WEIGHT_SPEC,
    VITAL_SIGNS,
    Spec,
    _with_meta,
    prefetch,
    questionnaire_url,
)
from kapclinic.interop import fhir

_VITAL_FIELDS = (
    "pk", "session_id", "code_system", "code", "display", "value", "unit", "at", "reading",
    "recorded_by_id",
)  # fmt: skip


_SESSION_FIELDS = (
    "pk", "state", "patient_id", "clinic_id", "appointment_id", "scheduled_for", "checked_in_at",
    "predose_passed_at", "first_dose_at", "discharged_at", "aborted_at", "protocol_id", "protocol_version",
    "fhir_updated",
)  # fmt: skip

# The columns each part's renderer reads (named rows carry the same attribute names as the models).
# Parts not listed are read as model instances, as the API reads them.
_RESPONSE_FIELDS = ("pk", "instrument", "instrument_version", "patient_id", "completed_at")
LEAN_FIELDS: dict[str, tuple[str, ...]] = {  # by the part's id prefix
    "score": (*_RESPONSE_FIELDS, "total"),
    "qr": _RESPONSE_FIELDS,
    BODY_WEIGHT_SPEC.prefix: ("pk", "patient_id", "predose_passed_at", "weight_kg"),
    BODY_HEIGHT_SPEC.prefix: ("pk", "patient_id", "predose_passed_at", "height_cm"),
    "enc": _SESSION_FIELDS,
    "proc": _SESSION_FIELDS,
}


def chunks(spec: Spec, patients: Any, since: Any, grant: Any, size: int) -> Iterator[list[dict[str, Any]]]:
    """The spec's resources of the given patients (updated since `since`), about `size` at a time."""
    if spec is VITAL_SIGNS:
        yield from _vital_sign_chunks(patients, since, size)
        return
    qs = spec.queryset().filter(**{f"{spec.patient_field}__in": patients})
    if since is not None:
        qs = qs.filter(**{f"{spec.updated_field}__gte": since})
    qs = qs.order_by("pk")
    if spec.prefix in LEAN_FIELDS:
        render = _render_responses if spec.prefix == "qr" else spec.render
        rows = qs.values_list(*LEAN_FIELDS[spec.prefix], named=True)
    else:
        render = spec.render
        rows = qs.prefetch_related(*prefetch(spec))
    batch: list[Any] = []
    for row in rows.iterator(chunk_size=size):
        batch.append(row)
        if len(batch) == size:
            yield render(batch, grant)
            batch = []
    yield render(batch, grant)


def _render_responses(rows: list[Any], grant: Any) -> list[dict[str, Any]]:
    """resources._render_responses on named rows: the answers of the chunk in one query, as tuples."""
    from kapclinic.measures.models import ItemAnswer

    answers: dict[int, list[Any]] = {row.pk: [] for row in rows}
    if answers:
        found = ItemAnswer.objects.filter(response_id__in=list(answers)).order_by("pk")
        for answer in found.values_list("response_id", "link_id", "value", "item_number", named=True):
            answers[answer.response_id].append(answer)
    return [
        _with_meta(
            fhir.questionnaire_response_resource(r, answers[r.pk], questionnaire_url(r.instrument)),
            r.completed_at,
        )
        for r in rows
    ]


def _vital_sign_chunks(patients: Any, since: Any, size: int) -> Iterator[list[dict[str, Any]]]:
    from kapclinic.sessions.models import Observation, ObservationKind

    qs = Observation.objects.filter(kind=ObservationKind.VITAL, session__patient__in=patients)
    if since is not None:  # a pair shares its time: both or neither are in the window
        qs = qs.filter(at__gte=since)
    rows = qs.order_by("session_id", "pk").values_list(*_VITAL_FIELDS, "session__patient_id", named=True)
    out: list[dict[str, Any]] = []
    session: list[Any] = []
    for row in rows.iterator(chunk_size=size * 2):
        if session and row.session_id != session[0].session_id:
            out.extend(_session_vitals(session))
            session = []
            if len(out) >= size:
                yield out
                out = []
        session.append(row)
    out.extend(_session_vitals(session))
    yield out


def _session_vitals(rows: list[Any]) -> list[dict[str, Any]]:
    """One session's vital-sign rows (by id) as resources, blood pressure paired as _vital_signs()."""
    from kapclinic.clinical.vitals import LOINC as VITAL_CODES
    from kapclinic.clinical.vitals import Vital

    sbp, dbp = VITAL_CODES[Vital.SBP].loinc, VITAL_CODES[Vital.DBP].loinc
    systolic: set[tuple[Any, Any]] = set()
    diastolic: dict[tuple[Any, Any], Any] = {}
    for row in rows:
        if row.code_system == fhir.LOINC:
            if row.code == sbp:
                systolic.add((row.reading, row.at))
            elif row.code == dbp:
                diastolic.setdefault((row.reading, row.at), row.value)  # the first by id
    out = []
    for row in rows:
        key = (row.reading, row.at)
        if row.code_system == fhir.LOINC and row.code == dbp and key in systolic:
            continue  # inside its systolic partner's panel
        out.append(
            _with_meta(fhir.vital_sign_resource(row, row.session__patient_id, diastolic.get(key)), row.at)
        )
    return out
