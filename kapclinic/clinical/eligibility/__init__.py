"""Eligibility rules engine: rules as versioned data, explainable tri-state evaluation.

Pure Python (no Django). See ``ruleset`` for the data format and ``engine`` for evaluation.
Clinical content: docs/clinical-reference.md#eligibility (§3: contraindications, interactions).
"""

from .engine import (
    age_on,
    bmi,
    check_decision,
    classify_medication,
    evaluate,
    interaction_flags,
    resolve_parameters,
    scope_applies,
    treatment_resistance,
)
from .model import (
    Answer,
    Decision,
    EligibilityReport,
    Finding,
    FindingStatus,
    IntakeRecord,
    InteractionFlag,
    Medication,
    Outcome,
    ProtocolContext,
    ReportStatus,
)
from .ruleset import Question, Rule, RuleSet, RuleSetError, available_rule_sets, load_rule_set

__all__ = [
    "Answer",
    "Decision",
    "EligibilityReport",
    "Finding",
    "FindingStatus",
    "IntakeRecord",
    "InteractionFlag",
    "Medication",
    "Outcome",
    "ProtocolContext",
    "Question",
    "ReportStatus",
    "Rule",
    "RuleSet",
    "RuleSetError",
    "age_on",
    "available_rule_sets",
    "bmi",
    "check_decision",
    "classify_medication",
    "evaluate",
    "interaction_flags",
    "load_rule_set",
    "resolve_parameters",
    "scope_applies",
    "treatment_resistance",
]
