"""Plain typed values for the eligibility engine (no Django).

Every yes/no answer is tri-state: an unanswered question is ``Answer.UNKNOWN`` and is
never read as "no" (issue 4; ref §3.5, §7 item 4).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any


class Answer(enum.StrEnum):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: object) -> Answer:
        """Read a stored/submitted value; anything unrecognised is UNKNOWN, never NO."""
        if isinstance(value, Answer):
            return value
        if value is True:
            return cls.YES
        if value is False:
            return cls.NO
        if isinstance(value, str):
            low = value.strip().lower()
            if low in ("yes", "y", "true"):
                return cls.YES
            if low in ("no", "n", "false"):
                return cls.NO
        return cls.UNKNOWN


class Tri(enum.Enum):
    """Kleene three-valued truth used while evaluating a rule check."""

    TRUE = "true"
    FALSE = "false"
    UNKNOWN = "unknown"


class Outcome(enum.StrEnum):
    EXCLUDE = "exclude"  # hard stop
    REVIEW = "review"  # needs a prescriber's documented judgement
    CAUTION = "caution"  # proceed with a stated precaution

    @property
    def rank(self) -> int:
        return {Outcome.EXCLUDE: 3, Outcome.REVIEW: 2, Outcome.CAUTION: 1}[self]


class FindingStatus(enum.StrEnum):
    FIRED = "fired"  # the record shows the condition
    MISSING = "missing"  # information needed to rule it out is missing


class ReportStatus(enum.StrEnum):
    HARD_STOP = "hard_stop"  # at least one exclude rule fired
    INCOMPLETE = "incomplete"  # a hard-stop question is unanswered
    NEEDS_REVIEW = "needs_review"  # review findings need documented judgement
    CLEAR = "clear"  # nothing beyond cautions

    @property
    def label(self) -> str:
        return {
            ReportStatus.HARD_STOP: "Hard stop: cannot be signed as eligible",
            ReportStatus.INCOMPLETE: "Incomplete: a hard-stop question is unanswered",
            ReportStatus.NEEDS_REVIEW: "Needs the prescriber's documented judgement",
            ReportStatus.CLEAR: "No exclusion or review finding",
        }[self]


class Decision(enum.StrEnum):
    ELIGIBLE = "eligible"
    NOT_ELIGIBLE = "not_eligible"
    REFER_ELSEWHERE = "refer_elsewhere"

    @property
    def label(self) -> str:
        return {
            Decision.ELIGIBLE: "Eligible",
            Decision.NOT_ELIGIBLE: "Not eligible",
            Decision.REFER_ELSEWHERE: "Refer elsewhere",
        }[self]


@dataclass(frozen=True)
class Medication:
    """A current medication. ``drug_class`` is the §3.6 class confirmed by the clinician."""

    name: str
    drug_class: str = "other"
    dose: str = ""


@dataclass(frozen=True)
class IntakeRecord:
    """Everything the rules can look at. Absent answers are UNKNOWN; absent numbers are unknown."""

    answers: Mapping[str, Answer] = field(default_factory=dict)
    date_of_birth: date | None = None
    systolic_bp: float | None = None
    diastolic_bp: float | None = None
    heart_rate: float | None = None
    spo2: float | None = None
    weight_kg: float | None = None
    height_cm: float | None = None
    adequate_failed_trials: int | None = None
    benzodiazepine_dz_eq_mg_day: float | None = None
    medications_reviewed: Answer = Answer.UNKNOWN
    medications: tuple[Medication, ...] = ()

    def answer(self, question_id: str) -> Answer:
        return self.answers.get(question_id, Answer.UNKNOWN)


@dataclass(frozen=True)
class ProtocolContext:
    """What the rules need to know about a chosen protocol (see kapclinic/clinical/protocols)."""

    id: str
    version: str = ""
    product: str = ""  # "esketamine" | "racemic_ketamine"
    route: str = ""  # "iv" | "im" | "sublingual" | "intranasal" | ...
    dose_basis: str = ""  # "mg_per_kg" | "fixed_mg"
    parameters: Mapping[str, float] = field(default_factory=dict)  # rule-parameter overrides

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ProtocolContext:
        """Build from a protocol-library JSON object, tolerating missing keys."""
        dose = data.get("dose")
        basis = data.get("dose_basis", "")
        if not basis and isinstance(dose, Mapping):
            basis = str(dose.get("basis", ""))
        params = data.get("eligibility_parameters", {})
        return cls(
            id=str(data.get("id", "")),
            version=str(data.get("version", "")),
            product=str(data.get("product", "")),
            route=str(data.get("route", "")),
            dose_basis=_normalise_basis(str(basis)),
            parameters={str(k): float(v) for k, v in params.items()} if isinstance(params, Mapping) else {},
        )


def _normalise_basis(basis: str) -> str:
    low = basis.lower().replace("/", "_per_").replace("-", "_")
    if "kg" in low:
        return "mg_per_kg"
    if low in ("fixed", "fixed_mg", "mg"):
        return "fixed_mg"
    return low


@dataclass(frozen=True)
class Finding:
    rule_id: str
    title: str
    outcome: Outcome
    status: FindingStatus
    explanation: str
    evidence: tuple[str, ...]
    citation: str
    missing_fields: tuple[str, ...] = ()

    @property
    def is_hard_stop(self) -> bool:
        return self.outcome is Outcome.EXCLUDE and self.status is FindingStatus.FIRED

    @property
    def needs_rationale(self) -> bool:
        return self.outcome is Outcome.REVIEW

    def to_dict(self) -> dict[str, object]:
        return {
            "rule_id": self.rule_id,
            "title": self.title,
            "outcome": self.outcome.value,
            "status": self.status.value,
            "explanation": self.explanation,
            "evidence": list(self.evidence),
            "citation": self.citation,
            "missing_fields": list(self.missing_fields),
        }


@dataclass(frozen=True)
class InteractionFlag:
    medication: str
    drug_class: str
    class_label: str
    severity: str  # "review" | "caution" | "info"
    effect: str
    citation: str

    def to_dict(self) -> dict[str, str]:
        return {
            "medication": self.medication,
            "drug_class": self.drug_class,
            "class_label": self.class_label,
            "severity": self.severity,
            "effect": self.effect,
            "citation": self.citation,
        }


@dataclass(frozen=True)
class EligibilityReport:
    rule_set_id: str
    rule_set_version: str
    rule_set_digest: str
    protocol_id: str | None
    as_of: date
    findings: tuple[Finding, ...]
    not_evaluated: tuple[str, ...]  # protocol-specific rule ids that did not apply
    parameters: tuple[tuple[str, float], ...]
    treatment_resistant: Answer
    bmi: float | None
    age_years: int | None
    interaction_flags: tuple[InteractionFlag, ...]

    @property
    def hard_stops(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.is_hard_stop)

    @property
    def unanswered_hard_stops(self) -> tuple[Finding, ...]:
        return tuple(
            f for f in self.findings if f.outcome is Outcome.EXCLUDE and f.status is FindingStatus.MISSING
        )

    @property
    def reviews(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.outcome is Outcome.REVIEW)

    @property
    def cautions(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.outcome is Outcome.CAUTION)

    @property
    def missing(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.status is FindingStatus.MISSING)

    @property
    def status(self) -> ReportStatus:
        if self.hard_stops:
            return ReportStatus.HARD_STOP
        if self.unanswered_hard_stops:
            return ReportStatus.INCOMPLETE
        if self.reviews:
            return ReportStatus.NEEDS_REVIEW
        return ReportStatus.CLEAR

    @property
    def can_be_signed_eligible(self) -> bool:
        return self.status in (ReportStatus.NEEDS_REVIEW, ReportStatus.CLEAR)

    def to_dict(self) -> dict[str, object]:
        return {
            "rule_set_id": self.rule_set_id,
            "rule_set_version": self.rule_set_version,
            "rule_set_digest": self.rule_set_digest,
            "protocol_id": self.protocol_id,
            "as_of": self.as_of.isoformat(),
            "status": self.status.value,
            "findings": [f.to_dict() for f in self.findings],
            "not_evaluated": list(self.not_evaluated),
            "parameters": dict(self.parameters),
            "treatment_resistant": self.treatment_resistant.value,
            "bmi": self.bmi,
            "age_years": self.age_years,
            "interaction_flags": [i.to_dict() for i in self.interaction_flags],
        }
