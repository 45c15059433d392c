"""Request parameters are parsed here, never with ``int()`` or ``date.fromisoformat()`` on raw input.

Every query parameter and form field a view reads goes through a Django form field: ``param()`` cleans
one value of ``request.GET``/``request.POST`` with a field and answers 400 with a sentence naming the
parameter when it is not valid (``BadParameter``, shown by ``core.views.error_400``). Ids are checked
against the range of the primary key (``IdField``), so a 20-digit id is refused instead of reaching the
database."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import BadRequest, ValidationError
from django.http import QueryDict

MAX_ID = 2**63 - 1  # the largest BigAutoField value (settings.DEFAULT_AUTO_FIELD)


class BadParameter(BadRequest):
    """A query parameter or posted value that is not valid; its str() is a sentence for the user."""


class IdField(forms.IntegerField):
    """A row id: a whole number from 1 to the largest primary key."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)


def param(data: QueryDict, name: str, field: forms.Field, label: str | None = None) -> Any:
    """The value of ``name`` in ``data`` cleaned by ``field`` (None when absent or empty and the field is
    not required). Raises BadParameter with a sentence naming the parameter when it is not valid."""
    raw = data.get(name)
    try:
        if raw in (None, "") and not field.required:
            return None
        return field.clean(raw)
    except ValidationError as exc:
        reason = " ".join(exc.messages)
        raise BadParameter(f"The {label or name!s} parameter is not valid: {reason}") from None


def id_param(data: QueryDict, name: str, label: str | None = None) -> int | None:
    """An optional row id from ``data`` (see ``IdField``)."""
    value: int | None = param(data, name, IdField(required=False), label)
    return value
