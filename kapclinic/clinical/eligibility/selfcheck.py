"""The public "Is KAP right for me?" self-check (pure; no Django). It is NOT diagnostic.

- Mood and worry: PHQ-9 items 1-2 (the PHQ-2) and GAD-7 items 1-2 (the GAD-2), wording and answer
  options taken verbatim from the instrument definitions in ``kapclinic.clinical.instruments``
  ([S42d][S42e] ref §4.1, §4.2). The reference gives no PHQ-2/GAD-2 cut-off, so the totals are shown
  to the person but never interpreted.
- Thoughts of self-harm: PHQ-9 item 9 wording ([S42d] ref §4.1). Any answer other than "Not at all"
  shows crisis resources at once (design recommendation for item 9 > 0, ref §3.9), as does a "yes" to
  the question about a current intent or plan (ref §3.4 [S36f]: higher level of care).
- Red flags: the patient-worded questions for the label contraindications and main relative
  contraindications from the eligibility rule set (ref §3.1-3.5). A "yes" leads to "talk to your
  doctor first"; "not sure" answers are listed as things to raise at a consultation.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from ..instruments.loader import AnswerOption, get_instrument
from .model import Answer
from .ruleset import RuleSet, load_rule_set


class NextStep(enum.StrEnum):
    CRISIS = "crisis"
    TALK_TO_DOCTOR = "talk_to_doctor"
    CONSULTATION = "consultation"


@dataclass(frozen=True)
class FrequencyQuestion:
    key: str  # form field name, e.g. "phq9_1"
    instrument: str
    item_number: int
    text: str
    options: tuple[AnswerOption, ...]


@dataclass(frozen=True)
class FlagQuestion:
    key: str
    text: str


#: Red-flag questions taken from the eligibility rule set (patient wording), in display order.
RED_FLAG_QUESTION_IDS: tuple[str, ...] = (
    "ketamine_hypersensitivity",
    "aneurysmal_vascular_disease",
    "arteriovenous_malformation",
    "intracerebral_hemorrhage",
    "uncontrolled_hypertension",
    "cardiovascular_disease",
    "psychotic_disorder",
    "substance_use_disorder_active",
    "pregnant",
    "breastfeeding",
)
UNDER_18_KEY = "under_18"
UNDER_18_TEXT = "Are you under 18 years old?"  # [S3] ref §3.7; [S36g] ref §3.4
INTENT_KEY = "suicidal_intent_or_plan"

PRIOR_TREATMENTS: tuple[tuple[str, str], ...] = (
    ("antidepressant", "Antidepressant medication"),
    ("psychotherapy", "Talk therapy (psychotherapy)"),
    ("ect", "Electroconvulsive therapy (ECT)"),
    ("tms", "Transcranial magnetic stimulation (TMS)"),
    ("ketamine", "Ketamine or esketamine"),
    ("none", "None of these"),
)


@dataclass(frozen=True)
class SelfCheckForm:
    stem_mood: str
    stem_worry: str
    mood: tuple[FrequencyQuestion, ...]
    worry: tuple[FrequencyQuestion, ...]
    self_harm: FrequencyQuestion
    intent: FlagQuestion
    red_flags: tuple[FlagQuestion, ...]
    prior_treatments: tuple[tuple[str, str], ...]


def _freq(instrument: str, number: int, prefix: str) -> FrequencyQuestion:
    item = get_instrument(instrument).item(number)
    return FrequencyQuestion(f"{prefix}_{number}", instrument, number, item.text, item.options)


def self_check_form(rule_set: RuleSet | None = None) -> SelfCheckForm:
    rs = rule_set or load_rule_set()
    phq, gad = get_instrument("PHQ-9"), get_instrument("GAD-7")
    flags = tuple(FlagQuestion(qid, rs.question(qid).patient_text) for qid in RED_FLAG_QUESTION_IDS)
    return SelfCheckForm(
        stem_mood=phq.instructions[0],
        stem_worry=gad.instructions[0],
        mood=(_freq("PHQ-9", 1, "phq9"), _freq("PHQ-9", 2, "phq9")),
        worry=(_freq("GAD-7", 1, "gad7"), _freq("GAD-7", 2, "gad7")),
        self_harm=_freq("PHQ-9", 9, "phq9"),
        intent=FlagQuestion(INTENT_KEY, rs.question(INTENT_KEY).patient_text),
        red_flags=(FlagQuestion(UNDER_18_KEY, UNDER_18_TEXT), *flags),
        prior_treatments=PRIOR_TREATMENTS,
    )


@dataclass(frozen=True)
class SelfCheckAnswers:
    frequencies: Mapping[str, int]  # phq9_1, phq9_2, gad7_1, gad7_2, phq9_9 -> 0..3
    flags: Mapping[str, Answer]  # red flags + intent; absent = not answered
    prior_treatments: tuple[str, ...] = ()


@dataclass(frozen=True)
class SelfCheckResult:
    next_step: NextStep
    mood_total: int | None  # PHQ-2 total (0-6), shown, never interpreted
    worry_total: int | None  # GAD-2 total (0-6), shown, never interpreted
    red_flags_yes: tuple[str, ...]  # patient-worded questions answered yes
    to_discuss: tuple[str, ...]  # questions answered "not sure" / left unanswered
    prior_treatments: tuple[str, ...]  # labels


def _total(freqs: Mapping[str, int], keys: tuple[str, ...]) -> int | None:
    values = [freqs.get(k) for k in keys]
    if any(v is None for v in values):
        return None  # never prorate a missing item (ref §4.1)
    return sum(v for v in values if v is not None)


def validate_answers(answers: SelfCheckAnswers, form: SelfCheckForm | None = None) -> tuple[str, ...]:
    """Refusals for an incomplete or out-of-range self-check (sentences naming the question)."""
    f = form or self_check_form()
    errors: list[str] = []
    for q in (*f.mood, *f.worry, f.self_harm):
        value = answers.frequencies.get(q.key)
        allowed = {o.score for o in q.options}
        if value is None:
            errors.append(f"Please answer '{q.text}'.")
        elif value not in allowed:
            errors.append(f"The answer to '{q.text}' must be one of the listed options.")
    known = {t for t, _ in PRIOR_TREATMENTS}
    for t in answers.prior_treatments:
        if t not in known:
            errors.append(f"'{t}' is not one of the listed prior treatments.")
    return tuple(errors)


def assess(answers: SelfCheckAnswers, form: SelfCheckForm | None = None) -> SelfCheckResult:
    """Honest next step. Crisis resources come first whenever self-harm is reported."""
    f = form or self_check_form()
    self_harm = answers.frequencies.get(f.self_harm.key)
    intent = answers.flags.get(INTENT_KEY, Answer.UNKNOWN)
    yes = tuple(q.text for q in f.red_flags if answers.flags.get(q.key) is Answer.YES)
    unsure = tuple(
        q.text for q in (*f.red_flags, f.intent) if answers.flags.get(q.key, Answer.UNKNOWN) is Answer.UNKNOWN
    )
    if (self_harm is not None and self_harm > 0) or intent is Answer.YES:
        step = NextStep.CRISIS
    elif yes:
        step = NextStep.TALK_TO_DOCTOR
    else:
        step = NextStep.CONSULTATION
    labels = dict(PRIOR_TREATMENTS)
    return SelfCheckResult(
        next_step=step,
        mood_total=_total(answers.frequencies, tuple(q.key for q in f.mood)),
        worry_total=_total(answers.frequencies, tuple(q.key for q in f.worry)),
        red_flags_yes=yes,
        to_discuss=unsure,
        prior_treatments=tuple(labels[t] for t in answers.prior_treatments if t in labels),
    )
