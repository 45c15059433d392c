"""Validation per shape (kapclinic/fhirapi/shape_validation.py): on a shape already validated, a resource
is refused exactly when fhir.resources' full validation refuses it."""

from __future__ import annotations

import copy
import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kapclinic.fhirapi.shape_validation import ShapeValidator
from kapclinic.interop import fhir

AT = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)


def _vital(pk: int = 7, code: str = "8867-4", value: int = 72, diastolic: Any = None) -> dict[str, Any]:
    row = SimpleNamespace(pk=pk, session_id=3, code_system=fhir.LOINC, code=code, display="x", value=value,
                          unit="/min", at=AT, reading=1, recorded_by_id=5)  # fmt: skip
    resource = fhir.vital_sign_resource(row, 11, diastolic)
    resource["meta"] = {**resource.get("meta", {}), "lastUpdated": fhir.iso(AT)}
    return resource


def _encounter() -> dict[str, Any]:
    session = SimpleNamespace(pk=4, state="discharged", first_dose_at=AT, checked_in_at=AT, scheduled_for=AT,
                              discharged_at=AT, aborted_at=None, patient_id=11, clinic_id=2,
                              appointment_id=9)  # fmt: skip
    return fhir.encounter_resource(session)


OBSERVATION = get_fhir_model_class("Observation")
ENCOUNTER = get_fhir_model_class("Encounter")


def _full_accepts(resource: dict[str, Any], model: Any) -> bool:
    try:
        model.model_validate(resource)
    except (ValidationError, ValueError):
        return False
    return True


def _cheap_accepts(validator: ShapeValidator, resource: dict[str, Any], model: Any) -> bool:
    try:
        validator.validate(resource, model)
    except (ValidationError, ValueError):
        return False
    return True


def _warm(*resources: dict[str, Any], model: Any = OBSERVATION) -> ShapeValidator:
    validator = ShapeValidator()
    for resource in resources:
        validator.validate(resource, model)
    return validator


def test_a_valid_resource_passes_and_later_ones_are_checked_cheaply() -> None:
    validator = _warm(_vital())
    for pk in range(8, 40):
        validator.validate(_vital(pk=pk, value=60 + pk), OBSERVATION)
    validator.validate(_vital(code="8480-6", value=120, diastolic=80), OBSERVATION)  # a new shape: full
    assert validator.full == 2 and validator.cheap == 32


@pytest.mark.parametrize(
    ("change", "model"),
    [
        (lambda r: r.update(effectiveDateTime="2026-13-02T09:30:00+00:00"), OBSERVATION),  # bad dateTime
        (lambda r: r["meta"].update(lastUpdated="2026-11-02"), OBSERVATION),  # an instant needs a time
        (lambda r: r.update(status=" final"), OBSERVATION),  # code with leading whitespace
        (lambda r: r.update(status="final\n"), OBSERVATION),
        (lambda r: r.update(id="v" * 300), OBSERVATION),  # id too long
        (lambda r: r.update(id="vs 7"), OBSERVATION),  # id with a space
        (lambda r: r.update(unknownElement="x"), OBSERVATION),  # unknown key
        (lambda r: r.pop("status"), OBSERVATION),  # a missing required element
        (lambda r: r.pop("code"), OBSERVATION),
        (lambda r: r["subject"].update(reference=""), OBSERVATION),  # empty string
        (lambda r: r["category"][0]["coding"].append(None), OBSERVATION),  # None inside a list
        (lambda r: r.update(valueString="x"), OBSERVATION),  # two choices of value[x]
        (lambda r: r["period"].update(end="yesterday"), ENCOUNTER),
    ],
)
def test_an_invalid_resource_on_a_cached_shape_is_refused_like_full_validation(
    change: Any, model: Any
) -> None:
    make = _vital if model is OBSERVATION else _encounter
    validator = _warm(make(), make(), model=model)
    bad = make()
    change(bad)
    with pytest.raises((ValidationError, ValueError)):
        model.model_validate(bad)
    with pytest.raises((ValidationError, ValueError)):
        validator.validate(bad, model)
    validator.validate(make(), model)  # the shape is still good for valid ones


@pytest.mark.parametrize(
    ("change", "model"),
    [
        # fhir.resources 8 (R4B) does not enforce the required value sets of status (its enum_values are
        # documentation), coerces "72" to a decimal, takes None for an optional element and checks uri
        # with an unanchored \\S*: full validation accepts these, and so does the cheap check.
        (lambda r: r.update(status="done"), OBSERVATION),  # outside its value set
        (lambda r: r["valueQuantity"].update(value="72"), OBSERVATION),  # a string where a decimal goes
        (lambda r: r["valueQuantity"].update(value=None), OBSERVATION),
        (lambda r: r.update(status="unknown-status"), ENCOUNTER),
        (lambda r: r["class"].update(system="has space"), ENCOUNTER),  # uri
    ],
)
def test_what_full_validation_accepts_on_a_cached_shape_is_accepted(change: Any, model: Any) -> None:
    make = _vital if model is OBSERVATION else _encounter
    validator = _warm(make(), make(), model=model)
    fine = make()
    change(fine)
    model.model_validate(fine)
    validator.validate(fine, model)


def test_a_code_value_never_seen_is_validated_fully() -> None:
    validator = _warm(_vital())
    full = validator.full
    validator.validate(_vital(code="9279-1"), OBSERVATION)  # another LOINC code: its value set is checked
    assert validator.full == full + 1


_STRINGS = st.one_of(
    st.sampled_from(["", " ", "final", "fin al", " final", "2026-11-02", "2026-11-02T09:30:00+00:00",
                     "2026-02-30T00:00:00Z", "a" * 300,
                     "2026-11-02T25:00:00+00:00", "Patient/p1", "vs7", "a" * 70, "http://loinc.org", "x y",
                     "mm[Hg]", "registered", "amended", "+"]),
    st.text(max_size=8),
)  # fmt: skip
_LEAVES = st.one_of(
    _STRINGS, st.integers(-5, 5), st.floats(allow_nan=False, width=32), st.booleans(), st.none()
)


def _paths(resource: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(resource, dict):
        return [p for k, v in resource.items() for p in _paths(v, (*prefix, k))]
    if isinstance(resource, list):
        return [p for i, v in enumerate(resource) for p in _paths(v, (*prefix, i))]
    return [prefix]


def _set(resource: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        resource = resource[step]
    resource[path[-1]] = value


BASES = [
    (_vital(), OBSERVATION),
    (_vital(code="8480-6", value=120, diastolic=80), OBSERVATION),
    (_vital(code="8462-4", value=80), OBSERVATION),
    (_encounter(), ENCOUNTER),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(BASES), data=st.data())
def test_cheap_check_accepts_iff_full_validation_accepts(base: Any, data: Any) -> None:
    resource, model = base
    validator = _warm(resource, copy.deepcopy(resource), model=model)
    varied = copy.deepcopy(resource)
    paths = _paths(varied)
    for path in data.draw(st.lists(st.sampled_from(paths), max_size=3, unique=True)):
        _set(varied, path, data.draw(_LEAVES))
    if data.draw(st.booleans()):
        varied.pop(data.draw(st.sampled_from(sorted(varied))))
    assert _cheap_accepts(validator, varied, model) == _full_accepts(varied, model)
