"""Billing forms (thin: services check the money rules and answer with sentences)."""

from __future__ import annotations

from typing import Any

from django import forms

from kapclinic.billing.models import AdjustmentKind, Method
from kapclinic.core.dates import browse_validator
from kapclinic.core.forms import KapForm
from kapclinic.scheduling.models import Kind

PAPER_CHOICES = [("Letter", "US Letter"), ("A4", "A4")]
DOC_CHOICES = [
    ("superbill", "Superbill"),
    ("statement", "Statement of account"),
    ("invoice", "Invoice / receipt"),
]


def _protocol_choices() -> list[tuple[str, str]]:
    from kapclinic.clinical.protocols.loader import all_protocols

    latest = {p.id: p.title for p in all_protocols()}
    return sorted(latest.items())


class MoneyField(forms.DecimalField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", 10)
        kwargs.setdefault("decimal_places", 2)
        super().__init__(**kwargs)


class FeeItemForm(KapForm):
    code = forms.CharField(max_length=12, help_text="CPT/HCPCS code, or your clinic's own code.")
    modifiers = forms.CharField(max_length=20, required=False, help_text="e.g. 95 (comma-separated)")
    description = forms.CharField(
        max_length=300,
        required=False,
        help_text="Only for a code not in the shipped code data: your wording.",
    )
    system = forms.ChoiceField(
        choices=[("LOCAL", "Clinic code"), ("CPT", "CPT"), ("HCPCS", "HCPCS")],
        required=False,
        help_text="Only for a code not in the shipped code data.",
    )
    price = MoneyField(min_value=0)
    appointment_kinds = forms.MultipleChoiceField(
        choices=Kind.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Proposed for completed visits of these kinds.",
    )
    protocols = forms.MultipleChoiceField(
        choices=[],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Dosing sessions only: the protocols it applies to (none: any).",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["protocols"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = _protocol_choices()


class FeeEditForm(KapForm):
    version = forms.IntegerField(widget=forms.HiddenInput)
    price = MoneyField(min_value=0)
    appointment_kinds = forms.MultipleChoiceField(
        choices=Kind.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    protocols = forms.MultipleChoiceField(choices=[], required=False, widget=forms.CheckboxSelectMultiple)
    active = forms.BooleanField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["protocols"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = _protocol_choices()


class PackageForm(KapForm):
    name = forms.CharField(max_length=120)
    sessions = forms.IntegerField(min_value=1, max_value=100)
    price = MoneyField(min_value=0)
    appointment_kinds = forms.MultipleChoiceField(
        choices=Kind.choices, required=False, widget=forms.CheckboxSelectMultiple
    )


class ProfileForm(KapForm):
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    legal_name = forms.CharField(max_length=200, required=False)
    organisation_npi = forms.CharField(label="Organisation NPI", max_length=10, required=False)
    tax_id = forms.CharField(label="Tax id (EIN)", max_length=20, required=False)
    billing_address = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    billing_phone = forms.CharField(
        max_length=40, required=False, widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"})
    )


class ProviderForm(KapForm):
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    credentials = forms.CharField(max_length=60, required=False, help_text="e.g. MD, PMHNP-BC, LCSW")
    licence_number = forms.CharField(max_length=40, required=False)
    licence_state = forms.CharField(max_length=40, required=False)
    npi = forms.CharField(label="Individual NPI", max_length=10, required=False)


class DraftForm(KapForm):
    version = forms.IntegerField(widget=forms.HiddenInput)
    units = forms.IntegerField(min_value=1, max_value=999)
    modifiers = forms.CharField(max_length=20, required=False)
    diagnosis_codes = forms.CharField(max_length=60, required=False, help_text="ICD-10 codes from the chart")
    pos = forms.ChoiceField(label="Place of service", choices=[("11", "11 Office"), ("02", "02 Telehealth")])
    unit_price = MoneyField(min_value=0)


class PaymentForm(KapForm):
    method = forms.ChoiceField(choices=Method.choices)
    amount = MoneyField(min_value=0)
    reference = forms.CharField(
        max_length=80, required=False, help_text="Card authorisation, cheque number or transfer id"
    )
    received_on = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


class RefundForm(KapForm):
    payment = forms.IntegerField(widget=forms.HiddenInput)
    method = forms.ChoiceField(choices=Method.choices)
    amount = MoneyField(min_value=0)
    reference = forms.CharField(max_length=80, required=False)


class AdjustForm(KapForm):
    line = forms.IntegerField(widget=forms.HiddenInput)
    kind = forms.ChoiceField(
        choices=[(AdjustmentKind.WRITE_OFF, "Write-off"), (AdjustmentKind.CORRECTION, "Correction")]
    )
    amount = MoneyField(help_text="Positive reduces what is owed; negative raises it (corrections only).")
    reason = forms.CharField(max_length=300)


class AccountForm(KapForm):
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    insurance_payer = forms.CharField(max_length=120, required=False)
    insurance_member_id = forms.CharField(max_length=40, required=False)


class DocumentForm(KapForm):
    """Which billing document, for which dates (or one session), on which paper."""

    start = forms.DateField(
        label="From",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[browse_validator("From")],
    )
    end = forms.DateField(
        label="To",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[browse_validator("To")],
    )
    session = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    paper = forms.ChoiceField(choices=PAPER_CHOICES, required=False)

    def __init__(self, *args: Any, kind: str = "superbill", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if (data.get("session") is None or self.kind != "superbill") and (start is None or end is None):
            raise forms.ValidationError("Choose the first and last date of service.")
        if start and end and start > end:
            raise forms.ValidationError("The first date is after the last date.")
        return data
