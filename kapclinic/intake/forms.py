from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django import forms

from kapclinic.clinical.eligibility import classify_medication, load_rule_set
from kapclinic.clinical.eligibility.chart_medications import RULESET_TO_CHART, classify_chart_medication
from kapclinic.clinical.eligibility.ruleset import Question
from kapclinic.clinical.vitals import Reading, check_plausible
from kapclinic.core import dates
from kapclinic.core.forms import KapForm, KapModelForm, choice_field
from kapclinic.intake.models import Assessment, ContactTime, DecisionChoice, Tri
from kapclinic.intake.services import ASSESSMENT_FORM_FIELDS
from kapclinic.patients.models import DrugClass

TRI_CHOICES = [("yes", "Yes"), ("no", "No"), ("unknown", "Not sure")]
CLINICIAN_TRI = [("yes", "Yes"), ("no", "No"), ("unknown", "Not known yet")]

# Entry-error bounds (ENGINEERING, not clinical, not from the reference): they only catch typos such as
# weight 0 or 900 kg. BP/HR/SpO2 bounds come from kapclinic.clinical.vitals.
WEIGHT_KG = (Decimal("20"), Decimal("350"))
HEIGHT_CM = (Decimal("100"), Decimal("250"))
TRIALS = (0, 30)
BENZO_DZ_EQ = (Decimal("0"), Decimal("500"))


