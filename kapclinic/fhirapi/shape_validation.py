"""Validation per shape, not per resource, for the Bulk export (docs/fhir-api.md#bulk-data).

Every exported resource is validated before it is written, but cheaply. The export's resources come
from fixed builders (kapclinic/interop/fhir.py), so they fall into a handful of shapes. A resource's
*structural signature* is its nested keys, its list lengths and the Python type of each leaf. The
fhir.resources models check, beyond each primitive value on its own, only things the signature fixes:
unknown keys (extra="forbid"), required elements, one-of-many choices, no None inside lists. So for
resources of one signature, validity depends only on each leaf value checked with its FHIR primitive
type, plus the values of the leaves whose FHIR type is `code` (and `resourceType`), which carry the
required value-set bindings: those values are part of the key, never checked on their own.

- The first resource of each (signature, code values) is validated fully with `model_validate`.
- On the first full validation of a signature, the validated model instance is walked along the
  resource to find, for each leaf, the pydantic type its field declares (fhir_core's Annotated
  primitive types: DateTime, Instant, Id, Uri, String, Decimal, UnsignedInt...). One TypeAdapter per
  primitive type is cached; it runs fhir_core's own regex and checks.
- A later resource of a known signature and known code values: each other leaf is validated with its
  type's adapter (a value already accepted by that adapter, for that Python type, is not checked again;
  the memory is bounded).
- A leaf that cannot be mapped (None, a field that is not a primitive, an unknown alias) leaves the
  signature without a plan: every resource of it is validated fully. Nothing is ever skipped.

A resource that fails raises pydantic's ValidationError (full validation) or ValidationError from the
primitive's adapter, as full validation would have for the same value.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from typing import Any

from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import Code
from pydantic import TypeAdapter

SEEN_LIMIT = 256  # values remembered per (field, Python type) as accepted (constants mostly)
CODES_LIMIT = 1024  # code-value combinations remembered per signature as validated fully

_LIST = "[]"  # marker opening a list's signature (dict signatures are tuples of (key, signature) pairs)


class Unmappable(Exception):
    """A leaf whose FHIR primitive type cannot be found: the signature is always validated fully."""


def _flatten(obj: dict[str, Any], leaves: list[Any]) -> tuple[Any, ...]:
    """A dict's signature; its leaves appended in order (leaves inline: one call per dict or list)."""
    out: list[Any] = []
    for key, value in obj.items():
        kind = type(value)
        if kind is dict:
            out.append((key, _flatten(value, leaves)))
        elif kind is list:
            out.append((key, _flatten_list(value, leaves)))
        else:
            leaves.append(value)
            out.append((key, kind))
    return tuple(out)


def _flatten_list(obj: list[Any], leaves: list[Any]) -> tuple[Any, ...]:
    out: list[Any] = [_LIST]
    for value in obj:
        kind = type(value)
        if kind is dict:
            out.append(_flatten(value, leaves))
        elif kind is list:
            out.append(_flatten_list(value, leaves))
        else:
            leaves.append(value)
            out.append(kind)
    return tuple(out)


def signature(resource: dict[str, Any]) -> tuple[Any, list[Any]]:
    """(structural signature, leaf values in the signature's order)."""
    leaves: list[Any] = []
    return _flatten(resource, leaves), leaves


@dataclass
class _Check:
    primitive: Any  # the field's annotation (kept alive: its id is the cache key)
    validate: Any  # TypeAdapter(primitive).validate_python
    seen: set[Any] = field(default_factory=set)


@dataclass
class _Plan:
    checks: list[_Check | None]  # None: a value leaf (its value is in `codes`)
    value_positions: tuple[int, ...]
    codes: set[tuple[Any, ...]] = field(default_factory=set)


_ADAPTERS: dict[tuple[int, type], _Check] = {}  # by (id of the field's annotation, Python type)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The primitive type of a field (Optional and List removed) and whether it is a list."""
    many = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Union or origin is types.UnionType:
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                raise Unmappable(str(annotation))
            annotation = args[0]
        elif origin is list:
            many = True
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation, many


def _leaf(annotation: Any, python_type: type) -> _Check | None:
    primitive, _ = _unwrap(annotation)
    if typing.get_origin(primitive) is not typing.Annotated:
        if primitive not in (bool, str, int):
            raise Unmappable(str(primitive))
    elif any(isinstance(meta, Code) for meta in typing.get_args(primitive)[1:]):
        return None  # a code: its value is part of the key
    key = (id(primitive), python_type)
    check = _ADAPTERS.get(key)
    if check is None:
        check = _ADAPTERS[key] = _Check(primitive, TypeAdapter(primitive).validate_python)
    return check


def _aliases(model: type[FHIRAbstractModel]) -> dict[str, str]:
    return {(info.alias or name): name for name, info in model.model_fields.items()}


def _walk(value: Any, instance: Any, annotation: Any, checks: list[_Check | None]) -> None:
    """Append, in _flatten's order, the check of each leaf under `value` (the validated `instance`)."""
    kind = type(value)
    if kind is dict:
        if not isinstance(instance, FHIRAbstractModel):
            raise Unmappable(type(instance).__name__)
        model = type(instance)
        aliases = _aliases(model)
        for key, item in value.items():
            if key == "resourceType":
                checks.append(None)
                continue
            name = aliases.get(key)
            if name is None:
                raise Unmappable(key)
            _walk(item, getattr(instance, name), model.model_fields[name].annotation, checks)
    elif kind is list:
        if not isinstance(instance, list) or len(instance) != len(value):
            raise Unmappable("list")
        item_annotation = _unwrap(annotation)[0]
        for item, sub in zip(value, instance, strict=True):
            _walk(item, sub, item_annotation, checks)
    elif value is None:
        raise Unmappable("None")
    else:
        checks.append(_leaf(annotation, kind))


class ShapeValidator:
    """One export's memory of shapes (a fresh one per run keeps memory bounded)."""

    def __init__(self) -> None:
        self.plans: dict[tuple[type[FHIRAbstractModel], Any], _Plan | None] = {}
        self.full = 0  # full validations (for the report and the tests)
        self.cheap = 0

    def validate(self, resource: dict[str, Any], model: type[FHIRAbstractModel]) -> None:
        sig, leaves = signature(resource)
        key = (model, sig)
        if key not in self.plans:
            self.plans[key] = self._plan(resource, model, len(leaves))
            return
        plan = self.plans[key]
        if plan is None:
            self.full += 1
            model.model_validate(resource)
            return
        codes = tuple([leaves[i] for i in plan.value_positions])
        if codes not in plan.codes:
            self.full += 1
            model.model_validate(resource)
            if len(plan.codes) >= CODES_LIMIT:
                plan.codes.clear()
            plan.codes.add(codes)
            return
        self.cheap += 1
        for value, check in zip(leaves, plan.checks, strict=True):
            if check is None:
                continue
            seen = check.seen
            if value in seen:
                continue
            check.validate(value)
            if len(seen) >= SEEN_LIMIT:
                seen.clear()
            seen.add(value)

    def _plan(self, resource: dict[str, Any], model: type[FHIRAbstractModel], n: int) -> _Plan | None:
        self.full += 1
        instance = model.model_validate(resource)  # raises for a malformed resource
        checks: list[_Check | None] = []
        try:
            _walk(resource, instance, None, checks)
        except Unmappable:
            return None
        if len(checks) != n:
            return None
        positions = tuple(i for i, check in enumerate(checks) if check is None)
        leaves = signature(resource)[1]
        return _Plan(checks, positions, {tuple(leaves[i] for i in positions)})
