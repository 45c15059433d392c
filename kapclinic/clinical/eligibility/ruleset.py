"""Rule sets as versioned data: loading and validation (pure; no Django).

The file format is declared below as pydantic models (``RuleSetFile`` and the models it holds; unknown
keys refused); a malformed file is refused with the field path of each problem, e.g.
``kap-eligibility-1.0.json: rules[3].check.any[1].answer: the check refers to an undeclared question``.

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import (
    Field,
    PlainValidator,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from kapclinic.clinical.datafile import DataModel, Text, decimal_from_text, describe

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
Operator = Literal["<", "<=", ">", ">="]
Section = Literal["medical", "psychiatric", "substance", "reproductive", "medications"]
Severity = Literal["review", "caution", "info"]
OPERATORS: tuple[str, ...] = get_args(Operator)
SECTIONS: tuple[str, ...] = get_args(Section)
SEVERITIES: tuple[str, ...] = get_args(Severity)


class RuleSetError(ValueError):
    """The rule-set data is malformed; the message names the file, the field path and the problem."""


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


# --------------------------------------------------------------------------------------------------
# The file format, declared (pydantic; see kapclinic/clinical/datafile.py)
# --------------------------------------------------------------------------------------------------
# Names a check may refer to are collected in the validation context as the file is read, in field
# order (parameters, questions, medication classes, then rules), so an undeclared name is reported at
# the check that uses it: ``rules[3].check.any[1].answer: the check refers to an undeclared question``.


def _known(info: ValidationInfo, kind: str) -> frozenset[str] | None:
    known = (info.context or {}).get(kind)
    return known if isinstance(known, frozenset) else None


def _remember(info: ValidationInfo, kind: str, names: Iterable[str]) -> None:
    if isinstance(info.context, dict):
        info.context[kind] = frozenset(names)


def _refer(info: ValidationInfo, kind: str, noun: str, value: str | None) -> None:
    known = _known(info, kind)
    if value is not None and known is not None and value not in known:
        raise ValueError(f"the check refers to an undeclared {noun} {value!r}")


def _unique(ids: Iterable[str], noun: str) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"{noun} ids must be unique ({i!r} appears twice)")
        seen.add(i)


def _number(value: object) -> float:
    """A parameter default: a JSON whole number or an exact decimal string, never a JSON fraction."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return float(decimal_from_text(value))


class ParameterIn(DataModel):
    default: Annotated[float, PlainValidator(_number)]
    unit: Text
    label: Text
    source: Text


