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
    with pytest.raises(ProtocolDataError, match="source citation"):
        parse_protocol(bad)
    bad = copy.deepcopy(good)
    bad["dose"]["max_mg"] = {"value": "84", "unit": "mg/kg", "source": "[S7]"}
    with pytest.raises(ProtocolDataError, match="unit must be 'mg'"):
        parse_protocol(bad)
    bad = copy.deepcopy(good)
    bad["dose"]["max_mg"] = {"value": None, "unit": "mg"}
    with pytest.raises(ProtocolDataError, match="clinic_setting"):
        parse_protocol(bad)
    bad = copy.deepcopy(good)
    bad["dose"]["max_mg"] = {"value": 84, "unit": "mg", "source": "[S7]"}
    with pytest.raises(ProtocolDataError, match="strings"):
        parse_protocol(bad)
    bad = copy.deepcopy(good)
    bad["surprise"] = 1
    with pytest.raises(ProtocolDataError, match="unknown keys"):
        parse_protocol(bad)
    bad = copy.deepcopy(good)
    bad["gate_items"] = ["made_up"]
    with pytest.raises(ProtocolDataError, match="unknown items"):
        parse_protocol(bad)
    bad = copy.deepcopy(good)
    bad["version"] = "1"
    with pytest.raises(ProtocolDataError, match=r"1\.0\.0"):
        parse_protocol(bad)


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
