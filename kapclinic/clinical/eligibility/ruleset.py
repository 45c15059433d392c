"""Rule sets as versioned data: loading and validation (pure; no Django).

A rule set is a JSON file in ``rulesets/`` with ``id``, ``version``, ``parameters`` (each with a
cited default), ``questions`` (the checklist built from ref §3.1-3.5), ``medication_classes``
(ref §3.6) and ``rules``. A rule has ``id``, ``title``, ``outcome`` (exclude/review/caution),
``check``, an optional ``applies_to`` protocol scope, a plain-language ``explanation`` and a
``citation``.

Check language (evaluated with three-valued logic, see ``engine``)::

    {"answer": "<question id>"}                         yes -> true, no -> false, unanswered -> unknown
    {"value": "<numeric field>", "op": "<", "param": "<parameter name>"}
    {"medication_class": "<class id>"}
    {"any": [<check>, ...]}   {"all": [<check>, ...]}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .model import Outcome

RULESET_DIR = Path(__file__).with_name("rulesets")
DEFAULT_RULESET_ID = "kap-eligibility"

NUMERIC_FIELDS: dict[str, tuple[str, str]] = {
    "age_years": ("Age", "years"),
    "systolic_bp": ("Systolic blood pressure", "mmHg"),
    "diastolic_bp": ("Diastolic blood pressure", "mmHg"),
    "heart_rate": ("Heart rate", "/min"),
    "spo2": ("SpO2", "%"),
    "weight_kg": ("Weight", "kg"),
    "height_cm": ("Height", "cm"),
    "bmi": ("BMI", "kg/m2"),
    "adequate_failed_trials": ("Adequate failed antidepressant trials in this episode", "trials"),
    "benzodiazepine_dz_eq_mg_day": ("Benzodiazepine dose (diazepam-equivalent)", "mg/day"),
}
OPERATORS = ("<", "<=", ">", ">=")
SECTIONS = ("medical", "psychiatric", "substance", "reproductive", "medications")
SEVERITIES = ("review", "caution", "info")


class RuleSetError(ValueError):
    """The rule-set data is malformed; the message names the rule and the problem."""


@dataclass(frozen=True)
class AnswerCheck:
    question_id: str


@dataclass(frozen=True)
class ValueCheck:
    field: str
    op: str
    param: str


@dataclass(frozen=True)
class MedicationClassCheck:
    drug_class: str


@dataclass(frozen=True)
class AnyCheck:
    children: tuple[Check, ...]


@dataclass(frozen=True)
class AllCheck:
    children: tuple[Check, ...]


Check = AnswerCheck | ValueCheck | MedicationClassCheck | AnyCheck | AllCheck


@dataclass(frozen=True)
class Parameter:
    name: str
    default: float
    unit: str
    label: str
    source: str


@dataclass(frozen=True)
class Question:
    id: str
    section: str
    asked_of: str  # "patient" | "clinician"
    label: str
    patient_text: str
    source: str


@dataclass(frozen=True)
class MedicationClass:
    id: str
    label: str
    severity: str
    effect: str
    source: str


@dataclass(frozen=True)
class Scope:
    products: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    dose_bases: tuple[str, ...] = ()

    @property
    def is_general(self) -> bool:
        return not (self.products or self.routes or self.dose_bases)

    def describe(self) -> str:
        parts = []
        if self.products:
            parts.append("product " + " or ".join(self.products))
        if self.routes:
            parts.append("route " + " or ".join(self.routes))
        if self.dose_bases:
            parts.append("dose basis " + " or ".join(self.dose_bases))
        return "; ".join(parts) if parts else "all protocols"


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    outcome: Outcome
    check: Check
    explanation: str
    citation: str
    scope: Scope = field(default_factory=Scope)


@dataclass(frozen=True)
class RuleSet:
    id: str
    version: str
    title: str
    source: str
    digest: str
    parameters: tuple[Parameter, ...]
    questions: tuple[Question, ...]
    medication_classes: tuple[MedicationClass, ...]
    lexicon: tuple[tuple[str, str], ...]  # (lower-case drug name, class id)
    rules: tuple[Rule, ...]

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def question(self, question_id: str) -> Question:
        for q in self.questions:
            if q.id == question_id:
                return q
        raise KeyError(question_id)

    def medication_class(self, class_id: str) -> MedicationClass:
        for c in self.medication_classes:
            if c.id == class_id:
                return c
        raise KeyError(class_id)

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    @property
    def question_ids(self) -> tuple[str, ...]:
        return tuple(q.id for q in self.questions)

    def defaults(self) -> dict[str, float]:
        return {p.name: p.default for p in self.parameters}


def _require(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise RuleSetError(f"{where} is missing the required key '{key}'.")
    return data[key]


def _text(data: Mapping[str, Any], key: str, where: str, *, allow_empty: bool = False) -> str:
    value = _require(data, key, where)
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise RuleSetError(f"{where}: '{key}' must be a non-empty string.")
    return value


def _parse_check(
    raw: Any,
    where: str,
    questions: frozenset[str],
    params: frozenset[str],
    classes: frozenset[str],
) -> Check:
    if not isinstance(raw, Mapping) or len(raw) == 0:
        raise RuleSetError(f"{where}: a check must be a non-empty object.")
    if "answer" in raw:
        qid = raw["answer"]
        if qid not in questions:
            raise RuleSetError(f"{where}: the check refers to an undeclared question '{qid}'.")
        return AnswerCheck(str(qid))
    if "value" in raw:
        fld, op, param = raw.get("value"), raw.get("op"), raw.get("param")
        if fld not in NUMERIC_FIELDS:
            raise RuleSetError(f"{where}: '{fld}' is not a known numeric field.")
        if op not in OPERATORS:
            raise RuleSetError(f"{where}: operator '{op}' must be one of {', '.join(OPERATORS)}.")
        if param not in params:
            raise RuleSetError(f"{where}: the check refers to an undeclared parameter '{param}'.")
        return ValueCheck(str(fld), str(op), str(param))
    if "medication_class" in raw:
        cls = raw["medication_class"]
        if cls not in classes:
            raise RuleSetError(f"{where}: the check refers to an undeclared medication class '{cls}'.")
        return MedicationClassCheck(str(cls))
    for key, ctor in (("any", AnyCheck), ("all", AllCheck)):
        if key in raw:
            children = raw[key]
            if not isinstance(children, Sequence) or isinstance(children, str) or not children:
                raise RuleSetError(f"{where}: '{key}' needs a non-empty list of checks.")
            return ctor(tuple(_parse_check(c, where, questions, params, classes) for c in children))
    raise RuleSetError(f"{where}: unknown check {sorted(raw)}.")


def _parse_scope(raw: Any, where: str) -> Scope:
    if raw is None:
        return Scope()
    if not isinstance(raw, Mapping):
        raise RuleSetError(f"{where}: 'applies_to' must be an object.")
    unknown = set(raw) - {"products", "routes", "dose_bases"}
    if unknown:
        raise RuleSetError(f"{where}: 'applies_to' has unknown keys {sorted(unknown)}.")
    return Scope(
        products=tuple(str(x) for x in raw.get("products", ())),
        routes=tuple(str(x) for x in raw.get("routes", ())),
        dose_bases=tuple(str(x) for x in raw.get("dose_bases", ())),
    )


def parse_rule_set(data: Mapping[str, Any], digest: str = "") -> RuleSet:
    """Validate and build a RuleSet from decoded JSON. Raises RuleSetError with a sentence."""
    rs_id = _text(data, "id", "The rule set")
    version = _text(data, "version", f"Rule set {rs_id}")
    where_rs = f"Rule set {rs_id} {version}"

    params: list[Parameter] = []
    for name, p in dict(_require(data, "parameters", where_rs)).items():
        where = f"{where_rs}, parameter {name}"
        default = _require(p, "default", where)
        if isinstance(default, bool) or not isinstance(default, int | float):
            raise RuleSetError(f"{where}: 'default' must be a number.")
        params.append(
            Parameter(
                name=str(name),
                default=float(default),
                unit=_text(p, "unit", where),
                label=_text(p, "label", where),
                source=_text(p, "source", where),
            )
        )

    questions: list[Question] = []
    for q in _require(data, "questions", where_rs):
        qid = _text(q, "id", f"{where_rs}, a question")
        where = f"{where_rs}, question {qid}"
        section = _text(q, "section", where)
        if section not in SECTIONS:
            raise RuleSetError(f"{where}: section '{section}' must be one of {', '.join(SECTIONS)}.")
        asked_of = _text(q, "asked_of", where)
        if asked_of not in ("patient", "clinician"):
            raise RuleSetError(f"{where}: 'asked_of' must be 'patient' or 'clinician'.")
        patient_text = _text(q, "patient_text", where, allow_empty=True)
        if asked_of == "patient" and not patient_text.strip():
            raise RuleSetError(f"{where}: a patient question needs 'patient_text'.")
        questions.append(
            Question(
                qid, section, asked_of, _text(q, "label", where), patient_text, _text(q, "source", where)
            )
        )
    if len({q.id for q in questions}) != len(questions):
        raise RuleSetError(f"{where_rs}: question ids must be unique.")

    classes: list[MedicationClass] = []
    for c in _require(data, "medication_classes", where_rs):
        cid = _text(c, "id", f"{where_rs}, a medication class")
        where = f"{where_rs}, medication class {cid}"
        severity = _text(c, "severity", where)
        if severity not in SEVERITIES:
            raise RuleSetError(f"{where}: severity must be one of {', '.join(SEVERITIES)}.")
        classes.append(
            MedicationClass(
                cid,
                _text(c, "label", where),
                severity,
                _text(c, "effect", where),
                _text(c, "source", where),
            )
        )
    class_ids = frozenset(c.id for c in classes)

    lexicon: list[tuple[str, str]] = []
    lex = data.get("medication_lexicon", {})
    for cls, names in dict(lex.get("names", {})).items():
        if cls not in class_ids:
            raise RuleSetError(f"{where_rs}: the medication lexicon names an undeclared class '{cls}'.")
        lexicon.extend((str(n).lower(), str(cls)) for n in names)

    qids = frozenset(q.id for q in questions)
    pnames = frozenset(p.name for p in params)
    rules: list[Rule] = []
    for r in _require(data, "rules", where_rs):
        rid = _text(r, "id", f"{where_rs}, a rule")
        where = f"{where_rs}, rule {rid}"
        outcome_raw = _text(r, "outcome", where)
        try:
            outcome = Outcome(outcome_raw)
        except ValueError:
            msg = f"{where}: outcome '{outcome_raw}' must be exclude, review or caution."
            raise RuleSetError(msg) from None
        rules.append(
            Rule(
                id=rid,
                title=_text(r, "title", where),
                outcome=outcome,
                check=_parse_check(_require(r, "check", where), where, qids, pnames, class_ids),
                explanation=_text(r, "explanation", where),
                citation=_text(r, "citation", where),
                scope=_parse_scope(r.get("applies_to"), where),
            )
        )
    if len({r.id for r in rules}) != len(rules):
        raise RuleSetError(f"{where_rs}: rule ids must be unique.")

    return RuleSet(
        id=rs_id,
        version=version,
        title=_text(data, "title", where_rs),
        source=_text(data, "source", where_rs),
        digest=digest,
        parameters=tuple(params),
        questions=tuple(questions),
        medication_classes=tuple(classes),
        lexicon=tuple(sorted(lexicon)),
        rules=tuple(rules),
    )


def load_rule_set_file(path: Path) -> RuleSet:
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RuleSetError(f"The rule-set file {path.name} is not valid JSON: {exc}.") from None
    return parse_rule_set(data, digest=digest)


def _version_key(version: str) -> tuple[int | str, ...]:
    return tuple(int(p) if p.isdigit() else p for p in version.split("."))


@cache
def available_rule_sets() -> tuple[RuleSet, ...]:
    """All rule sets shipped beside this module, oldest version first per id."""
    sets = [load_rule_set_file(p) for p in sorted(RULESET_DIR.glob("*.json"))]
    return tuple(sorted(sets, key=lambda s: (s.id, _version_key(s.version))))


def load_rule_set(rule_set_id: str = DEFAULT_RULESET_ID, version: str | None = None) -> RuleSet:
    """The named version, or the latest version of ``rule_set_id`` when version is None."""
    matches = [s for s in available_rule_sets() if s.id == rule_set_id]
    if version is not None:
        matches = [s for s in matches if s.version == version]
    if not matches:
        wanted = f"{rule_set_id} {version}" if version else rule_set_id
        raise RuleSetError(f"No rule set {wanted} is installed.")
    return matches[-1]
