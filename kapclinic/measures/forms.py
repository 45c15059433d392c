from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from django import forms

from kapclinic.clinical.instruments import Instrument
from kapclinic.core import dates
from kapclinic.core.forms import KapForm
from kapclinic.measures.models import AlertAction, MeasurementSchedule, SafetyPlan


class InstrumentForm(KapForm):
    """One radio group per item, labelled with the exact item wording from the data file."""

    def __init__(
        self,
        instrument: Instrument,
        *args: Any,
        paper: bool = False,
        birth_date: dt.date | None = None,
        submission: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.instrument = instrument
        self.birth_date = birth_date
        if submission:
            # One response per form instance: the token is stored with the response (unique per patient).
            self.fields["submission"] = forms.RegexField(
                regex=r"^[0-9a-f]{32}$", required=False, widget=forms.HiddenInput
            )
            if not self.is_bound:
                self.initial["submission"] = secrets.token_hex(16)
        for item in instrument.items:
            self.fields[f"item_{item.number}"] = forms.TypedChoiceField(
                label=f"{item.number}. {item.text}",
                choices=[(o.score, o.label) for o in item.options],
                coerce=int,
                widget=forms.RadioSelect,
                required=item.scored,
                empty_value=None,
                error_messages={
                    "required": f"Item {item.number} needs an answer.",
                    "invalid_choice": f"Item {item.number}: %(value)s is not one of the listed answers.",
                },
            )
        if paper:
            self.fields["completed_on"] = forms.DateField(
                label="Date the paper form was completed",
                widget=forms.DateInput(attrs={"type": "date"}),
                error_messages={"required": "Date completed is required for a paper form."},
            )

    def clean_completed_on(self) -> Any:
        value = self.cleaned_data.get("completed_on")
        if value is not None:
            dates.check_service_date("Date completed", value, self.birth_date)
        return value

    def answers(self) -> list[int | None]:
        return [self.cleaned_data.get(f"item_{item.number}") for item in self.instrument.items]

    def item_fields(self) -> list[Any]:
        return [self[f"item_{item.number}"] for item in self.instrument.items]


class AcknowledgeForm(KapForm):
    action = forms.ChoiceField(
        label="Action taken",
        choices=[("", "Choose…"), *AlertAction.choices],
        error_messages={"required": "Action taken: choose what you did about this alert."},
    )
    note = forms.CharField(
        label="Note (required for “Other”)",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("action") == AlertAction.OTHER and not (data.get("note") or "").strip():
            self.add_error("note", "Note: describe the action you took when you choose “Other”.")
        return data


class SafetyPlanForm(forms.ModelForm[SafetyPlan]):
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = SafetyPlan
        fields = SafetyPlan.SECTIONS
        widgets = {f: forms.Textarea(attrs={"rows": 3}) for f in SafetyPlan.SECTIONS}
        help_texts = {
            "warning_signs": "Thoughts, moods, situations or behaviours that show a crisis may be near.",
            "coping_strategies": "Things the patient can do alone to take their mind off problems.",
            "people_and_places": "Names and numbers of people, and places, for distraction or help.",
            "professionals_and_crisis_lines": "Clinicians, the clinic, 988 and local emergency numbers.",
            "making_environment_safe": "Steps to limit access to means of harm.",
        }


class ScheduleForm(forms.ModelForm[MeasurementSchedule]):
    class Meta:
        model = MeasurementSchedule
        fields = [
            "active",
            "at_intake",
            "before_each_dosing",
            "induction_every_days",
            "maintenance_every_days",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in ("induction_every_days", "maintenance_every_days"):
            value = data.get(name)
            if value is not None and not 1 <= value <= 365:
                self.add_error(name, f"{self.fields[name].label}: enter a number of days from 1 to 365.")
        return data
