"""Inquiries, the intake assessment and signed eligibility decisions (issue 4).

Clinical numbers (vitals, weight, height, trials, benzodiazepine dose) live in typed columns. The
contraindication checklist answers are tri-state strings ("yes" / "no" / "unknown") keyed by the
question ids of the eligibility rule set (kapclinic/clinical/eligibility/rulesets/); a missing key is
"unknown", never "no".
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from django.conf import settings
from django.db import models

from kapclinic.core import clock
from kapclinic.core.concurrency import VersionedModel


class InquiryStatus(models.TextChoices):
    NEW = "new", "New"
    CONTACTED = "contacted", "Contacted"
    CONVERTED = "converted", "Converted to a patient"
    CLOSED = "closed", "Closed"


class ContactTime(models.TextChoices):
    MORNING = "morning", "Morning"
    AFTERNOON = "afternoon", "Afternoon"
    EVENING = "evening", "Evening"
    ANY = "any", "Any time"


class Inquiry(models.Model):
    """A message from the public inquiry form. Not a patient record until the front desk converts it."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="inquiries")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    preferred_contact_time = models.CharField(
        max_length=20, choices=ContactTime.choices, default=ContactTime.ANY
    )
    message = models.TextField("what they are struggling with", blank=True)
    consent_to_contact = models.BooleanField(default=False)
    submission_token = models.CharField(max_length=64)
    client_key = models.CharField(max_length=64, db_index=True)  # salted hash of the client address
    status = models.CharField(max_length=20, choices=InquiryStatus.choices, default=InquiryStatus.NEW)
    patient = models.ForeignKey(
        "patients.Patient", null=True, blank=True, on_delete=models.PROTECT, related_name="inquiries"
    )
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    handled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["clinic", "submission_token"], name="inquiry_submission_once"),
        ]
        indexes: ClassVar = [models.Index(fields=["clinic", "status", "-created_at"], name="inquiry_queue")]

    def __str__(self) -> str:
        return f"Inquiry {self.pk}"


class Tri(models.TextChoices):
    YES = "yes", "Yes"
    NO = "no", "No"
    UNKNOWN = "unknown", "Not known"


class Assessment(VersionedModel):
    """The intake record of one patient: the patient's questionnaire plus the clinician assessment.

    Every saved change increments ``version``; a signed eligibility decision remembers the version it
    was signed on and becomes stale as soon as the assessment changes.
    """

    patient = models.OneToOneField("patients.Patient", on_delete=models.PROTECT, related_name="assessment")
    # checklist answers: {question_id: "yes"|"no"|"unknown"}
    answers = models.JSONField(default=dict, blank=True)
    # what the patient submitted in the portal, kept as submitted
    patient_answers = models.JSONField(default=dict, blank=True)
    patient_notes = models.TextField("anything else the patient wants us to know", blank=True)
    patient_submitted_at = models.DateTimeField(null=True, blank=True)

    psychiatric_history = models.TextField(blank=True)
    substance_use_history = models.TextField(blank=True)

    adequate_failed_trials = models.PositiveSmallIntegerField(
        "adequate failed antidepressant trials (this episode)", null=True, blank=True
    )
    prior_psychotherapy = models.CharField(max_length=10, choices=Tri.choices, default=Tri.UNKNOWN)
    prior_ect = models.CharField("prior ECT", max_length=10, choices=Tri.choices, default=Tri.UNKNOWN)
    prior_tms = models.CharField("prior TMS", max_length=10, choices=Tri.choices, default=Tri.UNKNOWN)
    prior_treatment_notes = models.TextField(blank=True)

    medications_reviewed = models.CharField(max_length=10, choices=Tri.choices, default=Tri.UNKNOWN)
    # The medications themselves are the chart's list (patients.Medication: one list, one truth). Here only
    # the interaction class (ref §3.6) the clinician confirmed for a coarse chart class ("antidepressant",
    # "other"), when it differs from the automatic one: {str(medication id): <rule-set class id>}.
    medication_classes = models.JSONField(default=dict, blank=True)
    benzodiazepine_dz_eq_mg_day = models.DecimalField(
        "benzodiazepine dose, diazepam-equivalent mg/day",
        max_digits=6,
        decimal_places=1,
        null=True,
        blank=True,
    )

    systolic_bp = models.PositiveSmallIntegerField("systolic BP (mmHg)", null=True, blank=True)
    diastolic_bp = models.PositiveSmallIntegerField("diastolic BP (mmHg)", null=True, blank=True)
    heart_rate = models.PositiveSmallIntegerField("heart rate (/min)", null=True, blank=True)
    spo2 = models.PositiveSmallIntegerField("SpO2 (%)", null=True, blank=True)
    weight_kg = models.DecimalField("weight (kg)", max_digits=5, decimal_places=1, null=True, blank=True)
    height_cm = models.DecimalField("height (cm)", max_digits=5, decimal_places=1, null=True, blank=True)

    updated_at = models.DateTimeField(default=clock.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    clinician_completed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Assessment for patient {self.patient_id}"

    @property
    def bmi(self) -> float | None:
        from kapclinic.clinical.eligibility import bmi

        return bmi(_f(self.weight_kg), _f(self.height_cm))


def _f(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


class DecisionChoice(models.TextChoices):
    ELIGIBLE = "eligible", "Eligible"
    NOT_ELIGIBLE = "not_eligible", "Not eligible"
    REFER_ELSEWHERE = "refer_elsewhere", "Refer elsewhere"


class EligibilityDecision(models.Model):
    """A prescriber-signed decision on an eligibility report. Immutable once written."""

    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="eligibility_decisions"
    )
    assessment = models.ForeignKey(Assessment, on_delete=models.PROTECT, related_name="decisions")
    assessment_version = models.PositiveIntegerField()
    date_of_birth = models.DateField()  # the birth date the rules saw (age rules)
    decision = models.CharField(max_length=20, choices=DecisionChoice.choices)
    reason = models.TextField()
    review_rationales = models.JSONField(default=dict, blank=True)  # {rule_id: rationale}
    report = models.JSONField()  # EligibilityReport.to_dict() exactly as shown when signing
    report_status = models.CharField(max_length=20)
    rule_set_id = models.CharField(max_length=60)
    rule_set_version = models.CharField(max_length=20)
    rule_set_digest = models.CharField(max_length=64)
    #: Fingerprint of the chart medications the rules could see (classes of severity review/caution);
    #: empty on decisions signed before it was recorded (not tracked for those).
    medications_digest = models.CharField(max_length=64, blank=True)
    signed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    signed_at = models.DateTimeField()

    class Meta:
        ordering: ClassVar = ["-signed_at", "-id"]
        indexes: ClassVar = [models.Index(fields=["patient", "-signed_at"], name="decision_patient_recent")]

    def __str__(self) -> str:
        return f"Eligibility decision {self.pk}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("A signed eligibility decision cannot be changed; sign a new one.")
        super().save(*args, **kwargs)

    def is_stale_for(
        self, assessment: Assessment, date_of_birth: Any, medications_digest: str | None = None
    ) -> bool:
        if assessment.version != self.assessment_version or date_of_birth != self.date_of_birth:
            return True
        return bool(
            self.medications_digest
            and medications_digest is not None
            and medications_digest != self.medications_digest
        )
