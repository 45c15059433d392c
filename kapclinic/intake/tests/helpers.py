"""Test helpers shared by the intake, consent and treatment tests."""

from __future__ import annotations

from typing import Any

from kapclinic.clinical.eligibility import load_rule_set
from kapclinic.intake.models import Assessment
from kapclinic.intake.testing import all_no, complete_assessment

__all__ = ["all_no", "assessment_post", "complete_assessment"]


def assessment_post(patient: Any, **overrides: Any) -> dict[str, Any]:
    """POST data for the assessment form matching complete_assessment()."""
    assessment = Assessment.objects.get(patient=patient)
    data: dict[str, Any] = {f"q_{k}": v for k, v in (assessment.answers or {}).items()}
    for q in load_rule_set().question_ids:
        data.setdefault(f"q_{q}", "unknown")
    data.update(
        {
            "version": assessment.version,
            "psychiatric_history": "",
            "substance_use_history": "",
            "adequate_failed_trials": assessment.adequate_failed_trials or "",
            "prior_psychotherapy": "yes",
            "prior_ect": "no",
            "prior_tms": "no",
            "prior_treatment_notes": "",
            "medications_reviewed": assessment.medications_reviewed,
            "benzodiazepine_dz_eq_mg_day": "",
            "systolic_bp": assessment.systolic_bp or "",
            "diastolic_bp": assessment.diastolic_bp or "",
            "heart_rate": assessment.heart_rate or "",
            "spo2": assessment.spo2 or "",
            "weight_kg": assessment.weight_kg or "",
            "height_cm": assessment.height_cm or "",
            "med-TOTAL_FORMS": "2",
            "med-INITIAL_FORMS": "0",
            "med-MIN_NUM_FORMS": "0",
            "med-MAX_NUM_FORMS": "30",
        }
    )
    data.update(overrides)
    return data