class InquiryForm(KapForm):
    # The person's own details: the autocomplete tokens let a phone fill them in (WCAG 1.3.5).
    name = forms.CharField(
        label="Your name", max_length=200, widget=forms.TextInput(attrs={"autocomplete": "name"})
    )
    email = forms.EmailField(
        label="Email", required=False, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    phone = forms.CharField(
        label="Phone",
        max_length=40,
        required=False,
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"}),
    )
    preferred_contact_time = forms.ChoiceField(
        label="When is a good time to reach you?", choices=ContactTime.choices, initial=ContactTime.ANY
    )
    message = forms.CharField(
        label="What are you struggling with? (optional; a sentence or two is enough)",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    consent_to_contact = forms.BooleanField(
        label="I agree that the clinic may contact me by the phone number or email I gave.",
        required=True,
        error_messages={
            "required": "Please tick the box so that we may contact you; without it we cannot reply."
        },
    )
    # Honeypot: hidden from people (CSS + aria-hidden), filled in by bots.
    website = forms.CharField(label="Leave this field empty", required=False)
    token = forms.CharField(widget=forms.HiddenInput)

    def clean_phone(self) -> str:
        phone = str(self.cleaned_data.get("phone", "")).strip()
        if phone and sum(ch.isdigit() for ch in phone) < 7:
            raise forms.ValidationError("The phone number needs at least 7 digits.")
        return phone

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("email") and not data.get("phone"):
            raise forms.ValidationError("Give an email address or a phone number so that we can reply.")
        return data


class ConvertForm(KapForm):
    legal_first_name = forms.CharField(max_length=100)
    legal_last_name = forms.CharField(max_length=100)
    date_of_birth = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    # Staff type someone else's details: the right keyboard, no autofill of their own.
    email = forms.EmailField(required=False, widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    phone = forms.CharField(
        max_length=40,
        required=False,
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
    )
    # After candidates are shown the human chooses: "new" or the id of the matching record.
    match = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean_date_of_birth(self) -> dt.date:
        dob: dt.date = self.cleaned_data["date_of_birth"]
        dates.check_birth_date("Date of birth", dob)
        return dob


def _patient_questions() -> list[Question]:
    return [q for q in load_rule_set().questions if q.asked_of == "patient"]


class QuestionnaireForm(KapForm):
    """The patient's intake questionnaire, built from the rule set's patient-worded questions."""

    version = forms.IntegerField(widget=forms.HiddenInput)
    notes = forms.CharField(
        label="Anything else you would like your care team to know (optional)",
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    SECTION_TITLES = {
        "medical": "Your physical health",
        "psychiatric": "Your mental health history",
        "substance": "Alcohol and drugs",
        "reproductive": "Pregnancy and breastfeeding",
        "medications": "Medicines",
    }

    def __init__(self, *args: Any, answers: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        answers = answers or {}
        for q in _patient_questions():
            self.fields[f"q_{q.id}"] = forms.ChoiceField(
                label=q.patient_text,
                choices=TRI_CHOICES,
                widget=forms.RadioSelect,
                initial=answers.get(q.id),
                error_messages={"required": "Please choose Yes, No or Not sure."},
            )
        self.sections = [
            (title, [self[f"q_{q.id}"] for q in _patient_questions() if q.section == key])
            for key, title in self.SECTION_TITLES.items()
        ]

    def answers(self) -> dict[str, str]:
        return {q.id: self.cleaned_data[f"q_{q.id}"] for q in _patient_questions()}


class AssessmentForm(KapModelForm):
    version = forms.IntegerField(widget=forms.HiddenInput)

    class Meta:
        model = Assessment
        fields = list(ASSESSMENT_FORM_FIELDS)
        widgets = {
            "psychiatric_history": forms.Textarea(attrs={"rows": 3}),
            "substance_use_history": forms.Textarea(attrs={"rows": 3}),
            "prior_treatment_notes": forms.Textarea(attrs={"rows": 2}),
        }
        labels = {
            "psychiatric_history": (
                "Psychiatric history (psychosis, mania, suicide attempts, hospitalisations)"
            ),
            "medications_reviewed": "Current medication list reviewed with the patient",
        }

    SECTION_TITLES = {
        "medical": "Medical history (label contraindications and precautions, ref §3.1-3.3)",
        "psychiatric": "Psychiatric history (ref §3.2, §3.4)",
        "substance": "Substance use (ref §3.2, §3.4)",
        "reproductive": "Pregnancy and breastfeeding (ref §3.2)",
        "medications": "Medication-related (ref §3.6)",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial.setdefault("version", self.instance.version)
        answers = self.instance.answers or {}
        rs = load_rule_set()
        for q in rs.questions:
            self.fields[f"q_{q.id}"] = forms.ChoiceField(
                label=q.label,
                choices=CLINICIAN_TRI,
                widget=forms.RadioSelect,
                initial=answers.get(q.id, "unknown"),
                required=True,
            )
        for name in ("prior_psychotherapy", "prior_ect", "prior_tms", "medications_reviewed"):
            choice_field(self, name).choices = Tri.choices
        self.sections = [
            (title, [self[f"q_{q.id}"] for q in rs.questions if q.section == key])
            for key, title in self.SECTION_TITLES.items()
        ]
        self.patient_answers = self.instance.patient_answers or {}

    def _bounded(self, name: str, low: Any, high: Any, label: str, unit: str) -> Any:
        value = self.cleaned_data.get(name)
        if value is not None and not (low <= value <= high):
            raise forms.ValidationError(
                f"{label} of {value} {unit} is outside the plausible range {low}–{high} {unit}; "
                "check the value and re-enter it."
            )
        return value

    def clean_weight_kg(self) -> Any:
        return self._bounded("weight_kg", *WEIGHT_KG, "Weight", "kg")

    def clean_height_cm(self) -> Any:
        return self._bounded("height_cm", *HEIGHT_CM, "Height", "cm")

    def clean_adequate_failed_trials(self) -> Any:
        return self._bounded(
            "adequate_failed_trials", *TRIALS, "The number of adequate failed trials", "trials"
        )

    def clean_benzodiazepine_dz_eq_mg_day(self) -> Any:
        return self._bounded("benzodiazepine_dz_eq_mg_day", *BENZO_DZ_EQ, "Benzodiazepine dose", "mg/day")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        reading = Reading(
            sbp=data.get("systolic_bp"),
            dbp=data.get("diastolic_bp"),
            hr=data.get("heart_rate"),
            spo2=data.get("spo2"),
        )
        if not reading.is_empty():
            names = {"sbp": "systolic_bp", "dbp": "diastolic_bp", "hr": "heart_rate", "spo2": "spo2"}
            for err in check_plausible(reading):
                field = names.get(err.field)
                if field and field in self.fields and field not in self.errors:
                    self.add_error(field, err.message)
                elif not field:
                    self.add_error(None, err.message)
        return data

    def answers(self) -> dict[str, str]:
        return {q.id: self.cleaned_data[f"q_{q.id}"] for q in load_rule_set().questions}


RULESET_CLASS_CHOICES = [(c.id, c.label) for c in load_rule_set().medication_classes]


class MedicationRowForm(KapForm):
    """A medication to add to the chart's list (the one list) from the assessment page."""

    name = forms.CharField(label="Medication", max_length=120, required=False)
    dose = forms.CharField(label="Dose", max_length=80, required=False)
    drug_class = forms.ChoiceField(
        label="Drug class (chart)",
        choices=[("", "Suggest from the name"), *DrugClass.choices],
        required=False,
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("name") and not data.get("drug_class"):
            data["drug_class"] = RULESET_TO_CHART.get(classify_medication(str(data["name"])), "other")
        if not data.get("name") and data.get("dose"):
            self.add_error("name", "A medication with a dose needs its name.")
        return data


class InteractionClassForm(KapForm):
    """The interaction class (ref §3.6) of each chart medication whose chart class is coarse."""

    def __init__(self, *args: Any, classified: tuple[Any, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.classified = classified
        for c in classified:
            if c.refinable:
                self.fields[f"cls_{c.medication.id}"] = forms.ChoiceField(
                    label=f"Interaction class of {c.medication.name}",
                    choices=RULESET_CLASS_CHOICES,
                    initial=c.ruleset_class,
                )

    def confirmed(self) -> dict[str, str]:
        """Only choices that differ from the automatic class are kept (saving unchanged changes nothing)."""
        rs = load_rule_set()
        out: dict[str, str] = {}
        for c in self.classified:
            if not c.refinable:
                continue
            chosen = self.cleaned_data.get(f"cls_{c.medication.id}")
            auto = classify_chart_medication(c.medication, None, rs).ruleset_class
            if chosen and chosen != auto:
                out[str(c.medication.id)] = chosen
        return out


MedicationFormSet = forms.formset_factory(MedicationRowForm, extra=2, max_num=30)


class DecisionForm(KapForm):
    version = forms.IntegerField(widget=forms.HiddenInput)
    medications_digest = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)
    decision = forms.ChoiceField(choices=DecisionChoice.choices, widget=forms.RadioSelect)
    reason = forms.CharField(
        label="Reason for this decision",
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=4000,
        required=False,
    )

    def __init__(self, *args: Any, review_items: list[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.review_items = review_items or []
        for f in self.review_items:
            self.fields[f"rationale_{f.rule_id}"] = forms.CharField(
                label=f"Rationale for review item: {f.title}",
                required=False,
                max_length=2000,
                widget=forms.Textarea(attrs={"rows": 2}),
            )

    def rationales(self) -> dict[str, str]:
        return {f.rule_id: self.cleaned_data.get(f"rationale_{f.rule_id}", "") for f in self.review_items}
