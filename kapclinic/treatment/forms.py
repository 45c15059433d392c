from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from kapclinic.clinical.protocols import UnknownProtocol, get_protocol, protocol_choices
from kapclinic.clinical.terminology import BY_ICD10, DIAGNOSIS_CODES
from kapclinic.core.forms import KapForm, choice_field
from kapclinic.treatment.models import Comparator, Modality

INSTRUMENTS = [("PHQ-9", "PHQ-9"), ("GAD-7", "GAD-7"), ("PCL-5", "PCL-5")]
MAX_TOTAL = {"PHQ-9": 27, "GAD-7": 21, "PCL-5": 80}  # instrument ranges, ref §4.1-4.3


class PlanForm(KapForm):
    indication = forms.ChoiceField(
        label="Indication (coded diagnosis)",
        choices=[("", "Choose…")] + [(c.icd10, f"{c.icd10} {c.description}") for c in DIAGNOSIS_CODES],
    )
    goals = forms.CharField(
        label="Goals, in the patient's own words", widget=forms.Textarea(attrs={"rows": 3}), max_length=4000
    )
    modality = forms.ChoiceField(label="Adjunct psychotherapy", choices=Modality.choices)
    modality_other = forms.CharField(label="If other, which", max_length=100, required=False)
    protocol = forms.ChoiceField(label="Protocol (from the protocol library)")
    dosing_sessions = forms.IntegerField(
        label="Dosing sessions in the series",
        required=False,
        min_value=1,
        max_value=24,
        help_text=(
            "Leave empty to use the protocol's series length; required when the protocol leaves it "
            "to the clinic."
        ),
    )
    sessions_per_week = forms.DecimalField(
        label="Dosing sessions per week",
        required=False,
        min_value=Decimal("0.5"),
        max_value=Decimal("3"),
        decimal_places=1,
        help_text="Leave empty to use the protocol's frequency.",
    )
    target_instrument = forms.ChoiceField(
        label="Measurable target: instrument", choices=INSTRUMENTS, initial="PHQ-9"
    )
    target_comparator = forms.ChoiceField(
        label="Target", choices=Comparator.choices, initial=Comparator.BELOW
    )
    target_value = forms.IntegerField(label="Target value", min_value=0, initial=10)
    target_timepoint = forms.CharField(label="When", max_length=120, initial="after the induction series")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choice_field(self, "protocol").choices = [("", "Choose…"), *protocol_choices()]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        code = data.get("indication")
        if code:
            data["indication_code"] = BY_ICD10[code]
        if data.get("modality") == Modality.OTHER and not data.get("modality_other", "").strip():
            self.add_error("modality_other", "Name the psychotherapy when you choose 'Other'.")
        key = data.get("protocol")
        if key:
            pid, _, version = key.partition("@")
            try:
                protocol = get_protocol(pid, version or None)
            except UnknownProtocol:
                self.add_error("protocol", "Choose a protocol from the library.")
                return data
            data["protocol_obj"] = protocol
            count = data.get("dosing_sessions") or protocol.sessions.count.value
            if not count:
                self.add_error(
                    "dosing_sessions",
                    f"The protocol '{protocol.title}' leaves the series length to the clinic; "
                    "enter the number of dosing sessions.",
                )
            data["dosing_count"] = count
            spw = data.get("sessions_per_week")
            if spw is None:
                phase = next((p for p in protocol.sessions.phases if p.sessions_per_week), None)
                spw = phase.sessions_per_week[0] if phase else None
            if spw is None:
                self.add_error(
                    "sessions_per_week",
                    f"The protocol '{protocol.title}' does not set a weekly frequency; "
                    "enter sessions per week.",
                )
            data["spw"] = spw
        comparator, value, instrument = (
            data.get("target_comparator"),
            data.get("target_value"),
            data.get("target_instrument"),
        )
        if value is not None and instrument:
            limit = 100 if comparator == Comparator.DROP_PERCENT else MAX_TOTAL[instrument]
            if value > limit:
                self.add_error(
                    "target_value", f"The target value must be between 0 and {limit} for {instrument}."
                )
        return data


class SignPlanForm(KapForm):
    version = forms.IntegerField(widget=forms.HiddenInput)
    protocol_rationale = forms.CharField(
        label="Rationale for the protocol-specific review items",
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
