"""Reads for intake: the inquiry queue, duplicate candidates, the eligibility record and report."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from kapclinic.clinical.eligibility import (
    Answer,
    EligibilityReport,
    IntakeRecord,
    evaluate,
    load_rule_set,
)
from kapclinic.clinical.eligibility.chart_medications import (
    ChartMedication,
    ClassifiedMedication,
    classify_chart_medications,
    relevant_digest,
)
from kapclinic.clinical.eligibility.protocol_adapter import protocol_context
from kapclinic.clinical.protocols import Protocol, all_protocols
from kapclinic.core import clock
from kapclinic.intake.models import Assessment, EligibilityDecision, Inquiry, InquiryStatus
from kapclinic.patients.models import Medication as ChartMedicationRow
from kapclinic.patients.models import Patient


def inquiry_queue(clinic: Any, status: str = "") -> QuerySet[Inquiry]:
    qs = Inquiry.objects.filter(clinic=clinic).select_related("patient", "handled_by")
    if status:
        qs = qs.filter(status=status)
    else:
        qs = qs.filter(status__in=[InquiryStatus.NEW, InquiryStatus.CONTACTED])
    return qs.order_by("-created_at", "-id")


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


def duplicate_candidates(
    clinic: Any, *, first_name: str, last_name: str, date_of_birth: dt.date, email: str = "", phone: str = ""
) -> list[Patient]:
    """Patients of ``clinic`` who may be the same person: same date of birth AND (same full name OR
    same email OR same phone digits). A human confirms before anything is merged."""
    same_dob = Patient.objects.filter(clinic=clinic, date_of_birth=date_of_birth)
    cond = Q(legal_first_name__iexact=first_name.strip(), legal_last_name__iexact=last_name.strip())
    if email.strip():
        cond |= Q(email__iexact=email.strip())
    candidates = list(same_dob.filter(cond).order_by("id")[:20])
    digits = _digits(phone)
    if len(digits) >= 7:
        for p in same_dob.exclude(pk__in=[c.pk for c in candidates]).only("id", "phone")[:200]:
            if _digits(p.phone) == digits:
                candidates.append(Patient.objects.get(pk=p.pk))
    return candidates


def assessment_for(patient: Patient) -> Assessment:
    """The patient's assessment (created empty on first use; creating it is not a clinical change)."""
    assessment, _ = Assessment.objects.get_or_create(patient=patient)
    return assessment


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def chart_medications(patient: Patient) -> list[ChartMedication]:
    """The chart's current (active) medications: the one medication list (one query)."""
    rows = ChartMedicationRow.objects.filter(patient=patient, active=True).order_by("recorded_at", "id")
    return [ChartMedication(m.pk, m.name, m.dose, m.drug_class) for m in rows]


def classified_medications(
    assessment: Assessment, patient: Patient, meds: list[ChartMedication] | None = None
) -> tuple[ClassifiedMedication, ...]:
    """Each chart medication with its rule-set interaction class (ref §3.6) and how it was chosen."""
    return classify_chart_medications(
        chart_medications(patient) if meds is None else meds,
        assessment.medication_classes or {},
        load_rule_set(),
    )


def medications_digest(assessment: Assessment, patient: Patient) -> str:
    return relevant_digest(classified_medications(assessment, patient), load_rule_set())


def build_record(
    assessment: Assessment,
    patient: Patient,
    classified: tuple[ClassifiedMedication, ...] | None = None,
) -> IntakeRecord:
    """The plain typed record the pure eligibility engine evaluates (medications from the chart)."""
    if classified is None:
        classified = classified_medications(assessment, patient)
    meds = tuple(c.as_rule_input() for c in classified)
    return IntakeRecord(
        answers={k: Answer.parse(v) for k, v in (assessment.answers or {}).items()},
        date_of_birth=patient.date_of_birth,
        systolic_bp=_float(assessment.systolic_bp),
        diastolic_bp=_float(assessment.diastolic_bp),
        heart_rate=_float(assessment.heart_rate),
        spo2=_float(assessment.spo2),
        weight_kg=_float(assessment.weight_kg),
        height_cm=_float(assessment.height_cm),
        adequate_failed_trials=assessment.adequate_failed_trials,
        benzodiazepine_dz_eq_mg_day=_float(assessment.benzodiazepine_dz_eq_mg_day),
        medications_reviewed=Answer.parse(assessment.medications_reviewed),
        medications=meds,
    )


