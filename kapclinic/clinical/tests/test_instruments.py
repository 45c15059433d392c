"""Worked examples and properties for instrument data and scoring (ref §4.1-§4.3, §4.6, §3.9)."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kapclinic.clinical.instruments import (
    DX_MAJOR_DEPRESSIVE_SYNDROME as MDS,
)
from kapclinic.clinical.instruments import (
    DX_OTHER_DEPRESSIVE_SYNDROME as ODS,
)
from kapclinic.clinical.instruments import (
    DX_PROVISIONAL_PTSD as PTSD,
)
from kapclinic.clinical.instruments import (
    INSTRUMENT_KEYS,
    AnswerError,
    ScoringSettings,
    UnknownInstrumentError,
    answers_from_link_ids,
    bands_for,
    get_instrument,
    questionnaire_json,
    score,
)
from kapclinic.clinical.instruments.loader import Instrument, InstrumentDataError, parse_questionnaire

PHQ9 = get_instrument("PHQ-9")
GAD7 = get_instrument("GAD-7")
PCL5 = get_instrument("PCL-5")
# The repository's own clinical reference: the instrument wording is recorded there verbatim (ref §4.1-§4.3).
REFERENCE = Path(__file__).resolve().parents[3] / "docs" / "clinical-reference.md"
LOINC = "http://loinc.org"


def spread(total: int, n: int, per_item_max: int, last_zero: bool = False) -> list[int]:
    """Answers summing to ``total`` filled from the first item (optionally keeping the last item 0)."""
    answers = [0] * n
    remaining = total
    usable = n - 1 if last_zero else n
    for i in range(usable):
        answers[i] = min(per_item_max, remaining)
        remaining -= answers[i]
    assert remaining == 0
    return answers


# ---------------------------------------------------------------- data files


def test_three_instruments_with_versions_and_sources() -> None:
    assert INSTRUMENT_KEYS == ("PHQ-9", "GAD-7", "PCL-5")
    for inst in (PHQ9, GAD7, PCL5):
        assert inst.version == "1.0.0"
        assert inst.licence_status == "public-domain"
        assert inst.sources and all("ref §4" in s for s in inst.sources)
        raw = questionnaire_json(inst.key)
        assert raw["resourceType"] == "Questionnaire"
        assert raw["version"] == inst.version


def test_phq9_loinc_codes_ref_4_6() -> None:
    assert PHQ9.panel is not None and PHQ9.panel.code == "44249-1"
    assert PHQ9.total_coding is not None and PHQ9.total_coding.code == "44261-6"
    assert [i.coding.code for i in PHQ9.items] == [
        "44250-9", "44255-8", "44259-0", "44254-1", "44251-7",
        "44258-2", "44252-5", "44253-3", "44260-8", "69722-7",
    ]  # fmt: skip
    for item in PHQ9.items[:9]:
        assert [o.coding.code for o in item.options] == ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]
        assert [o.label for o in item.options] == [
            "Not at all", "Several days", "More than half the days", "Nearly every day",
        ]  # fmt: skip
    difficulty = PHQ9.item(10)
    assert difficulty.scored is False
    assert [o.coding.code for o in difficulty.options] == ["LA6572-7", "LA6573-5", "LA6575-0", "LA6574-3"]
    assert PHQ9.max_total == 27 and PHQ9.min_total == 0


def test_gad7_loinc_codes_and_item2_quirk() -> None:
    assert GAD7.panel is not None and GAD7.panel.code == "69737-5"
    assert GAD7.total_coding is not None and GAD7.total_coding.code == "70274-6"
    assert [i.coding.code for i in GAD7.items] == [
        "69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7",
    ]  # fmt: skip
    assert GAD7.item(2).score_for_code("LA18938-3") == 2
    assert GAD7.item(2).score_for_code("LA6570-1") == 2
    with pytest.raises(ValueError, match="no answer with the code LA18938-3"):
        GAD7.item(1).score_for_code("LA18938-3")
    assert GAD7.item(1).options[0].label == "Not at all"  # not "Not at all sure" (ref §4.2)
    assert GAD7.max_total == 21


def test_pcl5_local_codes_and_clusters() -> None:
    assert PCL5.panel is not None and "loinc" not in PCL5.panel.system
    assert PCL5.clusters == ("B", "C", "D", "E")
    by_cluster = {c: [i.number for i in PCL5.items if i.cluster == c] for c in PCL5.clusters}
    assert by_cluster == {
        "B": [1, 2, 3, 4, 5],
        "C": [6, 7],
        "D": [8, 9, 10, 11, 12, 13, 14],
        "E": [15, 16, 17, 18, 19, 20],
    }
    assert [o.label for o in PCL5.item(1).options] == [
        "Not at all", "A little bit", "Moderately", "Quite a bit", "Extremely",
    ]  # fmt: skip
    assert PCL5.max_total == 80
    assert PCL5.bands == ()  # no official bands (ref §4.3)


def test_stems_verbatim() -> None:
    assert PHQ9.instructions == (
        "Over the last 2 weeks, how often have you been bothered by any of the following problems?",
    )
    assert GAD7.instructions == (
        "Over the last 2 weeks, how often have you been bothered by the following problems?",
    )
    assert PCL5.instructions[0] == (
        "Below is a list of problems that people sometimes have in response to a very stressful experience."
    )


def reference_section(anchor: str) -> str:
    """The text of docs/clinical-reference.md from `<a id="anchor">` to the next anchor."""
    text = REFERENCE.read_text(encoding="utf-8")
    start = text.index(f'<a id="{anchor}"></a>')
    end = text.find("<a id=", start + 1)
    return text[start : end if end != -1 else len(text)]


@pytest.mark.parametrize(("inst", "anchor"), [(PHQ9, "phq-9"), (GAD7, "gad-7"), (PCL5, "pcl-5")])
def test_item_wording_is_verbatim_from_reference(inst: Instrument, anchor: str) -> None:
    """Every item, stem and answer of the data files is the row recorded in docs/clinical-reference.md."""
    instrument = inst
    section = reference_section(anchor)
    for line in instrument.instructions:
        assert line in section, f"{instrument.key} instruction differs from the reference: {line!r}"
    for item in instrument.items:
        if item.cluster is not None:
            row = f"| {item.number} | {item.cluster} | {item.text} |"
        else:
            number = str(item.number) if item.scored else f"{item.number} (not scored)"
            row = f"| {number} | {item.text} | {item.coding.code} |"
            assert item.coding.system == LOINC
        assert row in section, f"{instrument.key} item {item.number} differs from the reference"
        for option in item.options:
            scored_forms = (f"| {option.score} | {option.label} |", f"{option.score} {option.label}")
            assert option.label in section and (
                not item.scored or any(form in section for form in scored_forms)
            ), f"{instrument.key} item {item.number} answer {option.label!r} differs from the reference"
            for coding in (option.coding, *option.equivalent_codings):
                if coding.system == LOINC:
                    assert coding.code in section, f"{instrument.key} answer {coding.code} not in reference"
    codes = reference_section("instrument-loinc")
    for summary in (instrument.panel, instrument.total_coding):
        if summary is not None and summary.system == LOINC:
            assert f"| {summary.code} |" in codes, f"{instrument.key} {summary.display} code not in ref §4.6"


def test_reference_is_inside_the_repository() -> None:
    """The citations resolve in any clone: no test skips for want of a file beside the repository."""
    assert REFERENCE.is_file()
    root = REFERENCE.parents[1]
    assert (root / "pyproject.toml").is_file()


def test_malformed_definitions_are_refused() -> None:
    raw = questionnaire_json("PHQ-9")
    with pytest.raises(ValueError, match="not a FHIR Questionnaire"):
        parse_questionnaire({**raw, "resourceType": "Patient"})
    broken = json.loads(json.dumps(raw))
    broken["extension"] = [e for e in broken["extension"] if not e["url"].endswith("severity-band")][:] + [
        e for e in raw["extension"] if e["url"].endswith("severity-band")
    ][1:]
    with pytest.raises(ValueError, match="do not tile"):
        parse_questionnaire(broken)


def _band_indexes(raw: dict[str, Any]) -> list[int]:
    return [i for i, e in enumerate(raw["extension"]) if e["url"].endswith("/severity-band")]


def _drop_band_label(raw: dict[str, Any]) -> None:
    band = raw["extension"][_band_indexes(raw)[1]]
    band["extension"] = [p for p in band["extension"] if p["url"] != "label"]


def _gap_in_bands(raw: dict[str, Any]) -> None:
    band = raw["extension"][_band_indexes(raw)[1]]
    next(p for p in band["extension"] if p["url"] == "min")["valueInteger"] += 1


# PHQ-9 (phq9.json): item[0] is the stem, item[1..9] the questions, item[10] the difficulty question;
# extension[0] is the instrument key, extension[6..10] the severity bands.
BROKEN_INSTRUMENTS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "an answer score that is not a FHIR decimal",
        lambda d: d["item"][1]["answerOption"][0]["extension"][0].update(valueDecimal="none"),
        r"item\[1\]\.answerOption\[0\]\.extension\[0\]\.valueDecimal: Decimal value",
    ),
    (
        "a fractional answer score",
        lambda d: d["item"][2]["answerOption"][3]["extension"][0].update(valueDecimal=Decimal("2.5")),
        r"item\[2\]\.answerOption\[3\]\.extension\[0\]\.valueDecimal: an answer score is a whole number "
        r"\(got 2\.5\)",
    ),
    (
        "a key FHIR does not define",
        lambda d: d["item"][3].update(hint="x"),
        r"item\[3\]\.hint: unknown key",
    ),
    (
        "an answer without its ordinal value",
        lambda d: d["item"][4]["answerOption"][2].update(extension=[]),
        r"item\[4\]\.answerOption\[2\]\.extension: an answer needs exactly one ordinalValue extension",
    ),
    (
        "a question without its code",
        lambda d: d["item"][5].pop("code"),
        r"item\[5\]\.code\[0\]: required key is missing",
    ),
    (
        "an item type the loader does not read",
        lambda d: d["item"][6].update(type="text"),
        r"item\[6\]\.type: an item is 'display' or 'choice' \(got 'text'\)",
    ),
    (
        "no instrument key",
        lambda d: d["extension"].pop(0),
        r"extension: needs exactly one instrument-key extension \(found 0\)",
    ),
    (
        "a severity band without its label",
        _drop_band_label,
        r"extension\[7\]\.extension: lacks its 'label' part",
    ),
    (
        "a gap between severity bands",
        _gap_in_bands,
        r"extension\[7\]: the severity bands do not tile the score range at 6",
    ),
    (
        "no version",
        lambda d: d.pop("version"),
        r"version: required key is missing",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"), [c[1:] for c in BROKEN_INSTRUMENTS], ids=[c[0] for c in BROKEN_INSTRUMENTS]
)
def test_a_broken_instrument_file_names_the_field_path(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    raw = json.loads(json.dumps(questionnaire_json("PHQ-9")), parse_float=Decimal)
    assert _band_indexes(raw) == [6, 7, 8, 9, 10]
    parse_questionnaire(raw, "phq9.json")
    change(raw)
    with pytest.raises(InstrumentDataError, match=rf"^phq9\.json: (.*; )?{message}"):
        parse_questionnaire(raw, "phq9.json")


def test_unknown_instrument_and_version_refused() -> None:
    assert get_instrument("phq9") is PHQ9
    assert get_instrument("PHQ-9", "1.0.0") is PHQ9
    with pytest.raises(UnknownInstrumentError, match="must be one of PHQ-9, GAD-7, PCL-5"):
        get_instrument("BDI-II")
    with pytest.raises(UnknownInstrumentError, match=r"version '9\.9' is not on file"):
        get_instrument("PHQ-9", "9.9")


# ---------------------------------------------------------------- band edges (worked examples)

PHQ9_BANDS = [
    (0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate"),
    (15, "moderately_severe"), (19, "moderately_severe"), (20, "severe"), (27, "severe"),
]  # fmt: skip
GAD7_BANDS = [
    (0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate"),
    (15, "severe"), (21, "severe"),
]  # fmt: skip


@pytest.mark.parametrize(("total", "band"), PHQ9_BANDS)
def test_phq9_band_edges(total: int, band: str) -> None:
    answers = spread(total, 9, 3, last_zero=total <= 24)
    result = score(PHQ9, answers)
    assert result.total == total
    assert result.severity == band
    assert ("screen_positive" in result.flags) is (total >= 10)


@pytest.mark.parametrize(("total", "band"), GAD7_BANDS)
def test_gad7_band_edges(total: int, band: str) -> None:
    result = score(GAD7, spread(total, 7, 3))
    assert (result.total, result.severity) == (total, band)
    assert ("screen_positive" in result.flags) is (total >= 10)
    assert result.provisional_diagnosis is None and dict(result.subscales) == {}


def test_band_cutpoints_are_a_setting() -> None:
    settings = ScoringSettings(band_cutpoints={"PHQ-9": (6, 11, 16, 21)})
    assert score(PHQ9, spread(5, 9, 3, True), settings).severity == "minimal"
    assert score(PHQ9, spread(6, 9, 3, True), settings).severity == "mild"
    with pytest.raises(ValueError, match="must number 4"):
        bands_for(PHQ9, ScoringSettings(band_cutpoints={"PHQ-9": (5, 10)}))
    with pytest.raises(ValueError, match="must increase"):
        bands_for(PHQ9, ScoringSettings(band_cutpoints={"PHQ-9": (5, 5, 15, 20)}))


# ---------------------------------------------------------------- PHQ-9 item 9 (ref §3.9)


@pytest.mark.parametrize(
    ("item9", "flags"),
    [
        (0, ()),
        (1, ("item9_positive",)),
        (2, ("item9_positive", "item9_urgent")),
        (3, ("item9_positive", "item9_urgent")),
    ],
)
def test_item9_flags(item9: int, flags: tuple[str, ...]) -> None:
    result = score(PHQ9, [0] * 8 + [item9])
    assert tuple(f for f in result.flags if f.startswith("item9")) == flags
    assert result.item9 == item9


def test_item9_flag_survives_an_incomplete_form() -> None:
    result = score(PHQ9, [None, 1, 1, None, 0, 0, 0, 0, 2])
    assert result.total is None
    assert result.missing_items == (1, 4)
    assert result.flags == ("item9_positive", "item9_urgent", "incomplete")


def test_item9_thresholds_are_settings() -> None:
    settings = ScoringSettings(item9_urgent_min=3)
    assert score(PHQ9, [0] * 8 + [2], settings).flags == ("item9_positive",)


# ---------------------------------------------------------------- PHQ-9 DSM algorithm [S42f]

PHQ9_SYNDROME = [
    ("all zero", [0, 0, 0, 0, 0, 0, 0, 0, 0], None),
    ("one core item only", [2, 0, 0, 0, 0, 0, 0, 0, 0], None),
    ("two core items", [2, 2, 0, 0, 0, 0, 0, 0, 0], ODS),
    ("core + item 9 at 1", [2, 0, 0, 0, 0, 0, 0, 0, 1], ODS),
    ("four counted incl. core", [0, 3, 2, 2, 2, 0, 0, 0, 0], ODS),
    ("five counted incl. core", [2, 0, 2, 2, 2, 2, 0, 0, 0], MDS),
    ("five counted with item 9 at 1", [0, 2, 2, 2, 2, 0, 0, 0, 1], MDS),
    ("all nine counted", [3, 3, 3, 3, 3, 3, 3, 3, 3], MDS),
    ("no core item: seven counted", [1, 1, 3, 3, 3, 3, 3, 3, 3], None),
    ("items at 1 never count (except 9)", [1, 1, 1, 1, 1, 1, 1, 1, 1], None),
    ("core at 1 does not count", [1, 2, 1, 1, 1, 1, 1, 1, 0], None),
]


@pytest.mark.parametrize(("why", "answers", "expected"), PHQ9_SYNDROME, ids=[r[0] for r in PHQ9_SYNDROME])
def test_phq9_syndrome_algorithm(why: str, answers: list[int], expected: str | None) -> None:
    assert score(PHQ9, answers).provisional_diagnosis == expected


def test_phq9_difficulty_item_is_not_scored() -> None:
    with_item10 = score(PHQ9, [1] * 9 + [3])
    without = score(PHQ9, [1] * 9)
    assert with_item10.total == without.total == 9
    assert with_item10.answers[9] == 3 and without.answers[9] is None
    assert without.complete  # item 10 is optional and unscored


# ---------------------------------------------------------------- PCL-5 [S60a][S60b] ref §4.3


def pcl(b: list[int], c: list[int], d: list[int], e: list[int]) -> list[int]:
    assert (len(b), len(c), len(d), len(e)) == (5, 2, 7, 6)
    return b + c + d + e


PCL5_DX = [
    (
        "minimum pattern 1B 1C 2D 2E",
        pcl([2, 0, 0, 0, 0], [2, 0], [2, 2, 0, 0, 0, 0, 0], [2, 2, 0, 0, 0, 0]),
        True,
    ),
    ("no B symptom", pcl([1, 1, 1, 1, 1], [2, 0], [2, 2, 0, 0, 0, 0, 0], [2, 2, 0, 0, 0, 0]), False),
    ("no C symptom", pcl([2, 0, 0, 0, 0], [1, 1], [2, 2, 0, 0, 0, 0, 0], [2, 2, 0, 0, 0, 0]), False),
    ("only one D", pcl([2, 0, 0, 0, 0], [2, 0], [2, 1, 1, 1, 1, 1, 1], [2, 2, 0, 0, 0, 0]), False),
    ("only one E", pcl([2, 0, 0, 0, 0], [2, 0], [2, 2, 0, 0, 0, 0, 0], [4, 1, 1, 1, 1, 1]), False),
    ("everything at 1 (total 20)", [1] * 20, False),
    ("everything at 4 (total 80)", [4] * 20, True),
    ("high total but C missing", pcl([4] * 5, [0, 0], [4] * 7, [4] * 6), False),
]


@pytest.mark.parametrize(("why", "answers", "dx"), PCL5_DX, ids=[r[0] for r in PCL5_DX])
def test_pcl5_provisional_diagnosis(why: str, answers: list[int], dx: bool) -> None:
    result = score(PCL5, answers)
    assert result.provisional_diagnosis == (PTSD if dx else None)
    assert sum(result.subscales.values()) == result.total


def test_pcl5_clusters_worked_example() -> None:
    result = score(PCL5, pcl([1, 2, 3, 4, 0], [4, 4], [1, 1, 1, 1, 1, 1, 1], [0, 1, 2, 3, 4, 0]))
    assert dict(result.subscales) == {"B": 10, "C": 8, "D": 7, "E": 10}
    assert result.total == 35
    assert result.severity is None


@pytest.mark.parametrize(("total", "probable"), [(0, False), (32, False), (33, True), (80, True)])
def test_pcl5_probable_ptsd_default_cutoff(total: int, probable: bool) -> None:
    result = score(PCL5, spread(total, 20, 4))
    assert result.total == total
    assert ("probable_ptsd" in result.flags) is probable


def test_pcl5_cutoff_is_a_setting() -> None:
    answers = spread(31, 20, 4)
    assert "probable_ptsd" not in score(PCL5, answers).flags
    assert "probable_ptsd" in score(PCL5, answers, ScoringSettings(pcl5_probable_ptsd_min=31)).flags


def test_pcl5_incomplete_reports_complete_clusters_only() -> None:
    answers: list[int | None] = [2] * 20
    answers[6] = None  # item 7, cluster C
    result = score(PCL5, answers)
    assert result.total is None and result.missing_items == (7,)
    assert dict(result.subscales) == {"B": 10, "D": 14, "E": 12}
    assert result.provisional_diagnosis is None
    assert result.flags == ("incomplete",)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("key", "answers", "message"),
    [
        ("PHQ-9", [0] * 8, "PHQ-9 needs 9 or 10 answers, one per item in order; 8 were given."),
        ("PHQ-9", [0] * 11, "PHQ-9 needs 9 or 10 answers"),
        ("GAD-7", [0] * 8, "GAD-7 needs 7 answers"),
        (
            "GAD-7",
            [0, 0, 4, 0, 0, 0, 0],
            "Item 3 answer 4 is out of range: GAD-7 item 3 answers must be 0 to 3.",
        ),
        ("PCL-5", [0] * 19 + [5], "Item 20 answer 5 is out of range"),
        ("PHQ-9", [-1] + [0] * 8, "Item 1 answer -1 is out of range"),
        ("PHQ-9", [True] + [0] * 8, "is not a whole number"),
        ("PHQ-9", [0] * 9 + [4], "Item 10 answer 4 is out of range"),
    ],
)
def test_bad_answers_are_refused_with_a_sentence(key: str, answers: list[int], message: str) -> None:
    with pytest.raises(AnswerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        score(key, answers)


def test_all_errors_are_reported_together() -> None:
    with pytest.raises(AnswerError) as exc:
        score("GAD-7", [9, 0, 0, 0, 0, 0, 7])
    assert len(exc.value.errors) == 2


def test_answers_by_link_id() -> None:
    ordered = answers_from_link_ids(GAD7, {"gad7-1": 3, "gad7-7": 1})
    assert ordered == (3, None, None, None, None, None, 1)
    with pytest.raises(AnswerError, match=r"GAD-7 has no item gad7-8\."):
        answers_from_link_ids(GAD7, {"gad7-8": 1})


def test_json_shape_for_the_command() -> None:
    data = score("PHQ-9", [1, 1, 1, 1, 1, 1, 1, 1, 1]).as_dict()
    assert data == {
        "instrument": "PHQ-9",
        "version": "1.0.0",
        "total": 9,
        "severity": "mild",
        "subscales": {},
        "flags": ["item9_positive"],
        "provisional_diagnosis": None,
    }


# ---------------------------------------------------------------- properties


def answers_for(key: str) -> st.SearchStrategy[list[int]]:
    inst = get_instrument(key)
    return st.lists(st.integers(0, inst.scored_items[0].max_score), min_size=len(inst.scored_items),
                    max_size=len(inst.scored_items))  # fmt: skip


@given(st.sampled_from(INSTRUMENT_KEYS).flatmap(lambda k: st.tuples(st.just(k), answers_for(k))))
def test_total_within_range_and_equals_sum(case: tuple[str, list[int]]) -> None:
    key, answers = case
    inst = get_instrument(key)
    result = score(inst, answers)
    assert result.total == sum(answers)
    assert inst.min_total <= result.total <= inst.max_total
    if inst.bands:
        assert result.severity is not None
    if key == "PCL-5":
        assert sum(result.subscales.values()) == result.total


@given(st.sampled_from(["PHQ-9", "GAD-7"]), st.data())
def test_bands_are_monotonic(key: str, data: st.DataObject) -> None:
    inst = get_instrument(key)
    order = [b.code for b in inst.bands]
    answers = data.draw(answers_for(key))
    idx = data.draw(st.integers(0, len(answers) - 1))
    if answers[idx] == 3:
        return
    higher = list(answers)
    higher[idx] += 1
    a, b = score(inst, answers), score(inst, higher)
    assert a.severity is not None and b.severity is not None
    assert order.index(a.severity) <= order.index(b.severity)


@given(answers_for("PHQ-9"), st.integers(0, 8))
def test_phq9_syndrome_is_monotonic(answers: list[int], idx: int) -> None:
    higher = list(answers)
    higher[idx] = min(3, higher[idx] + 1)
    before, after = score(PHQ9, answers), score(PHQ9, higher)
    # Raising an answer never removes a major syndrome; item 9 flag follows the item exactly.
    if before.provisional_diagnosis == MDS:
        assert after.provisional_diagnosis == MDS
    if before.provisional_diagnosis == ODS:
        assert after.provisional_diagnosis in {ODS, MDS}
    assert ("item9_positive" in before.flags) is (answers[8] >= 1)


@given(answers_for("PCL-5"), st.integers(0, 19))
def test_pcl5_diagnosis_is_monotonic(answers: list[int], idx: int) -> None:
    higher = list(answers)
    higher[idx] = min(4, higher[idx] + 1)
    if score(PCL5, answers).provisional_diagnosis:
        assert score(PCL5, higher).provisional_diagnosis == PTSD


@given(
    st.sampled_from(INSTRUMENT_KEYS).flatmap(
        lambda k: st.tuples(st.just(k), answers_for(k), st.sets(st.integers(0, 19), min_size=1))
    )
)
def test_incomplete_forms_have_no_total(case: tuple[str, list[int], set[int]]) -> None:
    key, answers, holes = case
    partial: list[int | None] = list(answers)
    holes = {h % len(answers) for h in holes}
    for h in holes:
        partial[h] = None
    result = score(key, partial)
    assert result.total is None and result.severity is None and result.provisional_diagnosis is None
    assert result.missing_items == tuple(sorted(h + 1 for h in holes))
    assert "incomplete" in result.flags
