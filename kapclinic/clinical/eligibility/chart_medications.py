"""From the chart's medication list to the rule set's interaction classes (ref §3.6). Pure.

The chart (patients app) keeps ONE medication list with a coarse drug class. The eligibility rule set
has finer interaction classes. This module maps one to the other so the assessment's interaction flags
read the chart's current medications:

* chart classes that name an interaction class map to it one-to-one and are fixed (to change them, fix
  the chart): benzodiazepine, opioid, stimulant, MAOI, other sedative/hypnotic;
* "antidepressant" and "other" are coarse: the clinician may confirm a finer class in the assessment
  (e.g. a CYP2B6/3A4 modulator, lamotrigine, a nasal steroid, or an MAOI recorded as "antidepressant");
  until they do, a name found in the rule set's lexicon suggests the class (so phenelzine recorded as an
  antidepressant is still flagged as an MAOI), otherwise the one-to-one class applies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .engine import classify_medication
from .model import Medication
from .ruleset import RuleSet

#: chart DrugClass value -> rule-set medication class id
CHART_TO_RULESET: dict[str, str] = {
    "benzodiazepine": "benzodiazepine",
    "opioid": "opioid",
    "stimulant": "stimulant",
    "maoi": "maoi",
    "sedative": "sedative_hypnotic",
    "antidepressant": "antidepressant",
    "other": "other",
}

#: chart classes whose interaction class the clinician may refine in the assessment
REFINABLE = frozenset({"antidepressant", "other"})

#: rule-set class id -> chart DrugClass value (for medications added from the assessment page)
RULESET_TO_CHART: dict[str, str] = {
    "benzodiazepine": "benzodiazepine",
    "opioid": "opioid",
    "stimulant": "stimulant",
    "maoi": "maoi",
    "sedative_hypnotic": "sedative",
    "antidepressant": "antidepressant",
}


@dataclass(frozen=True)
class ChartMedication:
    """One active row of the chart's medication list, as plain values."""

    id: int
    name: str
    dose: str
    chart_class: str


@dataclass(frozen=True)
class ClassifiedMedication:
    medication: ChartMedication
    ruleset_class: str
    basis: str  # "chart" | "confirmed" | "suggested"

    @property
    def refinable(self) -> bool:
        return self.medication.chart_class in REFINABLE

    def as_rule_input(self) -> Medication:
        return Medication(self.medication.name, self.ruleset_class, self.medication.dose)


def classify_chart_medication(
    med: ChartMedication, confirmed: str | None, rule_set: RuleSet
) -> ClassifiedMedication:
    """The rule-set class of one chart medication, and on what basis it was chosen."""
    known = {c.id for c in rule_set.medication_classes}
    mapped = CHART_TO_RULESET.get(med.chart_class, "other")
    if med.chart_class not in REFINABLE:
        return ClassifiedMedication(med, mapped if mapped in known else "other", "chart")
    if confirmed and confirmed in known:
        return ClassifiedMedication(med, confirmed, "confirmed")
    suggested = classify_medication(med.name, rule_set)
    if suggested != "other" and suggested != mapped:
        return ClassifiedMedication(med, suggested, "suggested")
    return ClassifiedMedication(med, mapped if mapped in known else "other", "chart")


def classify_chart_medications(
    meds: Iterable[ChartMedication], confirmed: Mapping[str, str], rule_set: RuleSet
) -> tuple[ClassifiedMedication, ...]:
    """``confirmed`` maps str(medication id) to the class the clinician confirmed in the assessment."""
    return tuple(classify_chart_medication(m, confirmed.get(str(m.id)), rule_set) for m in meds)


def relevant_digest(classified: Iterable[ClassifiedMedication], rule_set: RuleSet) -> str:
    """A fingerprint of what the rules can see: the medications whose class carries an interaction of
    severity "review" or "caution". A signed decision is stale when it changes; an added vitamin or
    antidepressant (severity "info") does not make it stale."""
    severity = {c.id: c.severity for c in rule_set.medication_classes}
    rows = sorted(
        f"{c.medication.name.strip().casefold()}|{c.ruleset_class}"
        for c in classified
        if severity.get(c.ruleset_class) in ("review", "caution")
    )
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()