class QuestionIn(DataModel):
    id: Text
    section: Section
    asked_of: Literal["patient", "clinician"]
    label: Text
    patient_text: StrictStr
    source: Text

    @field_validator("patient_text")
    @classmethod
    def _patient_wording(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("asked_of") == "patient" and not value.strip():
            raise ValueError("a patient question needs its patient_text")
        return value


class MedicationClassIn(DataModel):
    id: Text
    label: Text
    severity: Severity
    effect: Text
    source: Text


class LexiconIn(DataModel):
    source: str | None = None
    names: dict[str, tuple[Text, ...]] = Field(default_factory=dict)

    @field_validator("names")
    @classmethod
    def _declared_classes(cls, value: dict[str, tuple[str, ...]], info: ValidationInfo) -> Any:
        known = _known(info, "classes")
        for class_id in value:
            if known is not None and class_id not in known:
                raise ValueError(f"the medication lexicon names an undeclared class {class_id!r}")
        return value


class CheckIn(DataModel):
    """Exactly one of: ``answer``; ``value`` + ``op`` + ``param``; ``medication_class``; ``any``; ``all``."""

    answer: str | None = None
    value: str | None = None
    op: Operator | None = None
    param: str | None = None
    medication_class: str | None = None
    any: tuple[CheckIn, ...] | None = None
    all: tuple[CheckIn, ...] | None = None

    @field_validator("answer")
    @classmethod
    def _question(cls, value: str | None, info: ValidationInfo) -> Any:
        _refer(info, "questions", "question", value)
        return value

    @field_validator("value")
    @classmethod
    def _numeric_field(cls, value: str | None) -> Any:
        if value is not None and value not in NUMERIC_FIELDS:
            raise ValueError(f"{value!r} is not a known numeric field ({', '.join(NUMERIC_FIELDS)})")
        return value

    @field_validator("param")
    @classmethod
    def _parameter(cls, value: str | None, info: ValidationInfo) -> Any:
        _refer(info, "parameters", "parameter", value)
        return value

    @field_validator("medication_class")
    @classmethod
    def _medication_class(cls, value: str | None, info: ValidationInfo) -> Any:
        _refer(info, "classes", "medication class", value)
        return value

    @field_validator("any", "all")
    @classmethod
    def _children(cls, value: tuple[CheckIn, ...] | None, info: ValidationInfo) -> Any:
        if value is not None and not value:
            raise ValueError(f"{info.field_name!r} needs a non-empty list of checks")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        kinds = [
            k for k in ("answer", "value", "medication_class", "any", "all") if getattr(self, k) is not None
        ]
        if len(kinds) != 1:
            raise ValueError(
                "a check is exactly one of answer, value (with op and param), medication_class, any, all"
            )
        if (self.value is not None) != (self.op is not None) or (self.value is not None) != (
            self.param is not None
        ):
            raise ValueError(
                "a value check needs value, op and param together (and only a value check has them)"
            )
        return self

    def check(self) -> Check:
        if self.answer is not None:
            return AnswerCheck(self.answer)
        if self.value is not None and self.op is not None and self.param is not None:
            return ValueCheck(self.value, self.op, self.param)
        if self.medication_class is not None:
            return MedicationClassCheck(self.medication_class)
        if self.any is not None:
            return AnyCheck(tuple(c.check() for c in self.any))
        assert self.all is not None  # _one_kind
        return AllCheck(tuple(c.check() for c in self.all))


class ScopeIn(DataModel):
    products: tuple[StrictStr, ...] = ()
    routes: tuple[StrictStr, ...] = ()
    dose_bases: tuple[StrictStr, ...] = ()


class RuleIn(DataModel):
    id: Text
    title: Text
    outcome: Outcome
    check: CheckIn
    explanation: Text
    citation: Text
    applies_to: ScopeIn | None = None

    def rule(self) -> Rule:
        scope = self.applies_to or ScopeIn()
        return Rule(
            id=self.id,
            title=self.title,
            outcome=self.outcome,
            check=self.check.check(),
            explanation=self.explanation,
            citation=self.citation,
            scope=Scope(scope.products, scope.routes, scope.dose_bases),
        )


class RuleSetFile(DataModel):
    """The whole file (field order matters: names are declared before the rules refer to them).

    Validate it through :func:`parse_rule_set`, which passes the context the reference checks fill."""

    id: Text
    version: Text
    title: Text
    source: Text
    parameters: dict[str, ParameterIn]
    questions: tuple[QuestionIn, ...]
    medication_classes: tuple[MedicationClassIn, ...]
    medication_lexicon: LexiconIn = Field(default_factory=LexiconIn)
    rules: tuple[RuleIn, ...]

    @field_validator("parameters")
    @classmethod
    def _declare_parameters(cls, value: dict[str, ParameterIn], info: ValidationInfo) -> Any:
        _remember(info, "parameters", value)
        return value

    @field_validator("questions")
    @classmethod
    def _declare_questions(cls, value: tuple[QuestionIn, ...], info: ValidationInfo) -> Any:
        _unique((q.id for q in value), "question")
        _remember(info, "questions", (q.id for q in value))
        return value

    @field_validator("medication_classes")
    @classmethod
    def _declare_classes(cls, value: tuple[MedicationClassIn, ...], info: ValidationInfo) -> Any:
        _remember(info, "classes", (c.id for c in value))
        return value

    @field_validator("rules")
    @classmethod
    def _unique_rules(cls, value: tuple[RuleIn, ...]) -> Any:
        _unique((r.id for r in value), "rule")
        return value

    def rule_set(self, digest: str) -> RuleSet:
        return RuleSet(
            id=self.id,
            version=self.version,
            title=self.title,
            source=self.source,
            digest=digest,
            parameters=tuple(
                Parameter(name, p.default, p.unit, p.label, p.source) for name, p in self.parameters.items()
            ),
            questions=tuple(
                Question(q.id, q.section, q.asked_of, q.label, q.patient_text, q.source)
                for q in self.questions
            ),
            medication_classes=tuple(
                MedicationClass(c.id, c.label, c.severity, c.effect, c.source)
                for c in self.medication_classes
            ),
            lexicon=tuple(
                sorted(
                    (name.lower(), class_id)
                    for class_id, names in self.medication_lexicon.names.items()
                    for name in names
                )
            ),
            rules=tuple(r.rule() for r in self.rules),
        )


def parse_rule_set(data: Mapping[str, Any], digest: str = "", *, path: str = "<data>") -> RuleSet:
    """Validate decoded JSON against :class:`RuleSetFile` and build the :class:`RuleSet`.

    Raises :class:`RuleSetError` naming ``path`` and the field path of every problem."""
    try:
        document = RuleSetFile.model_validate(data, context={})
    except ValidationError as exc:
        raise RuleSetError(f"{path}: {describe(exc)}") from None
    return document.rule_set(digest)


def load_rule_set_file(path: Path) -> RuleSet:
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RuleSetError(f"The rule-set file {path.name} is not valid JSON: {exc}.") from None
    return parse_rule_set(data, digest=digest, path=path.name)


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
