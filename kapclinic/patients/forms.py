from __future__ import annotations

from typing import Any

from django import forms

from kapclinic.clinical.terminology import DIAGNOSIS_CODES
from kapclinic.core import dates
from kapclinic.core.forms import KapForm, KapModelForm
from kapclinic.patients.models import DrugClass, Patient
from kapclinic.patients.services import DEMOGRAPHIC_FIELDS


class DemographicsForm(KapModelForm):
    version = forms.IntegerField(widget=forms.HiddenInput)

    class Meta:
        model = Patient
        fields = list(DEMOGRAPHIC_FIELDS)
        widgets = {
            "date_of_birth": forms.DateInput(attrs={"type": "date"}),
            "address": forms.Textarea(attrs={"rows": 2}),
            # Staff type the patient's details: the right keyboard on a phone, no autofill of their own.
            "email": forms.EmailInput(attrs={"autocomplete": "off"}),
            "phone": forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
            "emergency_contact_phone": forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and "version" not in self.initial:
            self.initial["version"] = self.instance.version

    def clean_date_of_birth(self) -> Any:
        dob = self.cleaned_data["date_of_birth"]
        dates.check_birth_date("Date of birth", dob)
        return dob


class NewPatientForm(DemographicsForm):
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta(DemographicsForm.Meta):
        fields = [f for f in DemographicsForm.Meta.fields if f != "pathway_status"]


class DiagnosisForm(KapForm):
    code = forms.ChoiceField(
        label="Diagnosis (ICD-10-CM)",
        choices=[(c.icd10, f"{c.icd10} — {c.description}") for c in DIAGNOSIS_CODES],
    )


class MedicationForm(KapForm):
    name = forms.CharField(max_length=120)
    dose = forms.CharField(max_length=80, required=False, help_text="For example: 20 mg once daily")
    drug_class = forms.ChoiceField(choices=DrugClass.choices, label="Class (drives interaction flags)")


class AllergyForm(KapForm):
    substance = forms.CharField(max_length=120)
    reaction = forms.CharField(max_length=200, required=False)


class CareTeamForm(KapForm):
    user = forms.ChoiceField(label="Staff member")

    def __init__(self, *args: Any, staff: list[tuple[str, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["user"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = staff or []
