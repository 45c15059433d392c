"""Dose maths: worked examples per protocol and route, unit safety, properties."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kapclinic.clinical.dosing import (
    Cm,
    Kg,
    Mg,
    MgPerKg,
    MgPerMl,
    Minutes,
    Ml,
    MlPerHour,
    QuantityError,
    RoundingRule,
    UnitMismatch,
    bmi,
    calculate_dose,
    check_maximum,
    combine_strengths,
    device_plan,
    pump_rate,
    volume_for_dose,
)
from kapclinic.clinical.protocols import Protocol, apply_clinic_settings, get_protocol

IV = get_protocol("ketamine-iv-racemic")
IM = get_protocol("ketamine-im-racemic")
# The SL hard ceiling is a medical-director setting (no label default); a test value above the 400 mg
# protocol maximum, so the over-maximum path can be exercised.
SL = apply_clinic_settings(get_protocol("ketamine-sl-lozenge"), {"dose.ceiling_mg": "600"})
ESK = get_protocol("esketamine-in-trd")
ESK_MDSI = get_protocol("esketamine-in-mdsi")


# ---------------------------------------------------------------- units


def test_unit_arithmetic_that_makes_sense() -> None:
    assert MgPerKg("0.5") * Kg(70) == Mg(35)
    assert Kg(70) * MgPerKg("0.5") == Mg(35)
    assert Mg(35) / MgPerMl(10) == Ml("3.5")
    assert Mg(35) / Kg(70) == MgPerKg("0.5")
    assert Ml("3.5") * MgPerMl(10) == Mg(35)
    assert MgPerMl(10) * Ml("3.5") == Mg(35)
    assert Ml(100) / Minutes(40) == MlPerHour(150)
    assert MlPerHour(150) * Minutes(40) == Ml(100)
    assert Mg(28).scaled(3) == Mg(84)
    assert Mg(1) + Mg(2) == Mg(3)
    assert Mg(84).ratio(Mg(28)) == 3


@pytest.mark.parametrize(
    "op",
    [
        lambda: Mg(1) + Kg(1),  # type: ignore[operator]
        lambda: Mg(1) - Ml(1),  # type: ignore[operator]
        lambda: Mg(1) < Kg(1),  # type: ignore[operator]
        lambda: Mg(1) * Kg(1),
        lambda: Mg(1) / Ml(1),  # type: ignore[operator]
        lambda: MgPerKg(1) * Mg(1),  # type: ignore[operator]
        lambda: Ml(1) * Kg(1),  # type: ignore[operator]
        lambda: Ml(1) / Mg(1),  # type: ignore[operator]
        lambda: Kg(1) * Kg(1),
        lambda: Mg(1).scaled(Kg(2)),  # type: ignore[arg-type]
    ],
)
def test_mixing_units_raises(op: Callable[[], object]) -> None:
    with pytest.raises(UnitMismatch):
        op()


def test_cross_unit_equality_is_false_not_true() -> None:
    assert Mg(1) != Kg(1)


@pytest.mark.parametrize("bad", [0.5, True, "abc", "NaN", "Infinity", -1, "-0.1", None])
def test_bad_numbers_refused(bad: Any) -> None:
    with pytest.raises(QuantityError):
        Mg(bad)


def test_quantities_are_immutable() -> None:
    m = Mg(1)
    with pytest.raises(AttributeError):
        m.value = Decimal(2)


def test_divide_by_zero_refused() -> None:
    with pytest.raises(QuantityError):
        Mg(1) / MgPerMl(0)
    with pytest.raises(QuantityError):
        Ml(1) / Minutes(0)


def test_mypy_rejects_unit_mixups(tmp_path: Path) -> None:
    """Unit mix-ups fail type checking, not just at runtime."""
    from mypy import api

    src = tmp_path / "mix.py"
    src.write_text(
        textwrap.dedent(
            """
            from kapclinic.clinical.dosing import Kg, Mg, MgPerKg, MgPerMl, Ml
            a: Mg = Mg(1) + Kg(1)
            b: Ml = MgPerKg(1) * Kg(70)
            c: Mg = Mg(10) / MgPerMl(5)
            ok: Mg = MgPerKg(1) * Kg(70)
            ok2: Ml = Mg(10) / MgPerMl(5)
            """
        )
    )
    out, _err, status = api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "c"), str(src)]
    )
    assert status == 1
    lines = [line for line in out.splitlines() if "error:" in line]
    assert len(lines) == 3, out
    assert all(f"mix.py:{n}:" in "\n".join(lines) for n in (3, 4, 5))


# ---------------------------------------------------------------- rounding


def test_rounding_is_explicit_and_described() -> None:
    r = RoundingRule(Decimal("0.1"))
    assert r.apply(Mg("35.25")) == Mg("35.3")
    assert r.apply(Mg("35.24")) == Mg("35.2")
    assert RoundingRule(Decimal("0.5"), "down").apply(Ml("1.99")) == Ml("1.5")
    assert r.describe("mg") == "rounded half-up to the nearest 0.1 mg"
    with pytest.raises(QuantityError):
        RoundingRule(Decimal(0))


# ---------------------------------------------------------------- IV worked examples


def test_iv_worked_example_70kg() -> None:
    """0.5 mg/kg over 40 min [S17][S21]: 70 kg -> 35 mg; 10 mg/mL vial -> 3.5 mL; + 100 mL bag."""
    r = calculate_dose(IV, weight=Kg(70), vial_concentration=MgPerMl(10), diluent_volume=Ml(100))
    assert r.ok, r.refusals
    assert r.dose == Mg(35)
    assert r.maximum == Mg("52.5")  # 0.75 mg/kg x 70 kg
    assert r.volume is not None and r.volume.volume == Ml("3.5") and r.volume.delivered == Mg(35)
    assert r.rate is not None
    assert r.rate.total_volume == Ml("103.5")
    assert r.rate.raw == MlPerHour("155.25")
    assert r.rate.rate == MlPerHour("155.3")  # shown as rounded half-up to 0.1 mL/h
    labels = [s.label for s in r.steps]
    assert "Rate rounding" in labels and "Volume" in labels
    assert any("0.5 mg/kg × 70 kg" in s.working for s in r.steps)


def test_iv_dose_rounding_shown() -> None:
    r = calculate_dose(IV, weight=Kg("81.3"), vial_concentration=MgPerMl(50))
    assert r.raw_dose == Mg("40.65")
    assert r.dose == Mg("40.7")
    assert any(s.label == "Dose rounding" for s in r.steps)
    assert r.volume is not None and r.volume.raw == Ml("0.814")
    assert r.volume.volume == Ml("0.81")
    assert r.volume.delivered == Mg("40.5")  # delivered dose is displayed, not hidden


def test_iv_above_max_refused_then_overridden_never_clamped() -> None:
    r = calculate_dose(IV, weight=Kg(70), mg_per_kg=MgPerKg("0.8"), vial_concentration=MgPerMl(10))
    assert not r.ok
    assert r.dose == Mg(56)  # not clamped to 52.5
    assert "above the protocol maximum of 52.5 mg" in r.refusals[0]
    r2 = calculate_dose(
        IV,
        weight=Kg(70),
        mg_per_kg=MgPerKg("0.8"),
        vial_concentration=MgPerMl(10),
        override_reason="Prior response",
    )
    assert r2.ok and r2.dose == Mg(56) and r2.above_maximum and r2.override_reason == "Prior response"
    r3 = calculate_dose(
        IV, weight=Kg(70), mg_per_kg=MgPerKg("0.8"), vial_concentration=MgPerMl(10), override_reason="  "
    )
    assert not r3.ok


def test_iv_at_max_is_allowed() -> None:
    r = calculate_dose(IV, weight=Kg(70), mg_per_kg=MgPerKg("0.75"), vial_concentration=MgPerMl(10))
    assert r.ok and r.dose == Mg("52.5")


def test_iv_missing_inputs_are_sentences() -> None:
    r = calculate_dose(IV)
    assert any(m.startswith("Weight is required") for m in r.refusals)
    r = calculate_dose(IV, weight=Kg(70))
    assert r.refusals == ("Vial concentration (mg/mL) is required to calculate the volume to draw up.",)


def test_iv_bmi_warning_and_ideal_weight_basis() -> None:
    r = calculate_dose(IV, weight=Kg(110), height=Cm(170), vial_concentration=MgPerMl(10))
    assert r.bmi == Decimal("38.1")
    assert any("BMI ≥ 30" in w for w in r.warnings)
    ideal = apply_ideal(IV)
    r = calculate_dose(ideal, weight=Kg(110), vial_concentration=MgPerMl(10))
    assert any("no IBW formula" in m for m in r.refusals)
    r = calculate_dose(ideal, weight=Kg(110), ideal_body_weight=Kg(66), vial_concentration=MgPerMl(10))
    assert r.ok and r.dose == Mg(33) and r.maximum == Mg("49.5")


def apply_ideal(p: Protocol) -> Protocol:
    from dataclasses import replace

    from kapclinic.clinical.dosing import WeightBasis
    from kapclinic.clinical.protocols import Setting

    return replace(p, dose=replace(p.dose, weight_basis=Setting(WeightBasis.IDEAL, "test")))


def test_iv_infusion_time_override() -> None:
    r = calculate_dose(
        IV, weight=Kg(60), vial_concentration=MgPerMl(10), infusion_time=Minutes(60), diluent_volume=Ml(57)
    )
    assert r.rate is not None and r.rate.rate == MlPerHour(60)


# ---------------------------------------------------------------- IM


def test_im_refuses_until_clinic_sets_dose_and_maximum() -> None:
    r = calculate_dose(IM, weight=Kg(70), vial_concentration=MgPerMl(50))
    assert any("Dose (mg/kg) is required" in m for m in r.refusals)
    r = calculate_dose(IM, weight=Kg(70), mg_per_kg=MgPerKg("0.5"), vial_concentration=MgPerMl(50))
    assert any("no maximum dose configured" in m for m in r.refusals)


def test_im_worked_example_with_clinic_settings() -> None:
    p = apply_clinic_settings(IM, {"dose.max_mg_per_kg": "1", "dose.default_mg_per_kg": "0.5"})
    r = calculate_dose(p, weight=Kg(80), vial_concentration=MgPerMl(50))
    assert r.ok and r.dose == Mg(40) and r.maximum == Mg(80)
    assert r.volume is not None and r.volume.volume == Ml("0.8")
    assert r.rate is None


# ---------------------------------------------------------------- SL lozenges


def test_lozenge_counts_from_stocked_strengths() -> None:
    r = calculate_dose(SL, fixed_dose=Mg(250))
    assert r.ok and r.lozenges is not None
    assert r.lozenges.total == Mg(250) and r.lozenges.units == 3
    assert r.lozenges.describe("lozenge") == "2 × 100 mg lozenge + 1 × 50 mg lozenge"


def test_lozenge_dose_that_cannot_be_made_is_refused_not_rounded() -> None:
    r = calculate_dose(SL, fixed_dose=Mg(225))
    assert not r.ok and "cannot be made exactly" in r.refusals[0]
    r = calculate_dose(SL, fixed_dose=Mg(225), stocked_strengths=[Mg(25), Mg(100)])
    assert r.ok and r.lozenges is not None and r.lozenges.units == 3


def test_lozenge_above_400_refused_without_reason() -> None:
    r = calculate_dose(SL, fixed_dose=Mg(500))
    assert not r.ok and "400 mg" in r.refusals[0]
    r = calculate_dose(SL, fixed_dose=Mg(500), override_reason="Tolerance documented")
    assert r.ok and r.lozenges is not None and r.lozenges.total == Mg(500)


def test_sl_requires_a_chosen_dose() -> None:
    r = calculate_dose(SL)
    assert r.refusals == ("Dose (mg) is required: the protocol has no default fixed dose.",)


# ---------------------------------------------------------------- esketamine


@pytest.mark.parametrize(("mg", "devices"), [(56, 2), (84, 3)])
def test_esketamine_devices(mg: int, devices: int) -> None:
    r = calculate_dose(ESK, fixed_dose=Mg(mg))
    assert r.ok and r.devices is not None and r.devices.devices == devices
    assert [s.offset for s in r.devices.schedule] == [Minutes(5 * i) for i in range(devices)]


def test_esketamine_defaults() -> None:
    assert calculate_dose(ESK).dose == Mg(56)  # day-1 dose [S7]
    assert calculate_dose(ESK_MDSI).dose == Mg(84)


def test_esketamine_off_label_doses() -> None:
    r = calculate_dose(ESK, fixed_dose=Mg(28))
    assert not r.ok and "below the protocol minimum of 56 mg" in r.refusals[0]
    r = calculate_dose(ESK, fixed_dose=Mg(28), low_dose_reason="Age 70; 28 mg start (HK label)")
    assert r.ok and r.devices is not None and r.devices.devices == 1 and r.below_minimum
    assert r.low_dose_reason == "Age 70; 28 mg start (HK label)"
    r = calculate_dose(ESK, fixed_dose=Mg(112), override_reason="Test of override path")
    assert not r.ok and "above this protocol's hard ceiling of 84 mg" in r.refusals[0]
    r = calculate_dose(ESK, fixed_dose=Mg(70), override_reason="x")
    assert not r.ok and "whole number of 28 mg devices" in r.refusals[0]


# ---------------------------------------------------------------- building blocks


def test_combine_strengths_edges() -> None:
    assert combine_strengths(Mg(0), [Mg(50)]) == combine_strengths(Mg(0), [Mg(50)])
    assert combine_strengths(Mg(30), [Mg(50), Mg(100)]) is None
    assert combine_strengths(Mg(50), []) is None
    c = combine_strengths(Mg("62.5"), [Mg("12.5"), Mg(50)])
    assert c is not None and c.total == Mg("62.5") and c.units == 2


def test_device_plan_not_whole() -> None:
    assert device_plan(Mg(50), Mg(28), Minutes(5)) is None


def test_check_maximum_without_configured_max_refuses() -> None:
    assert check_maximum(Mg(1), None).refusal is not None


def test_bmi_definition() -> None:
    assert bmi(Kg(70), Cm(175)) == Decimal("22.9")
    with pytest.raises(QuantityError):
        bmi(Kg(70), Cm(0))


def test_pump_rate_without_diluent() -> None:
    r = pump_rate(Ml("3.5"), Minutes(40))
    assert r.rate == MlPerHour("5.3")


# ---------------------------------------------------------------- properties

weights = st.decimals(min_value=Decimal("30"), max_value=Decimal("200"), places=1)
per_kg = st.decimals(min_value=Decimal("0.05"), max_value=Decimal("1.5"), places=2)
conc = st.sampled_from([Decimal(10), Decimal(50), Decimal(100), Decimal("12.5")])


@settings(max_examples=200, deadline=None)
@given(w=weights, d=per_kg, c=conc, reason=st.one_of(st.none(), st.just(""), st.just("documented reason")))
def test_property_dose_never_above_max_without_override(
    w: Decimal, d: Decimal, c: Decimal, reason: str | None
) -> None:
    r = calculate_dose(
        IV, weight=Kg(w), mg_per_kg=MgPerKg(d), vial_concentration=MgPerMl(c), override_reason=reason
    )
    assert r.dose is not None and r.maximum is not None
    if r.ok and r.dose > r.maximum:
        assert r.above_maximum and r.override_reason
    if r.dose > r.maximum and not (reason or "").strip():
        assert not r.ok
    # never clamped: the reported dose is the rounded product
    assert r.dose == RoundingRule(Decimal("0.1")).apply(MgPerKg(d) * Kg(w))


@settings(max_examples=200, deadline=None)
@given(
    dose=st.decimals(min_value=Decimal("0.1"), max_value=Decimal("500"), places=1),
    c=st.decimals(min_value=Decimal("0.5"), max_value=Decimal("100"), places=1),
)
def test_property_volume_times_concentration_is_dose(dose: Decimal, c: Decimal) -> None:
    v = volume_for_dose(Mg(dose), MgPerMl(c))
    assert v.raw * MgPerMl(c) == Mg(dose) or abs((v.raw * MgPerMl(c)).value - dose) < Decimal("1e-20")
    # after the displayed 0.01 mL rounding the delivered dose is within half a step of the order
    assert abs(v.delivered.value - dose) <= Decimal("0.005") * c
    assert v.delivered == v.volume * MgPerMl(c)


@settings(max_examples=100, deadline=None)
@given(
    units=st.lists(st.sampled_from([50, 100]), min_size=1, max_size=8),
)
def test_property_lozenges_sum_exactly(units: list[int]) -> None:
    total = Mg(sum(units))
    c = combine_strengths(total, [Mg(50), Mg(100)])
    assert c is not None and c.total == total and c.units <= len(units)


@settings(max_examples=100, deadline=None)
@given(vol=st.decimals(min_value=Decimal("0.1"), max_value=Decimal("500"), places=2), m=st.integers(1, 240))
def test_property_rate_times_time_is_volume(vol: Decimal, m: int) -> None:
    r = pump_rate(Ml(vol), Minutes(m), rounding=RoundingRule(Decimal("0.000001")))
    assert abs((r.rate * Minutes(m)).value - vol) <= Decimal("0.000001") * m
