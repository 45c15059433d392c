"""Chart medication list -> rule-set interaction classes (ref §3.6)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kapclinic.clinical.eligibility import interaction_flags, load_rule_set
from kapclinic.clinical.eligibility.chart_medications import (
    CHART_TO_RULESET,
    ChartMedication,
    classify_chart_medication,
    classify_chart_medications,
    relevant_digest,
)

RS = load_rule_set()


def med(name: str, chart_class: str, mid: int = 1) -> ChartMedication:
    return ChartMedication(mid, name, "", chart_class)


def test_every_chart_class_maps_to_a_rule_set_class() -> None:
    known = {c.id for c in RS.medication_classes}
    assert set(CHART_TO_RULESET.values()) <= known


def test_fixed_classes_map_one_to_one_and_ignore_confirmation() -> None:
    c = classify_chart_medication(med("Lorazepam", "benzodiazepine"), "other", RS)
    assert (c.ruleset_class, c.basis, c.refinable) == ("benzodiazepine", "chart", False)
    assert (
        classify_chart_medication(med("Zolpidem", "sedative"), None, RS).ruleset_class == "sedative_hypnotic"
    )


def test_coarse_classes_use_lexicon_then_confirmation() -> None:
    # an MAOI recorded as an antidepressant is still flagged as an MAOI
    c = classify_chart_medication(med("Phenelzine 15 mg", "antidepressant"), None, RS)
    assert (c.ruleset_class, c.basis) == ("maoi", "suggested")
    c = classify_chart_medication(med("Sertraline", "antidepressant"), None, RS)
    assert (c.ruleset_class, c.basis) == ("antidepressant", "chart")
    c = classify_chart_medication(med("Rifampicin", "other"), "cyp_modulator", RS)
    assert (c.ruleset_class, c.basis, c.refinable) == ("cyp_modulator", "confirmed", True)
    # an unknown class id is ignored, never trusted
    assert classify_chart_medication(med("Rifampicin", "other"), "made_up", RS).ruleset_class == "other"


def test_flags_come_from_the_chart_list() -> None:
    meds = [
        med("Lorazepam", "benzodiazepine", 1),
        med("Fluticasone", "other", 2),
        med("Vitamin D", "other", 3),
    ]
    classified = classify_chart_medications(meds, {"2": "nasal_steroid_decongestant"}, RS)
    flags = interaction_flags(tuple(c.as_rule_input() for c in classified), RS)
    assert [f.drug_class for f in flags] == ["benzodiazepine", "nasal_steroid_decongestant"]


def test_digest_tracks_only_rule_relevant_medications() -> None:
    base = classify_chart_medications([med("Lorazepam", "benzodiazepine", 1)], {}, RS)
    more = classify_chart_medications(
        [
            med("Lorazepam", "benzodiazepine", 1),
            med("Vitamin D", "other", 2),
            med("Sertraline", "antidepressant", 3),
        ],
        {},
        RS,
    )
    assert relevant_digest(base, RS) == relevant_digest(more, RS)
    opioid = classify_chart_medications(
        [med("Lorazepam", "benzodiazepine", 1), med("Tramadol", "opioid", 4)], {}, RS
    )
    assert relevant_digest(opioid, RS) != relevant_digest(base, RS)
    assert relevant_digest((), RS) == relevant_digest(
        classify_chart_medications([med("Vitamin D", "other")], {}, RS), RS
    )


@settings(max_examples=200, deadline=None)
@given(
    chart_class=st.sampled_from(sorted(CHART_TO_RULESET)),
    confirmed=st.one_of(st.none(), st.sampled_from([c.id for c in RS.medication_classes] + ["bogus"])),
    name=st.sampled_from(["Lorazepam", "Phenelzine", "Sertraline", "Aspirin", "Tramadol", ""]),
)
def test_fixed_interaction_classes_are_never_downgraded(
    chart_class: str, confirmed: str | None, name: str
) -> None:
    c = classify_chart_medication(med(name, chart_class), confirmed, RS)
    assert c.ruleset_class in {x.id for x in RS.medication_classes}
    if chart_class not in ("antidepressant", "other"):
        assert c.ruleset_class == CHART_TO_RULESET[chart_class]
