"""Test support (not used by the running app): a complete intake assessment on which no rule fires."""

from __future__ import annotations

from typing import Any

from kapclinic.clinical.eligibility import load_rule_set
from kapclinic.intake.models import Assessment


def all_no() -> dict[str, str]:
    return dict.fromkeys(load_rule_set().question_ids, "no")


def complete_assessment(patient: Any, **changes: Any) -> Assessment:
    """A complete assessment on which no rule fires (all answers 'no', plausible baseline values)."""
    assessment, _ = Assessment.objects.get_or_create(patient=patient)
    answers = all_no()
    answers.update(changes.pop("answers", {}))
    values: dict[str, Any] = {
        "answers": answers,
        "adequate_failed_trials": 2,
        "medications_reviewed": "yes",
        "systolic_bp": 122,
        "diastolic_bp": 78,
        "heart_rate": 70,
        "spo2": 98,
        "weight_kg": 70,
        "height_cm": 172,
    }
    values.update(changes)
    for k, v in values.items():
        setattr(assessment, k, v)
    assessment.version += 1
    assessment.save()
    return assessment
