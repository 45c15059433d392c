"""Issue 18: every shipped protocol is complete before anyone is in the chair, and no override passes the
hard ceiling (docs/clinical-reference-dosing.md)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kapclinic.clinical.dosing import Kg, Mg, MgPerKg, MgPerMl, Minutes, calculate_dose
from kapclinic.clinical.protocols import Protocol, Setting, all_protocols, apply_clinic_settings, get_protocol

LATEST = sorted({p.id for p in all_protocols()})
CITED = ("[S", "[L")


def _setting(p: Protocol, key: str) -> Setting[object] | None:
    group, name = key.split(".")
    if group == "thresholds":
        return None
    value: Setting[object] = getattr(getattr(p, group), name)
    return value


@pytest.mark.parametrize("pid", LATEST)
def test_every_shipped_protocol_is_complete(pid: str) -> None:
    """Every value a plan needs is cited from the reference or is a medical-director setting with a note
    saying what the reference says; nothing is silently blank."""
    p = get_protocol(pid)
    assert p.version == "1.1.0"
    for key in p.required_values():
        s = _setting(p, key)
        if s is None:
            th = getattr(p.thresholds, key.split(".")[1])
            assert th.value is not None or th.note or th.source, key
            continue
        assert not s.not_applicable, f"{pid}: {key} is required but marked not applicable"
        if s.value is None:
            assert s.clinic_setting and s.note, f"{pid}: {key} blank without a medical-director note"
        else:
            assert s.source and s.source.startswith(CITED), f"{pid}: {key} has no citation"
    # the maximum, the range and the ceiling agree where all are cited
    d = p.dose
    hi, top = (
        (d.max_mg_per_kg.value, d.ceiling_mg_per_kg.value)
        if d.basis == "mg_per_kg"
        else (d.max_mg.value, d.ceiling_mg.value)
    )
    if hi is not None and top is not None:
        assert hi.value <= top.value
    # fasting instructions follow the route: the nasal-steroid instruction is for the nasal spray only
    nasal = any("nasal" in text.lower() for text, _src in p.fasting.instructions)
    assert nasal == (p.route == "IN")
    assert any("transport" in text.lower() for text, _src in p.fasting.instructions)
    # the REMS monitoring form belongs to esketamine only
    assert p.rems_monitoring_form == (p.route == "IN")


def test_gaps_are_what_blocks_a_plan_until_the_medical_director_sets_them() -> None:
    im = get_protocol("ketamine-im-racemic")
    gaps = im.usability_gaps()
    for key in (
        "dose.min_mg_per_kg",
        "dose.max_mg_per_kg",
        "fasting.food_minutes",
        "observation.minimum_minutes",
        "vitals_schedule.interval_minutes",
        "thresholds.hr_above",
        "thresholds.rr_below",
        "thresholds.sbp_above",
    ):
        assert key in gaps
    assert "dose.ceiling_mg_per_kg" not in gaps  # cited: the label's IM induction low end
    assert not im.usable
    values: dict[str, str | int | None] = {
        k: (100 if k.startswith("thresholds.") else "1") for k in gaps if not k.startswith("thresholds.")
    }
    values.update({k: 100 for k in gaps if k.startswith("thresholds.")})
    assert apply_clinic_settings(im, values).usable


def test_esketamine_needs_only_the_interval_the_final_set_and_the_blank_thresholds() -> None:
    esk = get_protocol("esketamine-in-trd")
    assert set(esk.usability_gaps()) == {
        "vitals_schedule.interval_minutes",
        "observation.final_set_within_minutes",  # no source gives one (docs/clinical-reference.md §2.7)
        "thresholds.sbp_above",
        "thresholds.dbp_above",
        "thresholds.hr_above",
        "thresholds.hr_below",
        "thresholds.rr_above",
        "thresholds.rr_below",
    }
    assert esk.dose.ceiling_mg.value == Mg(84)


def test_old_versions_inherit_the_ceiling() -> None:
    old = get_protocol("esketamine-in-trd", "1.0.0")
    assert old.dose.ceiling_mg.value == Mg(84) and old.dose.ceiling_inherited
    assert get_protocol("ketamine-iv-racemic", "1.0.0").dose.ceiling_mg_per_kg.value == MgPerKg(1)


# ---------------------------------------------------------------- ceiling plus one unit

SL_CEILING = "400"  # a medical-director value for the test (the SL ceiling has no label default)


def _order(pid: str, over: bool) -> tuple[bool, tuple[str, ...]]:
    p = get_protocol(pid)
    if pid == "ketamine-sl-lozenge":
        p = apply_clinic_settings(p, {"dose.ceiling_mg": SL_CEILING})
    if pid == "ketamine-im-racemic":  # the IM range is the medical director's (test values)
        p = apply_clinic_settings(p, {"dose.min_mg_per_kg": "0.5", "dose.max_mg_per_kg": "0.9"})
    d = p.dose
    reason = "Test of override path"
    if d.basis == "mg_per_kg":
        top = d.ceiling_mg_per_kg.value
        assert top is not None
        per_kg = MgPerKg(top.value + (Decimal("0.01") if over else 0))
        r = calculate_dose(
            p,
            weight=Kg(70),
            mg_per_kg=per_kg,
            vial_concentration=MgPerMl(10),
            infusion_time=Minutes(40),
            override_reason=reason,
        )
    else:
        top_mg = d.ceiling_mg.value
        assert top_mg is not None
        unit = min(d.unit_strengths, key=lambda m: m.value)
        r = calculate_dose(p, fixed_dose=top_mg + unit if over else top_mg, override_reason=reason)
    return r.ok, r.refusals


@pytest.mark.parametrize("pid", LATEST)
def test_ceiling_plus_one_unit_is_refused_whatever_the_reason(pid: str) -> None:
    ok, refusals = _order(pid, over=True)
    assert not ok and "hard ceiling" in refusals[0] and "no override" in refusals[0]
    ok, refusals = _order(pid, over=False)
    assert ok, refusals


def test_the_observed_esketamine_280_mg_order_is_refused() -> None:
    r = calculate_dose(
        get_protocol("esketamine-in-trd"), fixed_dose=Mg(280), override_reason="Test of override path"
    )
    assert not r.ok and r.refusals[0].startswith("Dose refused: 280 mg is above this protocol's hard ceiling")


def test_over_maximum_below_ceiling_needs_reason_and_cosign() -> None:
    iv = get_protocol("ketamine-iv-racemic")
    kw = {"weight": Kg(70), "vial_concentration": MgPerMl(10), "infusion_time": Minutes(40)}
    r = calculate_dose(iv, mg_per_kg=MgPerKg("0.9"), **kw)  # type: ignore[arg-type]
    assert not r.ok and "above the protocol maximum" in r.refusals[0]
    r = calculate_dose(iv, mg_per_kg=MgPerKg("0.9"), override_reason="Partial response at 0.75", **kw)  # type: ignore[arg-type]
    assert r.ok and r.above_maximum and r.cosign_required


# ---------------------------------------------------------------- the record cannot drift


@pytest.mark.parametrize("minutes", [1, 200, Decimal("40.5")])
def test_infusion_time_outside_the_range_is_refused(minutes: int | Decimal) -> None:
    r = calculate_dose(
        get_protocol("ketamine-iv-racemic"),
        weight=Kg(69),
        vial_concentration=MgPerMl(10),
        infusion_time=Minutes(minutes),
        override_reason="any reason",
    )
    assert not r.ok and r.refusals[0].startswith("Infusion time refused") and r.rate is None


@pytest.mark.parametrize("minutes", [2, 40, 100])
def test_infusion_time_inside_the_range(minutes: int) -> None:
    r = calculate_dose(
        get_protocol("ketamine-iv-racemic"),
        weight=Kg(69),
        vial_concentration=MgPerMl(10),
        infusion_time=Minutes(minutes),
    )
    assert r.ok and r.infusion_minutes == Minutes(minutes)


def test_below_minimum_needs_a_written_reason() -> None:
    iv = get_protocol("ketamine-iv-racemic")
    kw = {"weight": Kg(70), "vial_concentration": MgPerMl(10)}
    r = calculate_dose(iv, mg_per_kg=MgPerKg("0.05"), **kw)  # type: ignore[arg-type]
    assert not r.ok and "below the protocol minimum of 7 mg" in r.refusals[0]
    r = calculate_dose(iv, mg_per_kg=MgPerKg("0.05"), low_dose_reason="Test dose after a reaction", **kw)  # type: ignore[arg-type]
    assert r.ok and r.below_minimum and r.low_dose_reason == "Test dose after a reaction"