def eligibility_report(
    assessment: Assessment,
    patient: Patient,
    protocol: Protocol | None = None,
    classified: tuple[ClassifiedMedication, ...] | None = None,
) -> EligibilityReport:
    ctx = protocol_context(protocol) if protocol is not None else None
    return evaluate(build_record(assessment, patient, classified), as_of=clock.today(), protocol=ctx)


@dataclass(frozen=True)
class ProtocolCheck:
    protocol: Protocol
    report: EligibilityReport
    extra: tuple[Any, ...]  # findings that only this protocol adds


def protocol_checks(
    assessment: Assessment, patient: Patient, general: EligibilityReport
) -> list[ProtocolCheck]:
    """For each protocol in the library: the report with its protocol-specific rules applied."""
    seen = {(f.rule_id, f.status) for f in general.findings}
    classified = classified_medications(assessment, patient)
    out = []
    for protocol in all_protocols():
        report = eligibility_report(assessment, patient, protocol, classified)
        extra = tuple(f for f in report.findings if (f.rule_id, f.status) not in seen)
        out.append(ProtocolCheck(protocol, report, extra))
    return out


def current_decision(patient: Patient) -> EligibilityDecision | None:
    return (
        EligibilityDecision.objects.filter(patient=patient)
        .select_related("signed_by")
        .order_by("-signed_at", "-id")
    ).first()


@dataclass(frozen=True)
class EligibilityState:
    decision: EligibilityDecision | None
    stale: bool

    @property
    def current_eligible(self) -> bool:
        return self.decision is not None and not self.stale and self.decision.decision == "eligible"

    @property
    def refusal(self) -> str | None:
        if self.decision is None:
            return "No eligibility decision has been signed."
        if self.stale:
            return (
                "The eligibility decision is out of date because the intake changed after it was signed (an "
                "answer, a baseline value or a current medication the rules see); "
                "the prescriber must review the report and sign again."
            )
        if self.decision.decision != "eligible":
            return f"The signed eligibility decision is '{self.decision.get_decision_display()}'."
        return None


def _state(
    decision: EligibilityDecision,
    assessment: Assessment,
    patient: Patient,
    meds: list[ChartMedication] | None = None,
) -> EligibilityState:
    digest = (
        relevant_digest(classified_medications(assessment, patient, meds), load_rule_set())
        if decision.medications_digest
        else None
    )
    return EligibilityState(decision, decision.is_stale_for(assessment, patient.date_of_birth, digest))


def eligibility_state(patient: Patient) -> EligibilityState:
    decision = current_decision(patient)
    if decision is None:
        return EligibilityState(None, False)
    assessment = Assessment.objects.only("version", "patient_id", "medication_classes").get(
        pk=decision.assessment_id
    )
    return _state(decision, assessment, patient)


#: What the chart's pathway panel shows of the assessment, and what the staleness check reads of it.
_SUMMARY_ASSESSMENT = (
    "id",
    "patient_id",
    "version",
    "medication_classes",
    "patient_submitted_at",
    "clinician_completed_at",
    "updated_at",
)
#: What the panel and the dosing-readiness sentence read of the decision: not the signed report, the
#: reason or the rationales (large JSON and text shown on the eligibility page only).
_SUMMARY_DECISION = (
    "id",
    "patient_id",
    "assessment_id",
    "assessment_version",
    "date_of_birth",
    "decision",
    "medications_digest",
    "signed_at",
    "signed_by__full_name",
    "signed_by__email",
)


def eligibility_summary(
    patient: Patient, meds: list[ChartMedication]
) -> tuple[Assessment | None, EligibilityState]:
    """The patient's assessment and eligibility state for the chart's pathway panel, in one query
    when a decision has been signed (its assessment comes with it), two otherwise.

    The same answer as ``eligibility_state(patient)`` plus the assessment, with only the columns the
    panel shows; ``meds`` is the chart's current medication list the page already holds."""
    decision = (
        EligibilityDecision.objects.filter(patient_id=patient.pk)
        .select_related("signed_by", "assessment")
        .only(*_SUMMARY_DECISION, *(f"assessment__{f}" for f in _SUMMARY_ASSESSMENT))
        .order_by("-signed_at", "-id")
        .first()
    )
    if decision is not None and decision.assessment.patient_id == patient.pk:
        assessment: Assessment | None = decision.assessment
    else:
        assessment = Assessment.objects.filter(patient_id=patient.pk).only(*_SUMMARY_ASSESSMENT).first()
    if decision is None:
        return assessment, EligibilityState(None, False)
    return assessment, _state(decision, decision.assessment, patient, meds)


def rule_set() -> Any:
    return load_rule_set()
