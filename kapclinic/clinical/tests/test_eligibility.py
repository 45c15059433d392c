"""Eligibility rules engine: a worked example that fires and one that does not for every rule,
missing-information findings, signing checks, and property tests (issue 4; ref §3)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kapclinic.clinical.eligibility import (
    Answer,
    Decision,
    FindingStatus,
    IntakeRecord,
    Medication,
    Outcome,
    ProtocolContext,
    ReportStatus,
    RuleSetError,
    age_on,
    bmi,
    check_decision,
    classify_medication,
    evaluate,
    interaction_flags,
    load_rule_set,
    resolve_parameters,
    selfcheck,
    treatment_resistance,
)
from kapclinic.clinical.eligibility.ruleset import AnswerCheck, parse_rule_set

RS = load_rule_set()
TODAY = date(2026, 11, 25)
ESK = ProtocolContext("esk-nasal", "1", product="esketamine", route="intranasal", dose_basis="fixed_mg")
IV = ProtocolContext("iv-racemic", "1", product="racemic_ketamine", route="iv", dose_basis="mg_per_kg")
SL = ProtocolContext("sl-lozenge", "1", product="racemic_ketamine", route="sublingual", dose_basis="fixed_mg")


def clean(**changes: Any) -> IntakeRecord:
    """A complete record on which no rule fires: every question answered no, normal values."""
    base = IntakeRecord(
        answers=dict.fromkeys(RS.question_ids, Answer.NO),
        date_of_birth=date(1986, 3, 14),
        systolic_bp=120,
        diastolic_bp=78,
        heart_rate=72,
        spo2=98,
        weight_kg=70,
        height_cm=175,
        adequate_failed_trials=3,
        benzodiazepine_dz_eq_mg_day=None,
        medications_reviewed=Answer.YES,
        medications=(),
    )
    return replace(base, **changes)


def yes(*question_ids: str, **changes: Any) -> IntakeRecord:
    answers = dict.fromkeys(RS.question_ids, Answer.NO)
    for q in question_ids:
        answers[q] = Answer.YES
    return clean(answers=answers, **changes)


def with_med(drug_class: str, **changes: Any) -> IntakeRecord:
    return clean(medications=(Medication(f"test-{drug_class}", drug_class),), **changes)


def ids(report: Any) -> set[str]:
    return {f.rule_id for f in report.findings}


def finding(report: Any, rule_id: str) -> Any:
    return next(f for f in report.findings if f.rule_id == rule_id)


# rule id -> (record that fires it, protocol, record that does not fire it)
Example = tuple[Callable[[], IntakeRecord], ProtocolContext | None, Callable[[], IntakeRecord]]
EXAMPLES: dict[str, Example] = {
    "EX-ANEURYSM": (lambda: yes("aneurysmal_vascular_disease"), None, clean),
    "EX-AVM": (lambda: yes("arteriovenous_malformation"), None, clean),
    "EX-ICH": (lambda: yes("intracerebral_hemorrhage"), None, clean),
    "EX-HYPERSENSITIVITY": (lambda: yes("ketamine_hypersensitivity"), IV, clean),
    "EX-BP-HAZARD": (lambda: yes("bp_rise_serious_hazard"), None, clean),
    "EX-ESK-MINOR": (
        lambda: clean(date_of_birth=date(2009, 11, 26)),  # 17 until tomorrow
        ESK,
        lambda: clean(date_of_birth=date(2008, 11, 25)),  # 18 today
    ),
    "RV-MINOR": (
        lambda: clean(date_of_birth=date(2009, 11, 26)),
        SL,
        lambda: clean(date_of_birth=date(2008, 11, 25)),
    ),
    "RV-BP-BASELINE": (
        lambda: clean(systolic_bp=141, diastolic_bp=80),
        None,
        lambda: clean(systolic_bp=140, diastolic_bp=90),  # at the threshold is not above it
    ),
    "RV-HTN-UNCONTROLLED": (lambda: yes("uncontrolled_hypertension"), None, clean),
    "CA-HTN-ENCEPHALOPATHY": (lambda: yes("hypertensive_encephalopathy"), None, clean),
    "RV-CARDIOVASCULAR": (lambda: yes("cerebrovascular_disease"), None, clean),
    "RV-ICP-IOP": (lambda: yes("raised_intraocular_pressure"), None, clean),
    "RV-HEPATIC": (lambda: yes("hepatic_impairment"), None, clean),
    "RV-CYSTITIS": (lambda: yes("cystitis"), None, clean),
    "RV-PRIOR-ADVERSE": (lambda: yes("prior_adverse_reaction_ketamine"), None, clean),
    "RV-COGNITIVE": (lambda: yes("cognitive_impairment"), None, clean),
    "CA-DELIRIUM": (lambda: yes("delirium_confounder"), None, clean),
    "RV-PSYCHOSIS": (lambda: yes("psychosis_current_episode"), None, lambda: yes("mania_history")),
    "RV-PSYCHOSIS-RISK": (lambda: yes("psychosis_family_history"), None, clean),
    "RV-SUICIDE-PLAN": (lambda: yes("suicidal_intent_or_plan"), None, lambda: yes("suicide_attempt_history")),
    "RV-PERSONALITY": (lambda: yes("severe_personality_disorder"), None, clean),
    "RV-SUD": (lambda: yes("ketamine_use_disorder"), None, clean),
    "CA-ALCOHOL": (lambda: yes("alcohol_use_current"), None, clean),
    "RV-PREGNANCY": (lambda: yes("breastfeeding"), None, clean),
    "RV-MED-BENZODIAZEPINE": (lambda: with_med("benzodiazepine"), None, lambda: with_med("antidepressant")),
    "RV-MED-OPIOID": (lambda: with_med("opioid"), None, lambda: with_med("lamotrigine")),
    "RV-MED-STIMULANT": (lambda: with_med("stimulant"), None, lambda: with_med("other")),
    "RV-MED-MAOI": (lambda: with_med("maoi"), None, clean),
    "CA-MED-SEDATIVE": (lambda: with_med("sedative_hypnotic"), None, clean),
    "CA-MED-CYP": (lambda: with_med("cyp_modulator"), None, clean),
    "CA-BENZO-DOSE": (
        lambda: with_med("benzodiazepine", benzodiazepine_dz_eq_mg_day=10),
        None,
        lambda: with_med("benzodiazepine", benzodiazepine_dz_eq_mg_day=8),
    ),
    "CA-ESK-NASAL": (lambda: with_med("nasal_steroid_decongestant"), ESK, clean),
    "RV-ESK-INDICATION": (
        lambda: clean(adequate_failed_trials=1),
        ESK,
        lambda: clean(adequate_failed_trials=2),
    ),
    "CA-ESK-OLDER": (
        lambda: clean(date_of_birth=date(1961, 11, 25)),  # 65 today
        ESK,
        lambda: clean(date_of_birth=date(1961, 11, 26)),  # 64
    ),
    "CA-ESK-YOUNG-ADULT": (
        lambda: clean(date_of_birth=date(2002, 11, 25)),  # 24 today
        ESK,
        lambda: clean(date_of_birth=date(2001, 11, 25)),  # 25
    ),
    "CA-BMI-IBW": (
        lambda: clean(weight_kg=92, height_cm=175),  # BMI 30.0
        IV,
        lambda: clean(weight_kg=91, height_cm=175),  # BMI 29.7
    ),
}


def test_every_rule_has_a_worked_example() -> None:
    assert set(EXAMPLES) == {r.id for r in RS.rules}


def test_clean_record_is_clear_for_every_protocol() -> None:
    for protocol in (None, ESK, IV, SL):
        report = evaluate(clean(), as_of=TODAY, protocol=protocol)
        assert report.findings == (), protocol
        assert report.status is ReportStatus.CLEAR
        assert report.can_be_signed_eligible


@pytest.mark.parametrize("rule_id", sorted(EXAMPLES))
def test_rule_fires_on_its_example(rule_id: str) -> None:
    fire, protocol, _ = EXAMPLES[rule_id]
    report = evaluate(fire(), as_of=TODAY, protocol=protocol)
    f = finding(report, rule_id)
    rule = RS.rule(rule_id)
    assert f.status is FindingStatus.FIRED
    assert f.outcome is rule.outcome
    assert f.evidence, "a fired rule must say what in the record made it fire"
    assert f.citation.startswith("[S") and "ref §" in f.citation
    assert f.explanation == rule.explanation
    assert report.rule_set_version == RS.version


@pytest.mark.parametrize("rule_id", sorted(EXAMPLES))
def test_rule_does_not_fire_on_its_counter_example(rule_id: str) -> None:
    _, protocol, quiet = EXAMPLES[rule_id]
    assert rule_id not in ids(evaluate(quiet(), as_of=TODAY, protocol=protocol))


def test_outcome_classes_follow_reference_3_5() -> None:
    excludes = {r.id for r in RS.rules if r.outcome is Outcome.EXCLUDE}
    assert excludes == {
        "EX-ANEURYSM",
        "EX-AVM",
        "EX-ICH",
        "EX-HYPERSENSITIVITY",
        "EX-BP-HAZARD",
        "EX-ESK-MINOR",
    }
    assert RS.rule("RV-PREGNANCY").outcome is Outcome.REVIEW
    assert RS.rule("RV-PSYCHOSIS").outcome is Outcome.REVIEW


def test_evidence_names_the_value_and_the_threshold() -> None:
    report = evaluate(clean(systolic_bp=152, diastolic_bp=95), as_of=TODAY)
    assert finding(report, "RV-BP-BASELINE").evidence == (
        "Systolic blood pressure: 152 mmHg (rule: > 140 mmHg)",
        "Diastolic blood pressure: 95 mmHg (rule: > 90 mmHg)",
    )


# --- protocol scope -----------------------------------------------------------------------------


def test_esketamine_age_rule_applies_only_to_esketamine() -> None:
    minor = clean(date_of_birth=date(2010, 1, 1))
    esk = evaluate(minor, as_of=TODAY, protocol=ESK)
    iv = evaluate(minor, as_of=TODAY, protocol=IV)
    general = evaluate(minor, as_of=TODAY)
    assert esk.status is ReportStatus.HARD_STOP
    assert "EX-ESK-MINOR" not in ids(iv) and iv.status is ReportStatus.NEEDS_REVIEW
    assert "EX-ESK-MINOR" in general.not_evaluated
    assert "EX-ESK-MINOR" not in ids(general)
    assert "RV-MINOR" in ids(general)


def test_bmi_rule_only_for_weight_based_protocols() -> None:
    heavy = clean(weight_kg=110, height_cm=170)
    assert "CA-BMI-IBW" in ids(evaluate(heavy, as_of=TODAY, protocol=IV))
    assert "CA-BMI-IBW" not in ids(evaluate(heavy, as_of=TODAY, protocol=SL))
    assert "CA-BMI-IBW" in evaluate(heavy, as_of=TODAY, protocol=SL).not_evaluated


def test_protocol_may_set_its_own_bp_threshold() -> None:
    record = clean(systolic_bp=135, diastolic_bp=85)
    strict = replace(IV, parameters={"bp_systolic_max": 130})
    assert "RV-BP-BASELINE" not in ids(evaluate(record, as_of=TODAY, protocol=IV))
    fired = finding(evaluate(record, as_of=TODAY, protocol=strict), "RV-BP-BASELINE")
    assert fired.evidence == ("Systolic blood pressure: 135 mmHg (rule: > 130 mmHg)",)


def test_clinic_configuration_overrides_default_and_protocol_overrides_clinic() -> None:
    values = resolve_parameters(
        RS, {"bp_systolic_max": 150}, replace(IV, parameters={"bp_systolic_max": 145})
    )
    assert values["bp_systolic_max"] == 145
    assert resolve_parameters(RS, {"bp_systolic_max": 150})["bp_systolic_max"] == 150
    assert resolve_parameters(RS)["bp_systolic_max"] == 140


def test_unknown_parameter_is_refused_with_a_sentence() -> None:
    with pytest.raises(ValueError, match=r"'bp_max', which is not a parameter"):
        resolve_parameters(RS, {"bp_max": 150})


def test_every_parameter_has_a_cited_default() -> None:
    for p in RS.parameters:
        assert "ref §" in p.source, p.name


# --- missing information is a finding ----------------------------------------------------------


def test_empty_record_is_incomplete_never_eligible() -> None:
    report = evaluate(IntakeRecord(), as_of=TODAY)
    assert report.status is ReportStatus.INCOMPLETE
    assert not report.can_be_signed_eligible
    assert all(f.status is FindingStatus.MISSING for f in report.findings)
    assert {"EX-ANEURYSM", "EX-AVM", "EX-ICH", "EX-HYPERSENSITIVITY", "EX-BP-HAZARD"} <= ids(report)


@pytest.mark.parametrize(
    "rule", [r for r in RS.rules if isinstance(r.check, AnswerCheck)], ids=lambda r: r.id
)
def test_unanswered_question_is_a_missing_finding_not_a_no(rule: Any) -> None:
    answers = dict.fromkeys(RS.question_ids, Answer.NO)
    del answers[rule.check.question_id]
    report = evaluate(clean(answers=answers), as_of=TODAY, protocol=ESK)
    f = finding(report, rule.id)
    assert f.status is FindingStatus.MISSING
    assert f.missing_fields == (rule.check.question_id,)
    assert f.evidence[0].endswith("not answered")


def test_unreviewed_medication_list_is_missing_for_each_class_rule() -> None:
    report = evaluate(clean(medications_reviewed=Answer.UNKNOWN), as_of=TODAY)
    missing = {f.rule_id for f in report.missing}
    assert {"RV-MED-BENZODIAZEPINE", "RV-MED-OPIOID", "RV-MED-STIMULANT", "RV-MED-MAOI"} <= missing
    assert report.status is ReportStatus.NEEDS_REVIEW


def test_any_check_fires_if_one_child_is_yes_even_when_another_is_unknown() -> None:
    answers = dict.fromkeys(RS.question_ids, Answer.NO)
    answers["psychotic_disorder"] = Answer.UNKNOWN
    answers["psychotic_mania"] = Answer.YES
    f = finding(evaluate(clean(answers=answers), as_of=TODAY), "RV-PSYCHOSIS")
    assert f.status is FindingStatus.FIRED
    assert f.evidence == ("Bipolar disorder with psychotic mania: yes",)


def test_all_check_with_known_false_child_does_not_fire() -> None:
    # benzodiazepine dose unknown, but no benzodiazepine in a reviewed list: nothing to say
    assert "CA-BENZO-DOSE" not in ids(evaluate(clean(), as_of=TODAY))
    # benzodiazepine present, dose unknown: missing
    f = finding(evaluate(with_med("benzodiazepine"), as_of=TODAY), "CA-BENZO-DOSE")
    assert f.status is FindingStatus.MISSING
    assert f.missing_fields == ("benzodiazepine_dz_eq_mg_day",)


def test_missing_weight_for_weight_based_protocol_is_a_caution_finding() -> None:
    f = finding(evaluate(clean(height_cm=None), as_of=TODAY, protocol=IV), "CA-BMI-IBW")
    assert f.status is FindingStatus.MISSING and f.outcome is Outcome.CAUTION


def test_missing_birth_date_needs_review_and_esketamine_cannot_be_eligible() -> None:
    report = evaluate(clean(date_of_birth=None), as_of=TODAY, protocol=ESK)
    assert report.status is ReportStatus.INCOMPLETE
    assert finding(report, "EX-ESK-MINOR").status is FindingStatus.MISSING


# --- signing -------------------------------------------------------------------------------------


def test_hard_stop_cannot_be_signed_eligible() -> None:
    report = evaluate(yes("arteriovenous_malformation"), as_of=TODAY)
    errors = check_decision(report, Decision.ELIGIBLE, "benefit outweighs risk")
    assert errors == (
        "The decision cannot be 'eligible' because a hard stop fired: Arteriovenous malformation.",
    )
    assert check_decision(report, Decision.NOT_ELIGIBLE, "AVM on imaging") == ()
    assert check_decision(report, Decision.REFER_ELSEWHERE, "refer to neurology") == ()


def test_unanswered_hard_stop_cannot_be_signed_eligible() -> None:
    answers = dict.fromkeys(RS.question_ids, Answer.NO)
    del answers["bp_rise_serious_hazard"]
    errors = check_decision(evaluate(clean(answers=answers), as_of=TODAY), Decision.ELIGIBLE, "ok")
    assert len(errors) == 1 and "unanswered" in errors[0] and "Blood-pressure rise" in errors[0]


def test_review_needs_written_rationale() -> None:
    report = evaluate(yes("pregnant"), as_of=TODAY)
    assert report.status is ReportStatus.NEEDS_REVIEW
    errors = check_decision(report, Decision.ELIGIBLE, "discussed", {"RV-PREGNANCY": "  "})
    assert errors == (
        "The rationale for review item 'Pregnancy or breastfeeding' (RV-PREGNANCY) is required "
        "to sign 'eligible'.",
    )
    assert (
        check_decision(report, Decision.ELIGIBLE, "discussed", {"RV-PREGNANCY": "Planning; obstetric input"})
        == ()
    )


def test_reason_is_required_for_every_decision() -> None:
    report = evaluate(clean(), as_of=TODAY)
    for decision in Decision:
        assert check_decision(report, decision, "  ") == (
            "The reason is required: write why you reached this decision.",
        )


def test_report_serialises_to_json_with_rule_set_version_and_digest() -> None:
    report = evaluate(yes("pregnant", systolic_bp=150), as_of=TODAY, protocol=IV)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["rule_set_id"] == "kap-eligibility"
    assert data["rule_set_version"] == RS.version
    assert len(data["rule_set_digest"]) == 64
    assert data["status"] == "needs_review"
    assert data["protocol_id"] == "iv-racemic"
    assert {f["rule_id"] for f in data["findings"]} == {"RV-PREGNANCY", "RV-BP-BASELINE"}


def test_findings_are_ordered_by_severity() -> None:
    report = evaluate(yes("alcohol_use_current", "pregnant", "arteriovenous_malformation"), as_of=TODAY)
    assert [f.outcome for f in report.findings] == [Outcome.EXCLUDE, Outcome.REVIEW, Outcome.CAUTION]


# --- derived values ------------------------------------------------------------------------------


def test_bmi() -> None:
    assert bmi(70, 175) == 22.9
    assert bmi(None, 175) is None
    assert bmi(70, 0) is None
    assert bmi(0, 175) is None


def test_age_on_birthday_and_leap_day() -> None:
    assert age_on(date(2000, 11, 25), date(2026, 11, 25)) == 26
    assert age_on(date(2000, 11, 26), date(2026, 11, 25)) == 25
    assert age_on(date(2004, 2, 29), date(2022, 2, 28)) == 17
    assert age_on(date(2004, 2, 29), date(2022, 3, 1)) == 18
    assert age_on(None, TODAY) is None


def test_treatment_resistance_flag() -> None:
    assert treatment_resistance(None) is Answer.UNKNOWN
    assert treatment_resistance(1) is Answer.NO
    assert treatment_resistance(2) is Answer.YES
    assert treatment_resistance(2, min_failed_trials=3) is Answer.NO
    assert evaluate(clean(adequate_failed_trials=2), as_of=TODAY).treatment_resistant is Answer.YES


def test_medication_lexicon_and_interaction_flags() -> None:
    assert classify_medication("Lorazepam 1 mg") == "benzodiazepine"
    assert classify_medication("methylphenidate ER") == "stimulant"
    assert classify_medication("Phenelzine") == "maoi"
    assert classify_medication("sertraline") == "other"
    meds = (
        Medication("Sertraline", "antidepressant"),
        Medication("Lorazepam", "benzodiazepine"),
        Medication("Vitamin D", "other"),
        Medication("Zolpidem", "sedative_hypnotic"),
    )
    flags = interaction_flags(meds, RS)
    assert [(f.medication, f.severity) for f in flags] == [
        ("Lorazepam", "review"),
        ("Zolpidem", "caution"),
        ("Sertraline", "info"),
    ]
    assert all("ref §3.6" in f.citation for f in flags)


def test_protocol_context_from_library_json() -> None:
    ctx = ProtocolContext.from_mapping(
        {"id": "iv", "version": "2", "product": "racemic_ketamine", "route": "iv", "dose": {"basis": "mg/kg"}}
    )
    assert ctx.dose_basis == "mg_per_kg" and ctx.version == "2"


# --- rule-set data validation --------------------------------------------------------------------


def _raw() -> dict[str, Any]:
    from kapclinic.clinical.eligibility.ruleset import RULESET_DIR

    return dict(json.loads((RULESET_DIR / "kap-eligibility-1.0.json").read_text()))


def test_rule_set_rejects_unknown_outcome() -> None:
    data = _raw()
    data["rules"][0] = {**data["rules"][0], "outcome": "maybe"}
    with pytest.raises(
        RuleSetError, match=r"rules\[0\]\.outcome: Input should be 'exclude', 'review' or 'caution'"
    ):
        parse_rule_set(data)


def test_rule_set_rejects_undeclared_question() -> None:
    data = _raw()
    data["rules"][0] = {**data["rules"][0], "check": {"answer": "nope"}}
    with pytest.raises(
        RuleSetError, match=r"rules\[0\]\.check\.answer: the check refers to an undeclared question 'nope'"
    ):
        parse_rule_set(data)


def test_rule_set_rejects_missing_citation() -> None:
    data = _raw()
    rule = dict(data["rules"][0])
    del rule["citation"]
    data["rules"][0] = rule
    with pytest.raises(RuleSetError, match=r"rules\[0\]\.citation: required key is missing"):
        parse_rule_set(data)


def _rule_index(data: dict[str, Any], rule_id: str) -> int:
    return next(i for i, r in enumerate(data["rules"]) if r["id"] == rule_id)


BROKEN_RULE_SETS: list[tuple[str, Any, str]] = [
    (
        "an undeclared question deep in an any-check",
        lambda d: d["rules"][_rule_index(d, "RV-PSYCHOSIS")]["check"]["any"].__setitem__(
            1, {"answer": "nope"}
        ),
        r"rules\[{RV-PSYCHOSIS}\]\.check\.any\[1\]\.answer: the check refers to an undeclared question",
    ),
    (
        "an undeclared parameter",
        lambda d: d["rules"][_rule_index(d, "RV-MINOR")]["check"].update(param="adult_age"),
        r"rules\[{RV-MINOR}\]\.check\.param: the check refers to an undeclared parameter 'adult_age'",
    ),
    (
        "an unknown numeric field",
        lambda d: d["rules"][_rule_index(d, "RV-MINOR")]["check"].update(value="shoe_size"),
        r"rules\[{RV-MINOR}\]\.check\.value: 'shoe_size' is not a known numeric field",
    ),
    (
        "an unknown operator",
        lambda d: d["rules"][_rule_index(d, "RV-MINOR")]["check"].update(op="=="),
        r"rules\[{RV-MINOR}\]\.check\.op: Input should be '<', '<=', '>' or '>='",
    ),
    (
        "a check of two kinds at once",
        lambda d: d["rules"][_rule_index(d, "RV-MINOR")]["check"].update(answer="pregnant"),
        r"rules\[{RV-MINOR}\]\.check: a check is exactly one of",
    ),
    (
        "an empty any-check",
        lambda d: d["rules"][_rule_index(d, "RV-PSYCHOSIS")]["check"].update(any=[]),
        r"rules\[{RV-PSYCHOSIS}\]\.check\.any: 'any' needs a non-empty list of checks",
    ),
    (
        "an unknown key in a rule's scope",
        lambda d: d["rules"][_rule_index(d, "CA-BMI-IBW")]["applies_to"].update(route=["IV"]),
        r"rules\[{CA-BMI-IBW}\]\.applies_to\.route: unknown key",
    ),
    (
        "a parameter default as a JSON fraction",
        lambda d: d["parameters"]["ibw_bmi_threshold"].update(default=30.5),
        r"parameters\.ibw_bmi_threshold\.default: numbers are written as strings",
    ),
    (
        "a patient question without its wording",
        lambda d: d["questions"][0].update(patient_text=""),
        r"questions\[0\]\.patient_text: a patient question needs its patient_text",
    ),
    (
        "a duplicate question id",
        lambda d: d["questions"].append(dict(d["questions"][0])),
        r"questions: question ids must be unique \('aneurysmal_vascular_disease' appears twice\)",
    ),
    (
        "an unknown severity",
        lambda d: d["medication_classes"][1].update(severity="grave"),
        r"medication_classes\[1\]\.severity: Input should be 'review', 'caution' or 'info'",
    ),
    (
        "a lexicon naming an undeclared class",
        lambda d: d["medication_lexicon"]["names"].update(herbal=["st john's wort"]),
        r"medication_lexicon\.names: the medication lexicon names an undeclared class 'herbal'",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"), [c[1:] for c in BROKEN_RULE_SETS], ids=[c[0] for c in BROKEN_RULE_SETS]
)
def test_a_broken_rule_set_file_names_the_field_path(tmp_path: Path, change: Any, message: str) -> None:
    from kapclinic.clinical.eligibility.ruleset import load_rule_set_file

    data = _raw()
    change(data)
    for rule_id in ("RV-PSYCHOSIS", "RV-MINOR", "CA-BMI-IBW"):
        message = message.replace("{" + rule_id + "}", str(_rule_index(data, rule_id)))
    path = tmp_path / "broken-9.9.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RuleSetError, match=rf"^broken-9\.9\.json: (.*; )?{message}"):
        load_rule_set_file(path)


def test_a_rule_set_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    from kapclinic.clinical.eligibility.ruleset import load_rule_set_file

    path = tmp_path / "broken-9.9.json"
    path.write_text('{"id": "kap-eligibility",')
    with pytest.raises(RuleSetError, match=r"broken-9\.9\.json is not valid JSON"):
        load_rule_set_file(path)


def test_every_rule_and_question_cites_the_reference() -> None:
    for r in RS.rules:
        assert "ref §" in r.citation, r.id
    for q in RS.questions:
        assert q.asked_of == "clinician" or q.patient_text


def test_unknown_version_is_refused() -> None:
    with pytest.raises(RuleSetError, match="No rule set kap-eligibility 99 is installed"):
        load_rule_set(version="99")


# --- property tests ----------------------------------------------------------------------------

HARD_STOP_QUESTIONS = (
    "aneurysmal_vascular_disease",
    "arteriovenous_malformation",
    "intracerebral_hemorrhage",
    "ketamine_hypersensitivity",
    "bp_rise_serious_hazard",
)
CLASSES = tuple(c.id for c in RS.medication_classes)
PROTOCOLS = st.sampled_from([None, ESK, IV, SL])


def _opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


records = st.builds(
    IntakeRecord,
    answers=st.fixed_dictionaries({}, optional=dict.fromkeys(RS.question_ids, st.sampled_from(list(Answer)))),
    date_of_birth=_opt(st.dates(min_value=date(1920, 1, 1), max_value=TODAY)),
    systolic_bp=_opt(st.integers(50, 260)),
    diastolic_bp=_opt(st.integers(20, 160)),
    heart_rate=_opt(st.integers(20, 250)),
    spo2=_opt(st.integers(50, 100)),
    weight_kg=_opt(st.floats(20, 300)),
    height_cm=_opt(st.floats(100, 230)),
    adequate_failed_trials=_opt(st.integers(0, 10)),
    benzodiazepine_dz_eq_mg_day=_opt(st.floats(0, 100)),
    medications_reviewed=st.sampled_from(list(Answer)),
    medications=st.lists(
        st.builds(Medication, name=st.text(min_size=1, max_size=10), drug_class=st.sampled_from(CLASSES)),
        max_size=4,
    ).map(tuple),
)


@settings(max_examples=300, deadline=None)
@given(record=records, protocol=PROTOCOLS, stop=st.sampled_from(HARD_STOP_QUESTIONS), data=st.data())
def test_property_hard_stop_can_never_be_eligible(
    record: IntakeRecord, protocol: ProtocolContext | None, stop: str, data: st.DataObject
) -> None:
    record = replace(record, answers={**record.answers, stop: Answer.YES})
    report = evaluate(record, as_of=TODAY, protocol=protocol)
    assert report.status is ReportStatus.HARD_STOP
    assert not report.can_be_signed_eligible
    rationale = data.draw(st.text(min_size=1).filter(str.strip))
    all_rationales = {f.rule_id: rationale for f in report.findings}
    assert check_decision(report, Decision.ELIGIBLE, rationale, all_rationales) != ()


@settings(max_examples=200, deadline=None)
@given(record=records, dob=st.dates(min_value=date(2009, 11, 26), max_value=TODAY))
def test_property_minor_on_esketamine_is_a_hard_stop(record: IntakeRecord, dob: date) -> None:
    report = evaluate(replace(record, date_of_birth=dob), as_of=TODAY, protocol=ESK)
    assert report.status is ReportStatus.HARD_STOP
    assert check_decision(report, Decision.ELIGIBLE, "x", {f.rule_id: "x" for f in report.findings})


@settings(max_examples=300, deadline=None)
@given(record=records, protocol=PROTOCOLS)
def test_property_eligible_only_when_no_exclude_finding_at_all(
    record: IntakeRecord, protocol: ProtocolContext | None
) -> None:
    report = evaluate(record, as_of=TODAY, protocol=protocol)
    signable = not check_decision(
        report, Decision.ELIGIBLE, "reason", {f.rule_id: "why" for f in report.findings}
    )
    assert signable == all(f.outcome is not Outcome.EXCLUDE for f in report.findings)
    # protocol-specific rules never leak into an evaluation without a matching protocol
    for f in report.findings:
        assert f.rule_id not in report.not_evaluated


@settings(max_examples=200, deadline=None)
@given(record=records, protocol=PROTOCOLS, question=st.sampled_from(RS.question_ids))
def test_property_unknown_is_never_better_than_no(
    record: IntakeRecord, protocol: ProtocolContext | None, question: str
) -> None:
    """Changing an answer from 'no' to 'unknown' never removes a finding."""
    as_no = evaluate(
        replace(record, answers={**record.answers, question: Answer.NO}), as_of=TODAY, protocol=protocol
    )
    as_unknown = evaluate(
        replace(record, answers={**record.answers, question: Answer.UNKNOWN}), as_of=TODAY, protocol=protocol
    )
    assert ids(as_no) <= ids(as_unknown)
    order = [ReportStatus.CLEAR, ReportStatus.NEEDS_REVIEW, ReportStatus.INCOMPLETE, ReportStatus.HARD_STOP]
    assert order.index(as_unknown.status) >= order.index(as_no.status)


# --- public self-check ---------------------------------------------------------------------------


def _answers(**freq: int) -> dict[str, int]:
    base = {"phq9_1": 0, "phq9_2": 0, "gad7_1": 0, "gad7_2": 0, "phq9_9": 0}
    return {**base, **freq}


def test_self_check_uses_exact_instrument_wording() -> None:
    form = selfcheck.self_check_form()
    assert [q.text for q in form.mood] == [
        "Little interest or pleasure in doing things",
        "Feeling down, depressed, or hopeless",
    ]
    assert [q.text for q in form.worry] == [
        "Feeling nervous, anxious or on edge",
        "Not being able to stop or control worrying",
    ]
    assert (
        form.self_harm.text == "Thoughts that you would be better off dead or of hurting yourself in some way"
    )
    assert (
        form.stem_mood
        == "Over the last 2 weeks, how often have you been bothered by any of the following problems?"
    )
    assert [o.label for o in form.mood[0].options] == [
        "Not at all",
        "Several days",
        "More than half the days",
        "Nearly every day",
    ]


def test_self_check_self_harm_goes_to_crisis_first() -> None:
    flags = {"pregnant": Answer.YES}
    result = selfcheck.assess(selfcheck.SelfCheckAnswers(_answers(phq9_9=1), flags))
    assert result.next_step is selfcheck.NextStep.CRISIS
    intent = selfcheck.assess(selfcheck.SelfCheckAnswers(_answers(), {"suicidal_intent_or_plan": Answer.YES}))
    assert intent.next_step is selfcheck.NextStep.CRISIS


def test_self_check_red_flag_means_talk_to_your_doctor() -> None:
    result = selfcheck.assess(selfcheck.SelfCheckAnswers(_answers(phq9_1=3), {"under_18": Answer.YES}))
    assert result.next_step is selfcheck.NextStep.TALK_TO_DOCTOR
    assert result.red_flags_yes == ("Are you under 18 years old?",)


def test_self_check_otherwise_consultation_with_uninterpreted_totals() -> None:
    keys = (*selfcheck.RED_FLAG_QUESTION_IDS, "under_18", "suicidal_intent_or_plan")
    flags = dict.fromkeys(keys, Answer.NO)
    result = selfcheck.assess(
        selfcheck.SelfCheckAnswers(
            _answers(phq9_1=2, phq9_2=3, gad7_1=1), flags, ("antidepressant", "psychotherapy")
        )
    )
    assert result.next_step is selfcheck.NextStep.CONSULTATION
    assert (result.mood_total, result.worry_total) == (5, 1)
    assert result.to_discuss == ()
    assert result.prior_treatments == ("Antidepressant medication", "Talk therapy (psychotherapy)")


def test_self_check_not_sure_is_listed_to_discuss() -> None:
    result = selfcheck.assess(selfcheck.SelfCheckAnswers(_answers(), {}))
    assert result.next_step is selfcheck.NextStep.CONSULTATION
    assert "Are you under 18 years old?" in result.to_discuss


def test_self_check_validation_names_the_question() -> None:
    answers = selfcheck.SelfCheckAnswers({"phq9_1": 5}, {}, ("magic",))
    errors = selfcheck.validate_answers(answers)
    assert (
        "The answer to 'Little interest or pleasure in doing things' must be one of the listed options."
        in errors
    )
    assert "Please answer 'Feeling down, depressed, or hopeless'." in errors
    assert "'magic' is not one of the listed prior treatments." in errors


# --- protocol library adapter --------------------------------------------------------------------


def test_protocol_library_adapter_scopes_esketamine_and_weight_based_rules() -> None:
    from kapclinic.clinical.eligibility.protocol_adapter import protocol_context
    from kapclinic.clinical.protocols import all_protocols

    contexts = {p.id: protocol_context(p) for p in all_protocols()}
    esk = contexts["esketamine-in-trd"]
    iv = contexts["ketamine-iv-racemic"]
    assert (esk.product, esk.route, esk.dose_basis) == ("esketamine", "intranasal", "fixed_mg")
    assert (iv.product, iv.route, iv.dose_basis) == ("racemic_ketamine", "iv", "mg_per_kg")
    minor = clean(date_of_birth=date(2012, 5, 5))
    assert evaluate(minor, as_of=TODAY, protocol=esk).status is ReportStatus.HARD_STOP
    assert evaluate(minor, as_of=TODAY, protocol=iv).status is ReportStatus.NEEDS_REVIEW
