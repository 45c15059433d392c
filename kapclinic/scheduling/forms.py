from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone

from kapclinic.core.actor import Actor
from kapclinic.policy import Action, visible_patients
from kapclinic.scheduling import selectors
from kapclinic.scheduling.models import Kind, Modality, ResourceKind


class PatientChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.display_name} ({obj.mrn})"


class AppointmentForm(forms.Form):
    patient = PatientChoice(queryset=None, label="Patient")
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
    staff = forms.ModelChoiceField(queryset=None, label="Clinician")
    modality = forms.ChoiceField(
        choices=Modality.choices, label="In person or video", initial=Modality.IN_PERSON
    )
    resource = forms.ModelChoiceField(
        queryset=None, required=False, label="Room or chair", empty_label="None"
    )
    admin_note = forms.CharField(
        label="Note for the front desk", required=False, max_length=200, help_text="No clinical detail."
    )
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, actor: Actor, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        clinic = actor.clinic
        self.fields["patient"].queryset = visible_patients(actor, Action.SCHEDULE).only(
            "pk", "legal_first_name", "legal_last_name", "preferred_name", "mrn"
        )
        self.fields["staff"].queryset = selectors.clinicians(clinic)
        self.fields["resource"].queryset = selectors.resources(clinic)
        if editing:
            del self.fields["patient"]
            del self.fields["kind"]

    def starts_at(self) -> dt.datetime:
        return dt.datetime.combine(
            self.cleaned_data["date"], self.cleaned_data["time"], tzinfo=timezone.get_current_timezone()
        )


class CancelForm(forms.Form):
    reason = forms.CharField(label="Reason for cancelling", max_length=200)
    version = forms.IntegerField(widget=forms.HiddenInput)


class ResourceForm(forms.Form):
    name = forms.CharField(label="Name", max_length=80)
    kind = forms.ChoiceField(choices=ResourceKind.choices, label="Kind")
