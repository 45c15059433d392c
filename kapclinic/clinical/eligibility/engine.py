"""Evaluate an intake record against a rule set (pure; no Django).

Three-valued logic: a leaf check is TRUE, FALSE or UNKNOWN (unanswered question, unknown
number, medication list not reviewed). ``any`` is TRUE if a child is TRUE, else UNKNOWN if a
child is UNKNOWN, else FALSE; ``all`` is the dual. A rule FIRES on TRUE and yields a MISSING
finding on UNKNOWN: an unanswered contraindication question is never read as "no" (issue 4).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from .model import (
    Answer,
    Decision,
    EligibilityReport,
    Finding,
    FindingStatus,
    IntakeRecord,
    InteractionFlag,
    Medication,
    ProtocolContext,
    ReportStatus,
    Tri,
)
from .ruleset import (
    NUMERIC_FIELDS,
    AllCheck,
    AnswerCheck,
    AnyCheck,
    Check,
    MedicationClassCheck,
    Rule,
    RuleSet,
    Scope,
    ValueCheck,
    load_rule_set,
)

# --- derived values ----------------------------------------------------------------------------

DEFAULT_TRD_MIN_FAILED_TRIALS = 2  # [S36g][S3b] ref §5.3


def age_on(date_of_birth: date | None, on: date) -> int | None:
    """Whole years of age on ``on``; None when the birth date is unknown."""
    if date_of_birth is None:
        return None
    years = on.year - date_of_birth.year
    if (on.month, on.day) < (date_of_birth.month, date_of_birth.day):
        years -= 1
    return years


def bmi(weight_kg: float | None, height_cm: float | None) -> float | None:
    """Body-mass index in kg/m2 (ref §5.1 LOINC 39156-5), rounded to one decimal.

    Returns None when either value is unknown or not positive (nothing is guessed).
    """
    if weight_kg is None or height_cm is None:
        return None
    if not (math.isfinite(weight_kg) and math.isfinite(height_cm)) or weight_kg <= 0 or height_cm <= 0:
        return None
    metres = height_cm / 100.0
    return round(weight_kg / (metres * metres), 1)


def treatment_resistance(
    adequate_failed_trials: int | None, min_failed_trials: int = DEFAULT_TRD_MIN_FAILED_TRIALS
) -> Answer:
    """TRD flag: failure of >= ``min_failed_trials`` adequate antidepressant trials in the current
    episode ([S36g][S3b] ref §5.3). UNKNOWN when the number of trials is not recorded."""
    if adequate_failed_trials is None:
        return Answer.UNKNOWN
    return Answer.YES if adequate_failed_trials >= min_failed_trials else Answer.NO


def classify_medication(name: str, rule_set: RuleSet | None = None) -> str:
    """Suggest a ref §3.6 class for a medication name from the rule set's lexicon ("other" when
    not found). Only a suggestion: the clinician confirms the class."""
    rs = rule_set or load_rule_set()
    words = {w for w in "".join(ch if ch.isalnum() else " " for ch in name.lower()).split() if w}
    for drug, cls in rs.lexicon:
        if drug in words:
            return cls
    return "other"


def interaction_flags(medications: tuple[Medication, ...], rule_set: RuleSet) -> tuple[InteractionFlag, ...]:
    """One flag per medication whose class carries an interaction in ref §3.6."""
    flags: list[InteractionFlag] = []
    for med in medications:
        try:
            cls = rule_set.medication_class(med.drug_class)
        except KeyError:
            cls = rule_set.medication_class("other")
        if cls.id == "other":
            continue
        flags.append(InteractionFlag(med.name, cls.id, cls.label, cls.severity, cls.effect, cls.source))
    order = {"review": 0, "caution": 1, "info": 2}
    return tuple(sorted(flags, key=lambda f: (order.get(f.severity, 3), f.medication.lower())))


# --- parameters ------------------------------------------------------------------------------


def resolve_parameters(
    rule_set: RuleSet,
    clinic_parameters: Mapping[str, float] | None = None,
    protocol: ProtocolContext | None = None,
) -> dict[str, float]:
    """Cited defaults, overridden by the clinic's configuration, then by the protocol's own values.

    Unknown parameter names are refused with a sentence (a typo must not silently do nothing)."""
    values = rule_set.defaults()
    for layer_name, layer in (
        ("clinic configuration", clinic_parameters or {}),
        ("protocol", protocol.parameters if protocol else {}),
    ):
        for name, value in layer.items():
            if name not in values:
                raise ValueError(
                    f"The {layer_name} sets '{name}', which is not a parameter of rule set {rule_set.id}."
                )
            if not math.isfinite(float(value)):
                raise ValueError(f"The {layer_name} value for '{name}' must be a finite number.")
            values[name] = float(value)
    return values


# --- evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Result:
    value: Tri
    evidence: tuple[str, ...]  # why it is TRUE (or what is unknown)
    missing: tuple[str, ...]  # field / question ids that are unknown


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class _Evaluator:
    def __init__(self, record: IntakeRecord, rule_set: RuleSet, params: Mapping[str, float], as_of: date):
        self.record = record
        self.rule_set = rule_set
        self.params = params
        self.numbers: dict[str, float | None] = {
            "age_years": _opt(age_on(record.date_of_birth, as_of)),
            "systolic_bp": record.systolic_bp,
            "diastolic_bp": record.diastolic_bp,
            "heart_rate": record.heart_rate,
            "spo2": record.spo2,
            "weight_kg": record.weight_kg,
            "height_cm": record.height_cm,
            "bmi": bmi(record.weight_kg, record.height_cm),
            "adequate_failed_trials": _opt(record.adequate_failed_trials),
            "benzodiazepine_dz_eq_mg_day": record.benzodiazepine_dz_eq_mg_day,
        }

    def run(self, check: Check) -> _Result:
        if isinstance(check, AnswerCheck):
            return self._answer(check)
        if isinstance(check, ValueCheck):
            return self._value(check)
        if isinstance(check, MedicationClassCheck):
            return self._medication(check)
        if isinstance(check, AnyCheck):
            return self._any(check)
        return self._all(check)

    def _answer(self, check: AnswerCheck) -> _Result:
        label = self.rule_set.question(check.question_id).label
        answer = self.record.answer(check.question_id)
        if answer is Answer.YES:
            return _Result(Tri.TRUE, (f"{label}: yes",), ())
        if answer is Answer.NO:
            return _Result(Tri.FALSE, (), ())
        return _Result(Tri.UNKNOWN, (f"{label}: not answered",), (check.question_id,))

    def _value(self, check: ValueCheck) -> _Result:
        label, unit = NUMERIC_FIELDS[check.field]
        value = self.numbers[check.field]
        limit = self.params[check.param]
        if value is None:
            return _Result(Tri.UNKNOWN, (f"{label}: not recorded",), (check.field,))
        if _OPS[check.op](value, limit):
            why = f"{label}: {_fmt(value)} {unit} (rule: {check.op} {_fmt(limit)} {unit})"
            return _Result(Tri.TRUE, (why,), ())
        return _Result(Tri.FALSE, (), ())

    def _medication(self, check: MedicationClassCheck) -> _Result:
        cls = self.rule_set.medication_class(check.drug_class)
        hits = [m for m in self.record.medications if m.drug_class == check.drug_class]
        if hits:
            return _Result(Tri.TRUE, tuple(f"Current medication: {m.name} ({cls.label})" for m in hits), ())
        if self.record.medications_reviewed is not Answer.YES:
            why = f"Current medications not reviewed ({cls.label} use unknown)"
            return _Result(Tri.UNKNOWN, (why,), ("medications",))
        return _Result(Tri.FALSE, (), ())

    def _any(self, check: AnyCheck) -> _Result:
        results = [self.run(c) for c in check.children]
        true = [r for r in results if r.value is Tri.TRUE]
        if true:
            return _Result(Tri.TRUE, _join(r.evidence for r in true), ())
        unknown = [r for r in results if r.value is Tri.UNKNOWN]
        if unknown:
            return _Result(Tri.UNKNOWN, _join(r.evidence for r in unknown), _join(r.missing for r in unknown))
        return _Result(Tri.FALSE, (), ())

    def _all(self, check: AllCheck) -> _Result:
        results = [self.run(c) for c in check.children]
        if any(r.value is Tri.FALSE for r in results):
            return _Result(Tri.FALSE, (), ())
        unknown = [r for r in results if r.value is Tri.UNKNOWN]
        if unknown:
            return _Result(Tri.UNKNOWN, _join(r.evidence for r in unknown), _join(r.missing for r in unknown))
        return _Result(Tri.TRUE, _join(r.evidence for r in results), ())


def _opt(x: int | None) -> float | None:
    return None if x is None else float(x)


def _join(parts: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    out: list[str] = []
    for part in parts:
        for item in part:
            if item not in out:
                out.append(item)
    return tuple(out)


def scope_applies(scope: Scope, protocol: ProtocolContext | None) -> bool:
    """General rules always apply; protocol-specific rules only to a matching chosen protocol."""
    if scope.is_general:
        return True
    if protocol is None:
        return False
    return (
        (not scope.products or protocol.product in scope.products)
        and (not scope.routes or protocol.route in scope.routes)
        and (not scope.dose_bases or protocol.dose_basis in scope.dose_bases)
    )


def evaluate_rule(rule: Rule, evaluator: _Evaluator) -> Finding | None:
    result = evaluator.run(rule.check)
    if result.value is Tri.FALSE:
        return None
    status = FindingStatus.FIRED if result.value is Tri.TRUE else FindingStatus.MISSING
    return Finding(
        rule_id=rule.id,
        title=rule.title,
        outcome=rule.outcome,
        status=status,
        explanation=rule.explanation,
        evidence=result.evidence,
        citation=rule.citation,
        missing_fields=result.missing,
    )


def evaluate(
    record: IntakeRecord,
    *,
    as_of: date,
    protocol: ProtocolContext | None = None,
    rule_set: RuleSet | None = None,
    clinic_parameters: Mapping[str, float] | None = None,
) -> EligibilityReport:
    """Evaluate every applicable rule and return an explainable report.

    ``as_of`` is the date ages are computed on (pass the clinic clock's date). Protocol-specific
    rules are evaluated only when ``protocol`` matches their scope; the others are listed in
    ``not_evaluated`` so the reader knows they were not checked.
    """
    rs = rule_set or load_rule_set()
    params = resolve_parameters(rs, clinic_parameters, protocol)
    ev = _Evaluator(record, rs, params, as_of)
    findings: list[Finding] = []
    not_evaluated: list[str] = []
    for rule in rs.rules:
        if not scope_applies(rule.scope, protocol):
            not_evaluated.append(rule.id)
            continue
        finding = evaluate_rule(rule, ev)
        if finding is not None:
            findings.append(finding)
    findings.sort(key=lambda f: (-f.outcome.rank, f.status is FindingStatus.MISSING, f.rule_id))
    trd_min = int(params.get("trd_min_failed_trials", DEFAULT_TRD_MIN_FAILED_TRIALS))
    age = age_on(record.date_of_birth, as_of)
    return EligibilityReport(
        rule_set_id=rs.id,
        rule_set_version=rs.version,
        rule_set_digest=rs.digest,
        protocol_id=protocol.id if protocol else None,
        as_of=as_of,
        findings=tuple(findings),
        not_evaluated=tuple(not_evaluated),
        parameters=tuple(sorted(params.items())),
        treatment_resistant=treatment_resistance(record.adequate_failed_trials, trd_min),
        bmi=bmi(record.weight_kg, record.height_cm),
        age_years=age,
        interaction_flags=interaction_flags(record.medications, rs),
    )


# --- signing a decision --------------------------------------------------------------------


def check_decision(
    report: EligibilityReport,
    decision: Decision,
    reason: str,
    review_rationales: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """Refusals (sentences) for signing ``decision`` on ``report``; empty when it may be signed.

    - every decision needs a written reason;
    - a hard stop can never be signed eligible, and neither can an unanswered hard-stop question;
    - signing eligible needs a written rationale for every review finding (issue 4; ref §3.5).
    """
    rationales = review_rationales or {}
    errors: list[str] = []
    if not reason.strip():
        errors.append("The reason is required: write why you reached this decision.")
    if decision is Decision.ELIGIBLE:
        status = report.status
        if status is ReportStatus.HARD_STOP:
            titles = ", ".join(f.title for f in report.hard_stops)
            errors.append(f"The decision cannot be 'eligible' because a hard stop fired: {titles}.")
        elif status is ReportStatus.INCOMPLETE:
            titles = ", ".join(f.title for f in report.unanswered_hard_stops)
            errors.append(
                f"The decision cannot be 'eligible' while a hard-stop question is unanswered: {titles}. "
                "Answer it in the assessment first."
            )
        for f in report.reviews:
            if not rationales.get(f.rule_id, "").strip():
                errors.append(
                    f"The rationale for review item '{f.title}' ({f.rule_id}) is required to sign 'eligible'."
                )
    return tuple(errors)
