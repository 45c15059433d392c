from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone

from kapclinic.accounts.models import User
from kapclinic.core import dates
from kapclinic.core.actor import Actor
from kapclinic.core.forms import KapForm
from kapclinic.patients.models import Patient
from kapclinic.policy import Action, visible_patients
from kapclinic.scheduling import selectors
from kapclinic.scheduling.models import Kind, Modality, Resource, ResourceKind


class PatientChoice(forms.ModelChoiceField[Patient]):
    def label_from_instance(self, obj: Patient) -> str:
        return f"{obj.display_name} ({obj.mrn})"


def model_choice(form: forms.BaseForm, name: str) -> forms.ModelChoiceField[Any]:
    """The model choice field ``name`` of ``form``, so its queryset can be set per request (TypeError,
    a programming error, when it is not one)."""
    field = form.fields[name]
    if not isinstance(field, forms.ModelChoiceField):
        raise TypeError(f"Form field {name!r} is a {type(field).__name__}, not a ModelChoiceField.")
    return field


class AppointmentForm(KapForm):
    patient = PatientChoice(queryset=Patient.objects.none(), label="Patient")
    kind = forms.ChoiceField(choices=Kind.choices, label="Kind of appointment")
    date = forms.DateField(label="Date", widget=forms.DateInput(attrs={"type": "date"}))
    time = forms.TimeField(label="Start time", widget=forms.TimeInput(attrs={"type": "time", "step": 300}))
    minutes = forms.IntegerField(
        label="Length (minutes)",
        required=False,
        min_value=1,
        max_value=600,
        help_text=(
            "Leave empty for the usual length: preparation 60, dosing 180 (120 to 180), "
            "integration 60, follow-up 30."
        ),
    )
    staff: forms.ModelChoiceField[User] = forms.ModelChoiceField(
        queryset=User.objects.none(), label="Clinician"
    )
    modality = forms.ChoiceField(
        choices=Modality.choices, label="In person or video", initial=Modality.IN_PERSON
    )
    resource: forms.ModelChoiceField[Resource] = forms.ModelChoiceField(
        queryset=Resource.objects.none(), required=False, label="Room or chair", empty_label="None"
    )
    admin_note = forms.CharField(
        label="Note for the front desk", required=False, max_length=200, help_text="No clinical detail."
    )
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, actor: Actor, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        clinic = actor.clinic
        model_choice(self, "patient").queryset = visible_patients(actor, Action.SCHEDULE).only(
            "pk", "legal_first_name", "legal_last_name", "preferred_name", "mrn"
        )
        model_choice(self, "staff").queryset = selectors.clinicians(clinic)
        model_choice(self, "resource").queryset = selectors.resources(clinic)
        if editing:
            del self.fields["patient"]
            del self.fields["kind"]

    def clean_date(self) -> dt.date:
        day: dt.date = self.cleaned_data["date"]
        dates.check_scheduled("The date", day)
        return day

    def starts_at(self) -> dt.datetime:
        return dt.datetime.combine(
            self.cleaned_data["date"], self.cleaned_data["time"], tzinfo=timezone.get_current_timezone()
        )


class CancelForm(KapForm):
    reason = forms.CharField(label="Reason for cancelling", max_length=200)
    version = forms.IntegerField(widget=forms.HiddenInput)


class ResourceForm(KapForm):
    name = forms.CharField(label="Name", max_length=80)
    kind = forms.ChoiceField(choices=ResourceKind.choices, label="Kind")
