"""Billing codes as versioned data (data/codes.v*.json; facts and sources in docs/billing.md section 1)
and the unit rules: units from documented minutes for time-based codes, code choice by dose for the
esketamine visit codes.

Rules are only what a source gives; where it gives none ("each hour" for 0820T-0822T) `units_for`
answers None and the biller enters the units.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
CURRENT_VERSION = "1.0.0"

PSYCHOTHERAPY = ("90832", "90834", "90837")
PSYCHOTHERAPY_ADD_ON = ("90833", "90836", "90838")


@dataclass(frozen=True)
class Rule:
    # per_visit | per_mg | time_band | infusion_initial | infusion_additional_hour | per_hour_unconfirmed
    kind: str
    min_minutes: int | None = None
    max_minutes: int | None = None
    over_minutes: int | None = None
    dose_mg_max: Decimal | None = None
    dose_mg_over: Decimal | None = None
    mg_per_unit: Decimal | None = None

    @property
    def time_based(self) -> bool:
        timed = {"time_band", "infusion_initial", "infusion_additional_hour", "per_hour_unconfirmed"}
        return self.kind in timed


@dataclass(frozen=True)
class BillingCode:
    code: str
    system: str  # CPT | HCPCS
    descriptor: str | None  # as the source gives it; None when no source gives it
    descriptor_status: str
    rule: Rule
    sources: tuple[str, ...]
    add_on: bool = False
    version: str = CURRENT_VERSION

    @property
    def label(self) -> str:
        return self.descriptor or f"{self.code} (descriptor not reproduced: {self.descriptor_status})"


@dataclass(frozen=True)
class CodeSet:
    version: str
    codes: dict[str, BillingCode]

    def get(self, code: str) -> BillingCode | None:
        return self.codes.get(code.strip().upper())


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _rule(raw: dict[str, Any]) -> Rule:
    return Rule(
        kind=str(raw["kind"]),
        min_minutes=raw.get("min_minutes"),
        max_minutes=raw.get("max_minutes"),
        over_minutes=raw.get("over_minutes", raw.get("beyond_full_hour_over_minutes")),
        dose_mg_max=_dec(raw.get("dose_mg_max")),
        dose_mg_over=_dec(raw.get("dose_mg_over")),
        mg_per_unit=_dec(raw.get("mg_per_unit")),
    )


@cache
def load(version: str = CURRENT_VERSION) -> CodeSet:
    raw = json.loads((DATA / f"codes.v{version}.json").read_text(encoding="utf-8"))
    codes: dict[str, BillingCode] = {}
    for item in raw["codes"]:
        code = BillingCode(
            code=item["code"],
            system=item["system"],
            descriptor=item.get("descriptor"),
            descriptor_status=item["descriptor_status"],
            rule=_rule(item["rule"]),
            sources=tuple(item["sources"]),
            add_on=bool(item.get("add_on", False)),
            version=raw["version"],
        )
        if code.code in codes:
            raise ValueError(f"duplicate code {code.code}")
        codes[code.code] = code
    return CodeSet(version=raw["version"], codes=codes)


def psychotherapy_code(minutes: int, *, with_em: bool = False) -> str | None:
    """90832/90834/90837 by minutes with the patient (16-37, 38-52, >=53; docs/billing.md [C9]);
    the add-on codes 90833/90836/90838 with a same-day E/M. None under 16 minutes."""
    codes = PSYCHOTHERAPY_ADD_ON if with_em else PSYCHOTHERAPY
    cs = load()
    for code in codes:
        r = cs.codes[code].rule
        assert r.min_minutes is not None
        if minutes >= r.min_minutes and (r.max_minutes is None or minutes <= r.max_minutes):
            return code
    return None


def esketamine_visit_code(dose_mg: Decimal) -> str:
    """G2082 up to 56 mg, G2083 above (docs/billing.md [C1][C3])."""
    cs = load()
    limit = cs.codes["G2082"].rule.dose_mg_max
    assert limit is not None
    if dose_mg <= 0:
        raise ValueError("An esketamine visit needs a dose above zero.")
    return "G2082" if dose_mg <= limit else "G2083"


def infusion_lines(minutes: int) -> list[tuple[str, int]]:
    """IV infusion codes for `minutes` of infusion: 96365 needs more than 15 minutes (docs/billing.md
    [C20]); +96366 for each additional hour, where an interval more than 30 minutes beyond the last full
    hour counts ([C21]). 15 minutes or less: no infusion code (96374 is outside this data set)."""
    cs = load()
    initial_over = cs.codes["96365"].rule.over_minutes
    beyond = cs.codes["96366"].rule.over_minutes
    assert initial_over is not None and beyond is not None
    if minutes <= initial_over:
        return []
    lines: list[tuple[str, int]] = [("96365", 1)]
    after_first = minutes - 60
    if after_first <= 0:
        return lines
    full, rest = divmod(after_first, 60)
    extra = full + (1 if rest > beyond else 0)
    if extra:
        lines.append(("96366", extra))
    return lines


def units_for(code: BillingCode, *, minutes: int | None = None, dose_mg: Decimal | None = None) -> int | None:
    """Units for one line of `code`; None when the sources give no counting rule (the biller decides)
    or the documented facts needed are missing."""
    r = code.rule
    if r.kind == "per_visit":
        return 1
    if r.kind == "per_mg":
        if dose_mg is None or r.mg_per_unit is None:
            return None
        whole = dose_mg / r.mg_per_unit
        return int(whole) if whole == whole.to_integral_value() else None
    if r.kind == "time_band":
        if minutes is None or r.min_minutes is None or minutes < r.min_minutes:
            return None
        return 1 if r.max_minutes is None or minutes <= r.max_minutes else None
    if r.kind in {"infusion_initial", "infusion_additional_hour"}:
        if minutes is None:
            return None
        found = dict(infusion_lines(minutes))
        return found.get(code.code)
    return None
