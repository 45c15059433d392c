"""Typed access to a form's fields (``form.fields[name]`` is typed as the base ``Field``)."""

from __future__ import annotations

from django import forms


def choice_field(form: forms.BaseForm, name: str) -> forms.ChoiceField:
    """The choice field ``name`` of ``form``, so its choices can be set per request.

    Raises TypeError (a programming error) when the field is not a choice field."""
    field = form.fields[name]
    if not isinstance(field, forms.ChoiceField):
        raise TypeError(f"Form field {name!r} is a {type(field).__name__}, not a ChoiceField.")
    return field
