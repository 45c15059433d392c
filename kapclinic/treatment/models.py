"""Treatment plans built on a protocol from the protocol library, and the appointments they propose."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models

from kapclinic.core import clock
from kapclinic.core.concurrency import VersionedModel


class Modality(models.TextChoices):
    CBT = "cbt", "Cognitive behavioural therapy (CBT)"
    PSYCHODYNAMIC = "psychodynamic", "Psychodynamic therapy"
    ACT = "act", "Acceptance and commitment therapy (ACT)"
    IFS = "ifs", "Internal family systems (IFS)"
    OTHER = "other", "Other"


class PlanStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SIGNED = "signed", "Signed"
    SUPERSEDED = "superseded", "Superseded"


class TreatmentPlan(VersionedModel):
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="treatment_plans")
    status = models.CharField(max_length=12, choices=PlanStatus.choices, default=PlanStatus.DRAFT)
    indication_icd10 = models.CharField("indication (ICD-10-CM)", max_length=10)
    indication_snomed = models.CharField(max_length=20, blank=True)
    indication_text = models.CharField(max_length=200)
    goals = models.TextField("goals in the patient's own words")
    modality = models.CharField("adjunct psychotherapy", max_length=20, choices=Modality.choices)
    modality_other = models.CharField(max_length=100, blank=True)
    protocol_id = models.CharField(max_length=60)
    protocol_version = models.CharField(max_length=20)
    protocol_title = models.CharField(max_length=200)
    dosing_sessions = models.PositiveSmallIntegerField()
    sessions_per_week = models.DecimalField(max_digits=3, decimal_places=1)
    eligibility_decision = models.ForeignKey(
        "intake.EligibilityDecision", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    signed_at = models.DateTimeField(null=True, blank=True)
    protocol_rationale = models.TextField("rationale for protocol-specific review items", blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]
        indexes: ClassVar = [models.Index(fields=["patient", "status"], name="plan_patient_status")]

    def __str__(self) -> str:
        return f"Treatment plan {self.pk}"

    @property
    def modality_label(self) -> str:
        if self.modality == Modality.OTHER and self.modality_other:
            return self.modality_other
        return str(self.get_modality_display())


class Comparator(models.TextChoices):
    BELOW = "lt", "below"
    AT_MOST = "le", "at or below"
    DROP_PERCENT = "drop_pct", "reduced by at least (%)"


class PlanTarget(models.Model):
    """A measurable target, e.g. PHQ-9 below 10 after the induction series."""

    plan = models.ForeignKey(TreatmentPlan, on_delete=models.CASCADE, related_name="targets")
    instrument = models.CharField(max_length=10)  # "PHQ-9" | "GAD-7" | "PCL-5"
    comparator = models.CharField(max_length=10, choices=Comparator.choices)
    value = models.PositiveSmallIntegerField()
    timepoint = models.CharField(max_length=120, default="after the induction series")

    def __str__(self) -> str:
        unit = "%" if self.comparator == Comparator.DROP_PERCENT else ""
        return f"{self.instrument} {self.get_comparator_display()} {self.value}{unit} {self.timepoint}"


class VisitKind(models.TextChoices):
    PREPARATION = "preparation", "Preparation session"
    DOSING = "dosing", "Dosing session"
    INTEGRATION = "integration", "Integration session"
    REASSESSMENT = "reassessment", "Reassessment"


class ProposedAppointment(models.Model):
    """An appointment the plan proposes; the scheduling app books it (sets ``booked_ref``)."""

    plan = models.ForeignKey(TreatmentPlan, on_delete=models.CASCADE, related_name="proposals")
    sequence = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=20, choices=VisitKind.choices)
    week = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=120)
    booked_ref = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering: ClassVar = ["plan", "sequence"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["plan", "sequence"], name="proposal_sequence")
        ]

    def __str__(self) -> str:
        return self.label
