"""Protocol library: data integrity, citations, clinic settings."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from kapclinic.clinical.dosing import Mg, MgPerKg, Minutes, WeightBasis
from kapclinic.clinical.protocols import (
    ClinicSettingMissing,
    ProtocolDataError,
    Setting,
    UnknownProtocol,
    all_protocols,
    apply_clinic_settings,
    get_protocol,
    load_protocol,
    parse_protocol,
    protocol_choices,
)
from kapclinic.clinical.protocols.loader import DATA_DIR

CITATION = re.compile(r"\[[SL]\d+[a-z]?\]")


def raw(pid: str) -> dict[str, Any]:
    newest = get_protocol(pid)
    return cast(dict[str, Any], json.loads((DATA_DIR / f"{pid}.v{newest.version}.json").read_text()))


def test_library_has_the_four_routes() -> None:
    routes = {p.route for p in all_protocols()}
    assert routes == {"IV", "IM", "SL", "IN"}
    assert len(protocol_choices()) == len({p.id for p in all_protocols()})


def test_iv_values_from_reference() -> None:
    p = get_protocol("ketamine-iv-racemic")
    assert p.dose.default_mg_per_kg.value == MgPerKg("0.5")
    assert p.dose.infusion_minutes.value == Minutes(40)
    assert p.dose.max_mg_per_kg.value == MgPerKg("0.75")
    assert p.dose.weight_basis.value is WeightBasis.ACTUAL
    assert p.dose.double_check_required
    assert p.vitals_schedule.interval_minutes.value == Minutes(10)
    assert p.observation.minimum_minutes.value is None and p.observation.minimum_minutes.clinic_setting
    assert "[S17]" in (p.dose.default_mg_per_kg.source or "")


def test_esketamine_values_from_reference() -> None:
    p = get_protocol("esketamine-in-trd")
    assert p.dose.allowed_mg == (Mg(56), Mg(84))
    assert p.dose.unit_strengths == (Mg(28),)
    assert p.dose.device_spacing_minutes.value == Minutes(5)
    assert p.observation.minimum_minutes.value == Minutes(120)
    assert p.fasting.food_minutes.value == Minutes(120)
    assert p.fasting.liquids_minutes.value == Minutes(30)
    assert [c.offset_minutes for c in p.vitals_schedule.checkpoints] == [None, 40, None]
    assert p.thresholds.predose_sbp_above.value == 140 and p.thresholds.predose_dbp_above.value == 90
    assert p.rems_monitoring_form and "rems_enrolled" in p.gate_items
    assert [ph.weeks_from for ph in p.sessions.phases] == [1, 5, 9]
    assert p.sessions.count.value == 8


def test_sl_and_im_unknowns_are_clinic_settings_without_defaults() -> None:
    sl = get_protocol("ketamine-sl-lozenge")
    assert sl.dose.unit_strengths == (Mg(50), Mg(100))
    assert sl.dose.max_mg.value == Mg(400) and sl.dose.max_mg.unconfirmed
    im = get_protocol("ketamine-im-racemic")
    for s in (im.dose.max_mg_per_kg, im.dose.default_mg_per_kg, im.observation.minimum_minutes):
        assert s.value is None and s.clinic_setting and s.note
    assert "observation.minimum_minutes" in im.missing_clinic_settings()
    with pytest.raises(ClinicSettingMissing, match="clinic setting with no default"):
        im.observation.minimum_minutes.require("Minimum observation time")


def _walk(node: object, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if "value" in node:
            yield path, node
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


@pytest.mark.parametrize("path", sorted(DATA_DIR.glob("*.json")), ids=lambda p: p.name)
def test_every_number_is_cited_or_marked(path: Path) -> None:
    data = json.loads(path.read_text())
    assert data["version"] and data["sources"]
    for where, node in _walk(data):
        if node["value"] is None:
            assert node.get("clinic_setting") or node.get("not_applicable"), where
        else:
            assert CITATION.search(node["source"]), where
    for ph in data["sessions"]["phases"]:
        assert CITATION.search(ph["source"])


def test_strict_loader_rejects_bad_data() -> None:
    good = raw("esketamine-in-trd")
    parse_protocol(good)
    bad = copy.deepcopy(good)
    bad["dose"]["max_mg"] = {"value": "84", "unit": "mg"}
    with pytest.raises(ProtocolDataError, match=r"dose\.max_mg: every value needs a source citation"):
        parse_protocol(bad)
    bad = copy.deepcopy(good)
    bad["dose"]["max_mg"] = {"value": "84", "unit": "mg/kg", "source": "[S7]"}
    with pytest.raises(ProtocolDataError, match=r"dose\.max_mg: unit must be 'mg'"):
        parse_protocol(bad)
    bad = copy.deepcopy(good)
    bad["dose"]["max_mg"] = {"value": None, "unit": "mg"}
    with pytest.raises(
        ProtocolDataError, match=r"dose\.max_mg: a null value must be marked \"clinic_setting\""
    ):
        parse_protocol(bad)
    bad = copy.deepcopy(good)
    bad["dose"]["max_mg"] = {"value": 84, "unit": "mg", "source": "[S7]"}
    with pytest.raises(ProtocolDataError, match=r"dose\.max_mg\.value: numbers are written as strings"):
        parse_protocol(bad)
    bad = copy.deepcopy(good)
    bad["surprise"] = 1
    with pytest.raises(ProtocolDataError, match="surprise: unknown key"):
        parse_protocol(bad)
    bad = copy.deepcopy(good)
    bad["gate_items"] = ["made_up"]
    with pytest.raises(ProtocolDataError, match=r"gate_items\[0\]: unknown item 'made_up'"):
        parse_protocol(bad)
    bad = copy.deepcopy(good)
    bad["version"] = "1"
    with pytest.raises(ProtocolDataError, match=r"version: must look like 1\.0\.0"):
        parse_protocol(bad)


def _broken(pid: str, change: Any) -> dict[str, Any]:
    data = copy.deepcopy(raw(pid))
    change(data)
    return data


BROKEN_PROTOCOLS: list[tuple[str, Any, str]] = [
    (
        "a phase's sessions per week as a JSON number",
        lambda d: d["sessions"]["phases"][1].update(sessions_per_week=[1.5]),
        r"sessions\.phases\[1\]\.sessions_per_week\[0\]: numbers are written as strings",
    ),
    (
        "a phase without its source",
        lambda d: d["sessions"]["phases"][2].pop("source"),
        r"sessions\.phases\[2\]\.source: required key is missing",
    ),
    (
        "a negative dose",
        lambda d: d["dose"]["allowed_mg"].append("-28"),
        r"dose\.allowed_mg\[2\]: A mg value cannot be negative",
    ),
    (
        "a dose that is not a number",
        lambda d: d["dose"]["unit_strengths"].__setitem__(0, "twenty-eight"),
        r"dose\.unit_strengths\[0\]: 'twenty-eight' is not a number",
    ),
    (
        "allowed doses without a citation",
        lambda d: d["dose"].update(allowed_mg_source=None),
        r"dose\.allowed_mg_source: allowed_mg needs a source citation",
    ),
    (
        "a nasal device without its spacing",
        lambda d: d["dose"]["device_spacing_minutes"].update(value=None, clinic_setting=True, note="n"),
        r"dose: a nasal device protocol needs one device strength and the device spacing",
    ),
    (
        "a threshold in the wrong unit",
        lambda d: d["monitoring_thresholds"]["hr_above"].update(unit="mm[Hg]"),
        r"monitoring_thresholds\.hr_above: unit must be '/min'",
    ),
    (
        "a threshold that is not a whole number",
        lambda d: d["monitoring_thresholds"]["spo2_below"].update(value="93"),
        r"monitoring_thresholds\.spo2_below\.value: Input should be a valid integer",
    ),
    (
        "a checkpoint offset on a pre-dose checkpoint",
        lambda d: d["vitals_schedule"]["checkpoints"][0].update(offset_minutes=5),
        r"vitals_schedule\.checkpoints\[0\]: offset_minutes is needed for \(and only for\) offset",
    ),
    (
        "an unknown vital sign",
        lambda d: d["vitals_schedule"]["measures"].append("temperature"),
        r"vitals_schedule\.measures\[\d+\]: Input should be 'sbp'",
    ),
    (
        "an unknown route",
        lambda d: d.update(route="PO"),
        r"route: Input should be 'IV', 'IM', 'SL' or 'IN'",
    ),
    (
        "a blank discharge criterion",
        lambda d: d["observation"]["discharge_criteria"][1].update(text="  "),
        r"observation\.discharge_criteria\[1\]\.text: must be a non-empty string",
    ),
    (
        "a ceiling written as null",
        lambda d: d["dose"].update(ceiling_mg=None),
        r"dose\.ceiling_mg: leave the key out instead of writing null",
    ),
    (
        "a yes/no written as a string",
        lambda d: d.update(rems_monitoring_form="yes"),
        r"rems_monitoring_form: Input should be a valid boolean",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"), [c[1:] for c in BROKEN_PROTOCOLS], ids=[c[0] for c in BROKEN_PROTOCOLS]
)
def test_a_broken_protocol_file_names_the_field_path(tmp_path: Path, change: Any, message: str) -> None:
    path = tmp_path / "esketamine-in-trd.v9.9.9.json"
    path.write_text(json.dumps(_broken("esketamine-in-trd", change)))
    with pytest.raises(ProtocolDataError, match=rf"^esketamine-in-trd\.v9\.9\.9\.json: (.*; )?{message}"):
        load_protocol(path)


def test_every_problem_of_a_broken_file_is_named_at_once() -> None:
    def two_problems(d: dict[str, Any]) -> None:
        d["fasting"]["food_minutes"]["unit"] = "h"
        d["sessions"]["count"]["value"] = "eight"

    with pytest.raises(ProtocolDataError) as caught:
        parse_protocol(_broken("esketamine-in-trd", two_problems), "trd.json")
    assert "sessions.count.value: Input should be a valid integer" in str(caught.value)
    assert "fasting.food_minutes: unit must be 'min' (got 'h')" in str(caught.value)


def test_get_protocol_unknown() -> None:
    with pytest.raises(UnknownProtocol):
        get_protocol("nope")
    with pytest.raises(UnknownProtocol):
        get_protocol("esketamine-in-trd", "9.9.9")
    assert get_protocol("esketamine-in-trd", "1.0.0").key == "esketamine-in-trd@1.0.0"


def test_apply_clinic_settings() -> None:
    p = apply_clinic_settings(
        get_protocol("ketamine-iv-racemic"),
        {"observation.minimum_minutes": "90", "thresholds.hr_above": 120, "sessions.count": 4},
    )
    assert p.observation.minimum_minutes == Setting(
        Minutes(90), "clinic setting", p.observation.minimum_minutes.note
    )
    assert p.thresholds.hr_above.value == 120 and p.thresholds.hr_above.source == "clinic setting"
    assert p.sessions.count.value == 4
    assert "observation.minimum_minutes" not in p.missing_clinic_settings()
    with pytest.raises(ProtocolDataError):
        apply_clinic_settings(p, {"route": "IV"})
    with pytest.raises(ProtocolDataError):
        apply_clinic_settings(p, {"thresholds.hr_above": "x"})


# ---------------------------------------------------------------- clinic-settable fields (settings page)


def test_clinic_settable_fields_carry_cited_defaults() -> None:
    from kapclinic.clinical.protocols import clinic_settable_fields, get_protocol

    esk = {f.key: f for f in clinic_settable_fields(get_protocol("esketamine-in-trd"))}
    obs = esk["observation.minimum_minutes"]
    assert obs.default == "120" and obs.source and obs.direction == "lengthen_only"
    assert esk["thresholds.predose_sbp_above"].default == "140"
    assert esk["thresholds.hr_above"].default is None and esk["thresholds.hr_above"].required_by_protocol
    iv = {f.key: f for f in clinic_settable_fields(get_protocol("ketamine-iv-racemic"))}
    assert iv["observation.minimum_minutes"].default is None  # the reference gives no IV minimum
    assert iv["observation.minimum_minutes"].direction == ""
    for fields in (esk, iv):
        assert all(f.label and f.group for f in fields.values())


def test_validate_clinic_value_edges() -> None:
    from kapclinic.clinical.protocols import clinic_settable_fields, get_protocol, validate_clinic_value

    esk = get_protocol("esketamine-in-trd")
    f = {x.key: x for x in clinic_settable_fields(esk)}
    obs = f["observation.minimum_minutes"]
    assert validate_clinic_value(esk, obs, "150") == ("150", None)
    assert validate_clinic_value(esk, obs, "120") == ("120", None)
    value, error = validate_clinic_value(esk, obs, "119")
    assert value is None and error and "cannot be shorter than the 120 min" in error
    assert validate_clinic_value(esk, obs, "  ") == (None, None)  # clear: back to the cited default
    assert "must be a number" in (validate_clinic_value(esk, obs, "two hours")[1] or "")
    assert "above 0" in (validate_clinic_value(esk, obs, "0")[1] or "")
    hr = f["thresholds.hr_above"]
    assert validate_clinic_value(esk, hr, "120") == ("120", None)
    assert "whole number" in (validate_clinic_value(esk, hr, "12.5")[1] or "")
    assert "between 20 and 250" in (validate_clinic_value(esk, hr, "900")[1] or "")
    mx = f.get("dose.max_mg")
    if mx is not None and mx.default is not None:
        assert "never raise it" in (validate_clinic_value(esk, mx, "112")[1] or "")
        assert validate_clinic_value(esk, mx, "56") == ("56", None)
