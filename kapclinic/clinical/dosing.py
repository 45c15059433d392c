"""Dose arithmetic with units as types (pure; no Django).

Every quantity is a small immutable value object wrapping a ``Decimal``.  Only physically meaningful
operations are defined, so ``Mg(1) + Kg(1)`` is a mypy error *and* raises :class:`UnitMismatch` at
runtime, and ``MgPerKg * Kg`` is the only way to get a weight-based ``Mg`` dose.

Clinical facts come from the clinical reference (docs/clinical-reference.md; `ref §n` = its section n) and,
for the dose limits and ceilings, docs/clinical-reference-dosing.md, which cites the original sources:

* IV racemic ketamine 0.5 mg/kg over 40 min; 0.1-0.75 mg/kg reported [S17][S20][S21] ref §1.2.
* Esketamine 28 mg per device, 56 or 84 mg sessions, 5 minutes between devices [S7][S8a] ref §1.1, §1.3.
* Compounded lozenges (RDT) in 50 mg and 100 mg strengths [S28] ref §1.2, §1.5.
* Ideal body weight suggested when BMI >= 30 [S13c] ref §2.3, §3.7.  **The reference gives no IBW
  formula**, so this module never computes IBW: the prescriber enters it (calculated with the clinic's
  chosen formula) and the calculation refuses without it.  BMI (kg/m2) is a definition, not a clinical
  threshold, and is shown for context only.

Rounding is explicit: every rounded number records the rule that produced it so the UI can display it.
Nothing is clamped: a dose above the maximum is reported (and refused unless a written override reason
is given), never reduced.

Over 600 lines: one pure dose pipeline (unit types, rounding, building blocks, maximum-dose check, whole
calculation), each section using the ones above it; splitting would scatter the units from their rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal, InvalidOperation
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, TypeVar, overload

if TYPE_CHECKING:  # pragma: no cover - import only for type checking (avoids a circular import)
    from kapclinic.clinical.protocols.model import Protocol, Setting

Number = Decimal | int | str


Q = TypeVar("Q", bound="Quantity")


class UnitMismatch(TypeError):
    """Raised when quantities of different units are combined."""


class QuantityError(ValueError):
    """Raised when a quantity is built from an invalid number."""


def _to_decimal(value: object, unit: str) -> Decimal:
    if isinstance(value, bool | float):
        raise QuantityError(
            f"A {unit} value must be given as a Decimal, int or str, not {type(value).__name__}, "
            "so that binary floating point never enters a dose."
        )
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int | str):
        try:
            d = Decimal(value)
        except InvalidOperation:
            raise QuantityError(f"{value!r} is not a number, so it cannot be a {unit} value.") from None
    else:
        raise QuantityError(f"A {unit} value must be a number, not {type(value).__name__}.")
    if not d.is_finite():
        raise QuantityError(f"A {unit} value must be a finite number.")
    if d < 0:
        raise QuantityError(f"A {unit} value cannot be negative (got {d}).")
    return d


class Quantity:
    """Base for unit-typed, non-negative, immutable quantities."""

    __slots__ = ("value",)
    unit: ClassVar[str] = ""
    value: Decimal

    def __init__(self, value: Number) -> None:
        object.__setattr__(self, "value", _to_decimal(value, self.unit))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable.")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.value)!r})"

    def __str__(self) -> str:
        return f"{_fmt(self.value)} {self.unit}"

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.value))

    def __eq__(self, other: object) -> bool:
        if type(other) is type(self):
            assert isinstance(other, Quantity)
            return self.value == other.value
        return NotImplemented

    def _same(self, other: object, op: str) -> Decimal:
        if type(other) is not type(self):
            other_unit = other.unit if isinstance(other, Quantity) else type(other).__name__
            raise UnitMismatch(f"Cannot {op} {self.unit} and {other_unit}: the units differ.")
        assert isinstance(other, Quantity)
        return other.value

    def __add__(self, other: Self) -> Self:
        return type(self)(self.value + self._same(other, "add"))

    def __sub__(self, other: Self) -> Self:
        return type(self)(self.value - self._same(other, "subtract"))

    def __lt__(self, other: Self) -> bool:
        return self.value < self._same(other, "compare")

    def __le__(self, other: Self) -> bool:
        return self.value <= self._same(other, "compare")

    def __gt__(self, other: Self) -> bool:
        return self.value > self._same(other, "compare")

    def __ge__(self, other: Self) -> bool:
        return self.value >= self._same(other, "compare")

    def scaled(self, factor: Decimal | int) -> Self:
        """Multiply by a dimensionless factor (e.g. a device count)."""
        if isinstance(factor, bool) or not isinstance(factor, Decimal | int):
            raise UnitMismatch(f"A {self.unit} value can only be scaled by a plain number.")
        return type(self)(self.value * Decimal(factor))

    def ratio(self, other: Self) -> Decimal:
        """Dimensionless ratio of two quantities of the same unit."""
        divisor = self._same(other, "divide")
        if divisor == 0:
            raise QuantityError(f"Cannot divide by zero {self.unit}.")
        return self.value / divisor


def _fmt(d: Decimal) -> str:
    """Plain decimal text without exponent and without trailing zeros."""
    text = format(d.normalize(), "f") if d != 0 else "0"
    return text


class Kg(Quantity):
    __slots__ = ()
    unit = "kg"

    @overload
    def __mul__(self, other: MgPerKg) -> Mg: ...
    @overload
    def __mul__(self, other: object) -> Any: ...
    def __mul__(self, other: object) -> Any:
        if isinstance(other, MgPerKg):
            return Mg(self.value * other.value)
        raise UnitMismatch(f"kg can only be multiplied by mg/kg, not {_unit_of(other)}.")


class Cm(Quantity):
    __slots__ = ()
    unit = "cm"


class Mg(Quantity):
    __slots__ = ()
    unit = "mg"

    @overload
    def __truediv__(self, other: MgPerMl) -> Ml: ...
    @overload
    def __truediv__(self, other: Kg) -> MgPerKg: ...
    def __truediv__(self, other: MgPerMl | Kg) -> Ml | MgPerKg:
        if isinstance(other, MgPerMl):
            _nonzero(other)
            return Ml(self.value / other.value)
        if isinstance(other, Kg):
            _nonzero(other)
            return MgPerKg(self.value / other.value)
        raise UnitMismatch(f"mg can only be divided by mg/mL or kg, not {_unit_of(other)}.")

    def __mul__(self, other: object) -> Any:
        raise UnitMismatch(f"mg cannot be multiplied by {_unit_of(other)}; use .scaled(n) for a count.")


class MgPerKg(Quantity):
    __slots__ = ()
    unit = "mg/kg"

    def __mul__(self, other: Kg) -> Mg:
        if isinstance(other, Kg):
            return Mg(self.value * other.value)
        raise UnitMismatch(f"mg/kg can only be multiplied by kg, not {_unit_of(other)}.")


class Ml(Quantity):
    __slots__ = ()
    unit = "mL"

    def __mul__(self, other: MgPerMl) -> Mg:
        if isinstance(other, MgPerMl):
            return Mg(self.value * other.value)
        raise UnitMismatch(f"mL can only be multiplied by mg/mL, not {_unit_of(other)}.")

    def __truediv__(self, other: Minutes) -> MlPerHour:
        if isinstance(other, Minutes):
            _nonzero(other)
            return MlPerHour(self.value * 60 / other.value)
        raise UnitMismatch(f"mL can only be divided by minutes, not {_unit_of(other)}.")


class MgPerMl(Quantity):
    __slots__ = ()
    unit = "mg/mL"

    def __mul__(self, other: Ml) -> Mg:
        if isinstance(other, Ml):
            return Mg(self.value * other.value)
        raise UnitMismatch(f"mg/mL can only be multiplied by mL, not {_unit_of(other)}.")


class MlPerHour(Quantity):
    __slots__ = ()
    unit = "mL/h"

    def __mul__(self, other: Minutes) -> Ml:
        if isinstance(other, Minutes):
            return Ml(self.value * other.value / 60)
        raise UnitMismatch(f"mL/h can only be multiplied by minutes, not {_unit_of(other)}.")


class Minutes(Quantity):
    __slots__ = ()
    unit = "min"


def _unit_of(other: object) -> str:
    return other.unit if isinstance(other, Quantity) else type(other).__name__


def _nonzero(q: Quantity) -> None:
    if q.value == 0:
        raise QuantityError(f"Cannot divide by zero {q.unit}.")


# --------------------------------------------------------------------------------------------------
# Rounding (explicit and displayed)
# --------------------------------------------------------------------------------------------------

RoundingMode = Literal["half_up", "down", "up"]
_MODES = {"half_up": ROUND_HALF_UP, "down": ROUND_DOWN, "up": ROUND_UP}
_MODE_WORDS = {"half_up": "half-up", "down": "down", "up": "up"}


@dataclass(frozen=True)
class RoundingRule:
    """Round to a multiple of ``step`` (e.g. 0.1 mg).  Engineering display precision, clinic-configurable."""

    step: Decimal
    mode: RoundingMode = "half_up"

    def __post_init__(self) -> None:
        if not isinstance(self.step, Decimal) or not self.step.is_finite() or self.step <= 0:
            raise QuantityError("A rounding step must be a positive Decimal.")
        if self.mode not in _MODES:
            raise QuantityError(f"Unknown rounding mode {self.mode!r}.")

    def apply_value(self, value: Decimal) -> Decimal:
        units = (value / self.step).to_integral_value(rounding=_MODES[self.mode])
        return units * self.step

    def apply(self, q: Q) -> Q:
        return type(q)(self.apply_value(q.value))

    def describe(self, unit: str) -> str:
        return f"rounded {_MODE_WORDS[self.mode]} to the nearest {_fmt(self.step)} {unit}"


# Engineering defaults for *display precision* (not clinical numbers; the clinic may change them).
DEFAULT_DOSE_ROUNDING = RoundingRule(Decimal("0.1"))
DEFAULT_VOLUME_ROUNDING = RoundingRule(Decimal("0.01"))
DEFAULT_RATE_ROUNDING = RoundingRule(Decimal("0.1"))


@dataclass(frozen=True)
class CalcStep:
    """One displayed line of working, e.g. ``0.5 mg/kg x 70 kg = 35 mg``."""

    label: str
    working: str


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------


def bmi(weight: Kg, height: Cm) -> Decimal:
    """Body-mass index in kg/m2 (definition), rounded half-up to 0.1 for display."""
    if height.value == 0:
        raise QuantityError("Height must be greater than 0 cm to calculate BMI.")
    metres = height.value / 100
    return (weight.value / (metres * metres)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class VolumeResult:
    raw: Ml
    volume: Ml
    delivered: Mg
    steps: tuple[CalcStep, ...]


def volume_for_dose(
    dose: Mg, concentration: MgPerMl, rounding: RoundingRule = DEFAULT_VOLUME_ROUNDING
) -> VolumeResult:
    """Volume to draw up from a vial of ``concentration`` to give ``dose``; shows the delivered mg."""
    if concentration.value == 0:
        raise QuantityError("The vial concentration must be greater than 0 mg/mL.")
    raw = dose / concentration
    vol = rounding.apply(raw)
    delivered = vol * concentration
    steps = (
        CalcStep("Volume", f"{dose} ÷ {concentration} = {_fmt(raw.value)} mL"),
        CalcStep("Volume rounding", f"{rounding.describe('mL')}: {vol}"),
        CalcStep("Delivered dose", f"{vol} × {concentration} = {delivered}"),
    )
    return VolumeResult(raw=raw, volume=vol, delivered=delivered, steps=steps)


@dataclass(frozen=True)
class RateResult:
    raw: MlPerHour
    rate: MlPerHour
    total_volume: Ml
    steps: tuple[CalcStep, ...]


def pump_rate(
    drug_volume: Ml,
    infusion_time: Minutes,
    diluent_volume: Ml | None = None,
    rounding: RoundingRule = DEFAULT_RATE_ROUNDING,
) -> RateResult:
    """Pump rate (mL/h) to infuse the drug volume plus any diluent over ``infusion_time``."""
    if infusion_time.value == 0:
        raise QuantityError("The infusion time must be greater than 0 minutes.")
    total = drug_volume + (diluent_volume if diluent_volume is not None else Ml(0))
    raw = total / infusion_time
    rate = rounding.apply(raw)
    steps = []
    if diluent_volume is not None and diluent_volume.value > 0:
        steps.append(CalcStep("Total volume", f"{drug_volume} drug + {diluent_volume} diluent = {total}"))
    steps.append(CalcStep("Pump rate", f"{total} ÷ {infusion_time} × 60 = {_fmt(raw.value)} mL/h"))
    steps.append(CalcStep("Rate rounding", f"{rounding.describe('mL/h')}: {rate}"))
    return RateResult(raw=raw, rate=rate, total_volume=total, steps=tuple(steps))


@dataclass(frozen=True)
class UnitCombination:
    """How many units of each stocked strength make up a dose (lozenges or devices)."""

    counts: tuple[tuple[Mg, int], ...]

    @property
    def total(self) -> Mg:
        return sum((s.scaled(n) for s, n in self.counts), Mg(0))

    @property
    def units(self) -> int:
        return sum(n for _, n in self.counts)

    def describe(self, noun: str) -> str:
        parts = [f"{n} × {s} {noun}" for s, n in self.counts if n]
        return " + ".join(parts) if parts else f"no {noun}"


def combine_strengths(dose: Mg, strengths: Sequence[Mg], max_units: int = 50) -> UnitCombination | None:
    """Fewest units of the stocked ``strengths`` that add up to exactly ``dose``; ``None`` if impossible.

    Exact only: a dose that the stocked strengths cannot make is never rounded to a nearby one.
    """
    usable = sorted({s for s in strengths if s.value > 0}, key=lambda s: s.value, reverse=True)
    if not usable:
        return None
    # Work in a common integer grid (strengths are decimals like 50, 100 or 12.5 mg).
    exps = [s.value.as_tuple().exponent for s in [*usable, dose]]
    scale = 10 ** max(0, -min(e for e in exps if isinstance(e, int)))
    target = dose.value * scale
    if target != target.to_integral_value():
        return None
    t = int(target)
    coins = [int(s.value * scale) for s in usable]
    if t > max(coins) * max_units:
        return None
    best: list[int | None] = [0] + [None] * t
    choice: list[int] = [-1] * (t + 1)
    for amount in range(1, t + 1):
        for i, c in enumerate(coins):
            prev = best[amount - c] if amount >= c else None
            if prev is not None and (best[amount] is None or prev + 1 < (best[amount] or 0)):
                best[amount] = prev + 1
                choice[amount] = i
    if best[t] is None:
        return None
    counts = [0] * len(coins)
    amount = t
    while amount > 0:
        i = choice[amount]
        counts[i] += 1
        amount -= coins[i]
    return UnitCombination(counts=tuple((usable[i], counts[i]) for i in range(len(usable))))


@dataclass(frozen=True)
class DeviceStep:
    device_number: int
    offset: Minutes


@dataclass(frozen=True)
class DevicePlan:
    devices: int
    device_strength: Mg
    spacing: Minutes
    schedule: tuple[DeviceStep, ...]


def device_plan(dose: Mg, device_strength: Mg, spacing: Minutes) -> DevicePlan | None:
    """Devices for a fixed intranasal dose (esketamine: 28 mg per device, 5 min apart [S7] ref §1.3)."""
    if device_strength.value == 0:
        raise QuantityError("The device strength must be greater than 0 mg.")
    n = dose.ratio(device_strength)
    if n != n.to_integral_value() or n == 0:
        return None
    count = int(n)
    schedule = tuple(DeviceStep(i + 1, spacing.scaled(i)) for i in range(count))
    return DevicePlan(devices=count, device_strength=device_strength, spacing=spacing, schedule=schedule)


# --------------------------------------------------------------------------------------------------
# Maximum-dose check: refuse, or accept with a written override reason; never clamp
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaxCheck:
    maximum: Mg | None
    above_maximum: bool
    overridden: bool
    refusal: str | None


def check_maximum(dose: Mg, maximum: Mg | None, override_reason: str | None = None) -> MaxCheck:
    """Compare ``dose`` with ``maximum``.  Above it: refused unless a written override reason is given."""
    if maximum is None:
        return MaxCheck(
            maximum=None,
            above_maximum=False,
            overridden=False,
            refusal=(
                "Dose refused: this protocol has no maximum dose configured; the clinic must set the "
                "maximum before a dose can be calculated."
            ),
        )
    if dose <= maximum:
        return MaxCheck(maximum=maximum, above_maximum=False, overridden=False, refusal=None)
    reason = (override_reason or "").strip()
    if reason:
        return MaxCheck(maximum=maximum, above_maximum=True, overridden=True, refusal=None)
    return MaxCheck(
        maximum=maximum,
        above_maximum=True,
        overridden=False,
        refusal=(
            f"Dose refused: {dose} is above the protocol maximum of {maximum}; a prescriber may order it "
            "only by entering a written override reason."
        ),
    )


def check_ceiling(dose: Mg, ceiling: Mg | None) -> str | None:
    """The hard ceiling no override passes (docs/clinical-reference-dosing.md §2): a refusal sentence
    when ``dose`` is above it, or when the protocol has none configured."""
    if ceiling is None:
        return (
            "Dose refused: this protocol has no hard ceiling configured; the medical director must set it "
            "on the clinic settings page before a dose can be ordered."
        )
    if dose > ceiling:
        return (
            f"Dose refused: {dose} is above this protocol's hard ceiling of {ceiling}; no override reason "
            "or co-signature can pass the ceiling."
        )
    return None


def check_infusion_time(
    minutes: Minutes, shortest: Setting[Minutes], longest: Setting[Minutes]
) -> str | None:
    """An IV infusion time outside the protocol's range is refused like a dose above the ceiling: no
    override passes it (2-100 min reported safe, [S17] ref §1.2; docs/clinical-reference-dosing.md §3)."""
    if minutes.value != minutes.value.to_integral_value():
        return f"Infusion time refused: {minutes} is not a whole number of minutes; enter whole minutes."
    lo, hi = shortest.value, longest.value
    if lo is None or hi is None:
        return (
            "Infusion time refused: this protocol has no infusion-time range configured; the medical "
            "director must set it before an infusion can be ordered."
        )
    if minutes < lo or minutes > hi:
        return (
            f"Infusion time refused: {minutes} is outside the protocol's range of {lo.value.normalize():f}-"
            f"{hi} ({shortest.source}); no override passes it."
        )
    return None


# --------------------------------------------------------------------------------------------------
# Whole calculation for a protocol
# --------------------------------------------------------------------------------------------------


class WeightBasis(Enum):
    ACTUAL = "actual"
    IDEAL = "ideal"


@dataclass(frozen=True)
class DoseCalculation:
    """Result of a dose calculation.  ``refusals`` non-empty means the dose may not be given."""

    protocol_id: str
    protocol_version: str
    route: str
    dose: Mg | None
    raw_dose: Mg | None
    mg_per_kg: MgPerKg | None
    weight_basis: WeightBasis | None
    weight_used: Kg | None
    maximum: Mg | None
    above_maximum: bool
    override_reason: str | None
    ceiling: Mg | None = None
    minimum: Mg | None = None
    below_minimum: bool = False
    low_dose_reason: str | None = None
    infusion_minutes: Minutes | None = None
    volume: VolumeResult | None = None
    rate: RateResult | None = None
    lozenges: UnitCombination | None = None
    devices: DevicePlan | None = None
    bmi: Decimal | None = None
    steps: tuple[CalcStep, ...] = ()
    warnings: tuple[str, ...] = ()
    refusals: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.refusals

    @property
    def cosign_required(self) -> bool:
        """Above the protocol maximum (with a written reason): a second prescriber must co-sign the
        order before dosing can start (docs/clinical-reference-dosing.md §2)."""
        return self.above_maximum


def calculate_dose(
    protocol: Protocol,
    *,
    weight: Kg | None = None,
    height: Cm | None = None,
    ideal_body_weight: Kg | None = None,
    mg_per_kg: MgPerKg | None = None,
    fixed_dose: Mg | None = None,
    vial_concentration: MgPerMl | None = None,
    diluent_volume: Ml | None = None,
    infusion_time: Minutes | None = None,
    stocked_strengths: Sequence[Mg] | None = None,
    override_reason: str | None = None,
    low_dose_reason: str | None = None,
    dose_rounding: RoundingRule = DEFAULT_DOSE_ROUNDING,
    volume_rounding: RoundingRule = DEFAULT_VOLUME_ROUNDING,
    rate_rounding: RoundingRule = DEFAULT_RATE_ROUNDING,
) -> DoseCalculation:
    """Compute the session dose for ``protocol`` from today's weight (or a fixed dose).

    Inputs left as ``None`` fall back to the protocol default where the reference gives one; a missing
    value that the reference does not give becomes a refusal sentence naming the field.

    Limits (docs/clinical-reference-dosing.md §2): above the protocol's hard ceiling is refused whatever
    reason is given; above the protocol maximum needs ``override_reason`` (and, by the caller, a second
    prescriber's co-signature: ``cosign_required``); below the protocol minimum needs ``low_dose_reason``;
    an IV infusion time outside the protocol's range is refused.
    """
    spec = protocol.dose
    refusals: list[str] = []
    warnings: list[str] = []
    steps: list[CalcStep] = []
    raw_dose: Mg | None = None
    weight_used: Kg | None = None
    basis: WeightBasis | None = None
    per_kg: MgPerKg | None = None
    body_mass_index: Decimal | None = None
    maximum: Mg | None = None
    minimum: Mg | None = None
    ceiling: Mg | None = None

    if spec.basis == "mg_per_kg":
        basis = spec.weight_basis.value
        if basis is None:
            refusals.append("Weight basis is required: the clinic must set actual or ideal body weight.")
        per_kg = mg_per_kg if mg_per_kg is not None else spec.default_mg_per_kg.value
        if per_kg is None:
            refusals.append("Dose (mg/kg) is required: the protocol has no default dose per kilogram.")
        if weight is None or weight.value == 0:
            refusals.append("Weight is required: record today's weight in kg before calculating the dose.")
        elif height is not None and height.value > 0:
            body_mass_index = bmi(weight, height)
            steps.append(CalcStep("BMI", f"{weight} ÷ ({_fmt(height.value / 100)} m)² = {body_mass_index}"))
            if body_mass_index >= 30 and basis is WeightBasis.ACTUAL:
                warnings.append(
                    f"BMI is {body_mass_index}; dosing on ideal body weight was suggested when BMI ≥ 30 "
                    "([S13c] ref §2.3, §3.7). The protocol doses on actual body weight."
                )
        if basis is WeightBasis.IDEAL:
            if ideal_body_weight is None or ideal_body_weight.value == 0:
                refusals.append(
                    "Ideal body weight is required: this protocol doses on ideal body weight and the "
                    "clinical reference gives no IBW formula, so the prescriber must enter it."
                )
            else:
                weight_used = ideal_body_weight
        elif weight is not None and weight.value > 0:
            weight_used = weight
        if per_kg is not None and weight_used is not None and basis is not None:
            raw_dose = per_kg * weight_used
            steps.append(
                CalcStep(
                    "Dose", f"{per_kg} × {weight_used} ({basis.value} weight) = {_fmt(raw_dose.value)} mg"
                )
            )
            lo, hi = spec.min_mg_per_kg.value, spec.max_mg_per_kg.value
            if lo is not None:
                minimum = lo * weight_used
            if hi is not None:
                maximum = hi * weight_used
                steps.append(CalcStep("Maximum", f"{hi} × {weight_used} = {maximum}"))
            top = spec.ceiling_mg_per_kg.value
            if top is not None:
                ceiling = top * weight_used
                steps.append(CalcStep("Hard ceiling", f"{top} × {weight_used} = {ceiling}"))
        if spec.max_mg.value is not None:
            maximum = spec.max_mg.value if maximum is None else min(maximum, spec.max_mg.value, key=_val)
        if spec.ceiling_mg.value is not None:
            cap = spec.ceiling_mg.value
            ceiling = cap if ceiling is None else min(ceiling, cap, key=_val)
    else:  # fixed mg
        raw_dose = fixed_dose if fixed_dose is not None else spec.default_mg.value
        if raw_dose is None:
            refusals.append("Dose (mg) is required: the protocol has no default fixed dose.")
        else:
            steps.append(CalcStep("Dose", f"fixed {raw_dose}"))
            allowed = spec.allowed_mg
            below = spec.min_mg.value is not None and raw_dose < spec.min_mg.value
            if allowed and not below and raw_dose not in allowed and raw_dose <= max(allowed, key=_val):
                listed = ", ".join(str(a) for a in allowed)
                if (override_reason or "").strip():
                    warnings.append(
                        f"{raw_dose} is not one of the protocol doses ({listed}); ordered with override."
                    )
                else:
                    refusals.append(
                        f"Dose refused: {raw_dose} is not one of the protocol doses ({listed}); a prescriber "
                        "may order it only by entering a written override reason."
                    )
        maximum = spec.max_mg.value
        minimum = spec.min_mg.value
        ceiling = spec.ceiling_mg.value

    dose: Mg | None = None
    if raw_dose is not None:
        dose = dose_rounding.apply(raw_dose)
        if dose != raw_dose:
            steps.append(CalcStep("Dose rounding", f"{dose_rounding.describe('mg')}: {dose}"))

    above = False
    below_min = False
    reason = (override_reason or "").strip() or None
    low_reason = (low_dose_reason or "").strip() or None
    if dose is not None and not refusals:
        ceiling_refusal = check_ceiling(dose, ceiling)
        if ceiling_refusal:
            refusals.append(ceiling_refusal)
    if dose is not None and not refusals:
        mc = check_maximum(dose, maximum, reason)
        above = mc.above_maximum
        if mc.refusal:
            refusals.append(mc.refusal)
        elif mc.overridden:
            warnings.append(
                f"Above the protocol maximum of {maximum}; ordered with override: {reason}. A second "
                "prescriber must co-sign the order before dosing can start."
            )
    if dose is not None and not refusals and minimum is not None and dose < minimum:
        below_min = True
        if low_reason:
            warnings.append(f"Below the protocol minimum of {minimum}; ordered with reason: {low_reason}")
        else:
            refusals.append(
                f"Dose refused: {dose} is below the protocol minimum of {minimum}; a prescriber may order "
                "it only by entering a written reason for the low dose."
            )

    vol: VolumeResult | None = None
    rate: RateResult | None = None
    loz: UnitCombination | None = None
    dev: DevicePlan | None = None
    infusion_used: Minutes | None = None
    if dose is not None and not refusals:
        form = spec.form
        if form in ("vial_iv", "vial_im"):
            if vial_concentration is None:
                refusals.append("Vial concentration (mg/mL) is required to calculate the volume to draw up.")
            else:
                vol = volume_for_dose(dose, vial_concentration, volume_rounding)
                steps.extend(vol.steps)
        if form == "vial_iv" and vol is not None:
            minutes = infusion_time if infusion_time is not None else spec.infusion_minutes.value
            infusion_refusal = (
                "Infusion time (minutes) is required to calculate the pump rate."
                if minutes is None or minutes.value == 0
                else check_infusion_time(minutes, spec.infusion_minutes_min, spec.infusion_minutes_max)
            )
            if infusion_refusal:
                refusals.append(infusion_refusal)
            else:
                assert minutes is not None
                infusion_used = minutes
                rate = pump_rate(vol.volume, minutes, diluent_volume, rate_rounding)
                steps.extend(rate.steps)
        if form == "lozenge":
            strengths = list(stocked_strengths) if stocked_strengths else list(spec.unit_strengths)
            if not strengths:
                refusals.append("Stocked lozenge strengths are required to count lozenges.")
            else:
                loz = combine_strengths(dose, strengths)
                if loz is None:
                    refusals.append(
                        f"Dose refused: {dose} cannot be made exactly from the stocked lozenge strengths "
                        f"({', '.join(str(s) for s in strengths)}); choose a dose they can make."
                    )
                else:
                    steps.append(CalcStep("Lozenges", f"{loz.describe('lozenge')} = {loz.total}"))
        if form == "nasal_device":
            strength = spec.unit_strengths[0] if spec.unit_strengths else None
            spacing = spec.device_spacing_minutes.value
            if strength is None or spacing is None:
                refusals.append("The protocol must define the device strength and spacing.")
            else:
                dev = device_plan(dose, strength, spacing)
                if dev is None:
                    refusals.append(f"Dose refused: {dose} is not a whole number of {strength} devices.")
                else:
                    steps.append(
                        CalcStep(
                            "Devices",
                            f"{dose} ÷ {strength} = {dev.devices} devices, {spacing} apart",
                        )
                    )

    return DoseCalculation(
        protocol_id=protocol.id,
        protocol_version=protocol.version,
        route=protocol.route,
        dose=dose,
        raw_dose=raw_dose,
        mg_per_kg=per_kg,
        weight_basis=basis,
        weight_used=weight_used,
        maximum=maximum,
        above_maximum=above,
        override_reason=reason if above else None,
        ceiling=ceiling,
        minimum=minimum,
        below_minimum=below_min,
        low_dose_reason=low_reason if below_min else None,
        infusion_minutes=infusion_used,
        volume=vol,
        rate=rate,
        lozenges=loz,
        devices=dev,
        bmi=body_mass_index,
        steps=tuple(steps),
        warnings=tuple(warnings),
        refusals=tuple(refusals),
    )


def _val(q: Quantity) -> Decimal:
    return q.value
