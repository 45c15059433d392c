"""The form of the patient-group page (docs/fhir-api.md#groups): name, description, the chosen members
(checkboxes the template draws from the picker) and the member search."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from kapclinic.core.forms import KapForm
from kapclinic.core.params import MAX_ID
from kapclinic.fhirapi.groups import MAX_MEMBERS


class IdListField(forms.Field):
    """Repeated `name=<id>` values (checkboxes) -> a list of row ids; anything else is refused."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[int]:
        values = value if isinstance(value, list | tuple) else ([value] if value else [])
        if len(values) > MAX_MEMBERS:
            raise ValidationError(f"A Group takes at most {MAX_MEMBERS} patients at once.")
        ids = []
        for raw in values:
            text = str(raw)
            if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_ID:
                raise ValidationError("Choose patients from the list.")
            ids.append(int(text))
        return ids


class GroupForm(KapForm):
    name = forms.CharField(max_length=120, error_messages={"required": "Give the group a name."})
    description = forms.CharField(
        max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="Optional."
    )
    members = IdListField(required=False)
    version = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=1, max_value=MAX_ID)


class PickerForm(KapForm):
    """The member search: a name or record number, and the page of matches."""

    q = forms.CharField(max_length=60, required=False, label="Find patients")
    page = forms.IntegerField(min_value=1, max_value=100_000, required=False)
