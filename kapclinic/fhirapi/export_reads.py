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

from kapclinic.fhirapi.resources import VITAL_SIGNS, Spec, _with_meta, prefetch
from kapclinic.interop import fhir

_VITAL_FIELDS = (
    "pk", "session_id", "code_system", "code", "display", "value", "unit", "at", "reading",
    "recorded_by_id",
)  # fmt: skip


def chunks(spec: Spec, patients: Any, since: Any, grant: Any, size: int) -> Iterator[list[dict[str, Any]]]:
    """The spec's resources of the given patients (updated since `since`), about `size` at a time."""
    if spec is VITAL_SIGNS:
        yield from _vital_sign_chunks(patients, since, size)
        return
    qs = spec.queryset().filter(**{f"{spec.patient_field}__in": patients})
    if since is not None:
        qs = qs.filter(**{f"{spec.updated_field}__gte": since})
    qs = qs.order_by("pk").prefetch_related(*prefetch(spec))
    batch: list[Any] = []
    for row in qs.iterator(chunk_size=size):
        batch.append(row)
        if len(batch) == size:
            yield spec.render(batch, grant)
            batch = []
    yield spec.render(batch, grant)


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
