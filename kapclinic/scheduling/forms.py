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
from kapclinic.scheduling.services import kind_rules


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


#: At most a year of weekly appointments from one form.
MAX_WEEKLY_REPEAT = 52


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
    repeat = forms.IntegerField(
        label="Repeat weekly: how many appointments in all",
        required=False,
        min_value=1,
        max_value=MAX_WEEKLY_REPEAT,
        help_text=(
            "Leave empty for one appointment. With 4, the same time is booked 4 weeks in a row; "
            "a week that is not free is left out and says why."
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
        rules_ = kind_rules(clinic)
        self.fields["minutes"].help_text = (
            "Leave empty for the clinic's usual length: "
            + ", ".join(f"{rule.label.lower()} {rule.default_minutes}" for rule in rules_.values())
            + " minutes."
        )
        if editing:
            del self.fields["patient"]
            del self.fields["kind"]
            del self.fields["repeat"]

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


class SeriesSetupForm(forms.Form):
    """How to lay out a plan's series: the first date, a start time, who and where (issue 18)."""

    first = forms.DateField(
        label="Date of the first appointment",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The other dates follow the plan's spacing; you can change each one below.",
    )
    time = forms.TimeField(
        label="Start time", initial=dt.time(9, 0), widget=forms.TimeInput(attrs={"type": "time", "step": 300})
    )
    staff: forms.ModelChoiceField[User] = forms.ModelChoiceField(
        queryset=User.objects.none(), label="Clinician for preparation, integration and assessment"
    )
    dosing_staff: forms.ModelChoiceField[User] = forms.ModelChoiceField(
        queryset=User.objects.none(), label="Clinician for the dosing sessions"
    )
    room: forms.ModelChoiceField[Resource] = forms.ModelChoiceField(
        queryset=Resource.objects.none(), required=False, label="Room", empty_label="None"
    )
    chair: forms.ModelChoiceField[Resource] = forms.ModelChoiceField(
        queryset=Resource.objects.none(), required=False, label="Dosing chair", empty_label="None"
    )

    def __init__(self, *args: Any, actor: Actor, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        clinic = actor.clinic
        model_choice(self, "staff").queryset = selectors.clinicians(clinic)
        model_choice(self, "dosing_staff").queryset = selectors.clinicians(clinic)
        model_choice(self, "room").queryset = selectors.resources(clinic).filter(kind=ResourceKind.ROOM)
        model_choice(self, "chair").queryset = selectors.resources(clinic).filter(kind=ResourceKind.CHAIR)


class SeriesLineForm(forms.Form):
    """One proposed appointment of the series, as it will be booked."""

    book = forms.BooleanField(label="Book", required=False, initial=True)
    date = forms.DateField(label="Date", widget=forms.DateInput(attrs={"type": "date"}))
    time = forms.TimeField(label="Start time", widget=forms.TimeInput(attrs={"type": "time", "step": 300}))
    staff: forms.ModelChoiceField[User] = forms.ModelChoiceField(
        queryset=User.objects.none(), label="Clinician"
    )
    resource: forms.ModelChoiceField[Resource] = forms.ModelChoiceField(
        queryset=Resource.objects.none(), required=False, label="Room or chair", empty_label="None"
    )

    def __init__(self, *args: Any, actor: Actor, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        model_choice(self, "staff").queryset = selectors.clinicians(actor.clinic)
        model_choice(self, "resource").queryset = selectors.resources(actor.clinic)

    def starts_at(self) -> dt.datetime:
        return dt.datetime.combine(
            self.cleaned_data["date"], self.cleaned_data["time"], tzinfo=timezone.get_current_timezone()
        )


class KindMinutesForm(forms.Form):
    """The clinic's default length per appointment kind; the booking form uses it when left empty."""

    def __init__(self, *args: Any, clinic: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for key, rule in kind_rules(clinic).items():
            self.fields[key] = forms.IntegerField(
                label=f"{rule.label} (minutes)",
                required=False,
                min_value=1,
                max_value=600,
                initial=rule.default_minutes,
                help_text=f"Between {rule.min_minutes} and {rule.max_minutes}.",
            )
