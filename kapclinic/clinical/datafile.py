"""Declared data files: the pydantic base model and field types the loaders in ``clinical/`` share.

Protocols, eligibility rule sets and instruments are JSON files.  Each loader declares the file's shape
as pydantic models (strict: unknown keys refused, frozen, exact numbers written as strings) and maps the
validated document onto the typed dataclasses the rest of the code uses.  A malformed file is refused
with every problem named by its field path (``sessions.phases[2].sessions_per_week[0]: ...``).  pydantic
is not Django: this module, like the rest of ``clinical/``, imports nothing from the web layer.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Annotated, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainValidator, StrictStr, ValidationError
from pydantic_core import ErrorDetails

from kapclinic.clinical.dosing import Quantity, QuantityError

QT = TypeVar("QT", bound=Quantity)

DECIMAL_AS_TEXT = 'numbers are written as strings (e.g. "0.5") to keep them exact'


class DataModel(BaseModel):
    """Base of every declared data-file model: unknown keys are errors and parsed values never change."""

    # defer_build: the validators are built when the first file is read, not when clinical/ is imported.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def decimal_from_text(value: object) -> Decimal:
    """An exact number written as a JSON string; a JSON number (a binary float once decoded) is refused."""
    if not isinstance(value, str):
        raise ValueError(DECIMAL_AS_TEXT)
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return number


def quantity_from_text(cls: type[QT]) -> Callable[[object], QT]:
    """Validator building the unit-typed quantity ``cls`` from a number string."""

    def build(value: object) -> QT:
        try:
            return cls(decimal_from_text(value))
        except QuantityError as exc:
            raise ValueError(str(exc)) from None

    return build


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a non-empty string")
    return value


#: An exact decimal number, written as a string in the file.
DecimalText = Annotated[Decimal, PlainValidator(decimal_from_text)]
#: A string with at least one non-blank character.
Text = Annotated[StrictStr, AfterValidator(_non_empty)]


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("sessions", "phases", 2, "dose")`` -> ``sessions.phases[2].dose``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(file)"


def _message(error: ErrorDetails) -> str:
    ctx = error.get("ctx") or {}
    if error["type"] in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])  # our own sentence, without pydantic's "Value error, " prefix
    if error["type"] == "extra_forbidden":
        return "unknown key (not part of the file format)"
    if error["type"] == "missing":
        return "required key is missing"
    return error["msg"]


def describe(exc: ValidationError) -> str:
    """Every problem of a validation failure, each as ``field.path[i]: sentence``, joined by ``; ``."""
    return "; ".join(f"{field_path(e['loc'])}: {_message(e)}" for e in exc.errors())
