"""The protocol library (pure, no Django): versioned JSON data beside this file, loaded and looked up.

Each ``data/<id>.v<version>.json`` file describes one protocol: route, dose basis and range, maximum,
session pattern, fasting, minimum observation, vitals schedule, monitoring thresholds and measurement
schedule.  The file format is declared in ``schema.py`` (pydantic models; a malformed file is refused
with the field path of each problem) and the typed values it becomes are in ``model.py``.  This module
loads the library, lets older versions inherit the newest hard ceiling, applies a clinic's settings
(:func:`apply_clinic_settings`) and describes those settings for the clinic-settings page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

from kapclinic.clinical.dosing import Mg, MgPerKg, Minutes, Quantity, QuantityError
from kapclinic.clinical.protocols.model import (
    Protocol,
    ProtocolDataError,
    Setting,
    UnknownProtocol,
)
from kapclinic.clinical.protocols.schema import parse_protocol

DATA_DIR = Path(__file__).parent / "data"


def load_protocol(path: Path) -> Protocol:
    with path.open(encoding="utf-8") as fh:
        data = json.load(fh)
    return parse_protocol(data, path.name)


@cache
def all_protocols() -> tuple[Protocol, ...]:
    """Every protocol in the library, sorted by id then version."""
    protos = [load_protocol(p) for p in sorted(DATA_DIR.glob("*.json"))]
    seen: set[str] = set()
    for p in protos:
        if p.key in seen:
            raise ProtocolDataError(f"Duplicate protocol {p.key}.")
        seen.add(p.key)
    ordered = sorted(protos, key=lambda p: (p.id, tuple(int(x) for x in p.version.split("."))))
    latest = {p.id: p for p in ordered}
    return tuple(_inherit_ceiling(p, latest[p.id]) for p in ordered)


def _inherit_ceiling(protocol: Protocol, newest: Protocol) -> Protocol:
    """A version written before hard ceilings existed takes the newest version's ceiling, so a session
    recorded on it is held to the same limit no override passes."""
    if not protocol.dose.ceiling_absent:
        return protocol
    if newest.dose.ceiling_absent:
        raise ProtocolDataError(f"{newest.key}: the newest version of a protocol must state its ceiling.")
    dose = replace(
        protocol.dose,
        ceiling_mg=newest.dose.ceiling_mg,
        ceiling_mg_per_kg=newest.dose.ceiling_mg_per_kg,
        ceiling_inherited=True,
    )
    return replace(protocol, dose=dose)


def get_protocol(protocol_id: str, version: str | None = None) -> Protocol:
    """The protocol ``protocol_id`` at ``version`` (latest when None)."""
    matches = [
        p for p in all_protocols() if p.id == protocol_id and (version is None or p.version == version)
    ]
    if not matches:
        raise UnknownProtocol(
            f"No protocol {protocol_id!r}" + (f" at version {version}" if version else "") + "."
        )
    return matches[-1]


def protocol_choices() -> tuple[tuple[str, str], ...]:
    """(key, title) pairs for form choices, latest version of each protocol."""
    latest: dict[str, Protocol] = {}
    for p in all_protocols():
        latest[p.id] = p
    return tuple((p.key, f"{p.title} (v{p.version})") for p in latest.values())


_SETTABLE_QTY: dict[str, type[Quantity]] = {
    "dose.ceiling_mg": Mg,
    "dose.ceiling_mg_per_kg": MgPerKg,
    "dose.max_mg": Mg,
    "dose.min_mg": Mg,
    "dose.default_mg": Mg,
    "dose.max_mg_per_kg": MgPerKg,
    "dose.min_mg_per_kg": MgPerKg,
    "dose.default_mg_per_kg": MgPerKg,
    "dose.infusion_minutes": Minutes,
    "fasting.food_minutes": Minutes,
    "fasting.liquids_minutes": Minutes,
    "observation.minimum_minutes": Minutes,
    "observation.final_set_within_minutes": Minutes,
    "vitals_schedule.interval_minutes": Minutes,
}


def apply_clinic_settings(protocol: Protocol, settings: Mapping[str, str | int | None]) -> Protocol:
    """Return ``protocol`` with clinic values (``{"observation.minimum_minutes": "90"}``; thresholds as
    ``{"thresholds.hr_above": 120}``).  Each value is marked ``source="clinic setting"``."""
    result = protocol
    th_changes: dict[str, int | None] = {}
    for key, raw in settings.items():
        if key.startswith("thresholds."):
            if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int)):
                raise ProtocolDataError(f"{key} must be a whole number.")
            th_changes[key.removeprefix("thresholds.")] = raw
            continue
        if key == "sessions.count":
            if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int)):
                raise ProtocolDataError("sessions.count must be a whole number.")
            old_count = result.sessions.count
            new_count: Setting[int] = Setting(raw, "clinic setting", old_count.note, raw is None, False)
            result = replace(result, sessions=replace(result.sessions, count=new_count))
            continue
        cls = _SETTABLE_QTY.get(key)
        if cls is None:
            raise ProtocolDataError(f"{key} is not a clinic-settable protocol field.")
        group_name, field_name = key.split(".")
        group = getattr(result, group_name)
        old: Setting[Any] = getattr(group, field_name)
        value = None if raw is None else cls(Decimal(str(raw)))
        new = Setting(value, "clinic setting", old.note, value is None, False)
        result = replace(result, **{group_name: replace(group, **{field_name: new})})
    if th_changes:
        result = replace(result, thresholds=result.thresholds.with_values(**th_changes))
    return result


# --------------------------------------------------------------------------------------------------
# What a clinic may set, with the cited default (for the clinic-settings page)
# --------------------------------------------------------------------------------------------------

_FIELD_LABELS: dict[str, str] = {
    "dose.weight_basis": "Weight basis (actual or ideal)",
    "dose.infusion_minutes_min": "Shortest infusion",
    "dose.infusion_minutes_max": "Longest infusion",
    "dose.ceiling_mg": "Hard ceiling (no override passes)",
    "dose.ceiling_mg_per_kg": "Hard ceiling per kg (no override passes)",
    "dose.max_mg": "Maximum dose",
    "dose.min_mg": "Minimum dose",
    "dose.default_mg": "Usual dose",
    "dose.max_mg_per_kg": "Maximum dose per kg",
    "dose.min_mg_per_kg": "Minimum dose per kg",
    "dose.default_mg_per_kg": "Usual dose per kg",
    "dose.infusion_minutes": "Infusion time",
    "sessions.count": "Dosing sessions in the series",
    "fasting.food_minutes": "No food before dosing",
    "fasting.liquids_minutes": "No liquids before dosing",
    "observation.minimum_minutes": "Minimum observation after the end of administration",
    "observation.final_set_within_minutes": "Last full set of vitals and ratings before discharge, within",
    "vitals_schedule.interval_minutes": "Vitals every",
    "thresholds.predose_sbp_above": "Pre-dose systolic BP above",
    "thresholds.predose_dbp_above": "Pre-dose diastolic BP above",
    "thresholds.sbp_rise_at_least": "Systolic rise from baseline of at least",
    "thresholds.dbp_rise_at_least": "Diastolic rise from baseline of at least",
    "thresholds.spo2_below": "SpO2 below",
    "thresholds.sbp_above": "Systolic BP above (during the session)",
    "thresholds.dbp_above": "Diastolic BP above (during the session)",
    "thresholds.hr_above": "Heart rate above",
    "thresholds.hr_below": "Heart rate below",
    "thresholds.rr_above": "Respiratory rate above",
    "thresholds.rr_below": "Respiratory rate below",
    "thresholds.moaas_at_or_below": "MOAA/S at or below",
}

# Entry-error bounds (engineering, not clinical): a value outside them is a typing mistake.
_THRESHOLD_BOUNDS: dict[str, tuple[int, int]] = {
    "spo2_below": (50, 100),
    "moaas_at_or_below": (0, 5),
    "hr_above": (20, 250),
    "hr_below": (20, 250),
    "rr_above": (4, 60),
    "rr_below": (4, 60),
}
_DEFAULT_THRESHOLD_BOUNDS = (1, 300)


@dataclass(frozen=True)
class SettableField:
    """One value a clinic may set for a protocol, with what the library says about it."""

    key: str
    group: str  # "Dose", "Series", "Fasting", "Observation", "Vitals", "Alert thresholds"
    label: str
    unit: str
    default: str | None  # the cited value, None when the reference gives none
    source: str | None
    note: str
    # "lengthen_only": a label minimum a clinic may make longer, never shorter; "lower_only": a label
    # maximum a clinic may lower, never raise; "" no direction rule.
    direction: str = ""

    @property
    def required_by_protocol(self) -> bool:
        """The reference gives no value and the protocol needs one before the step can run."""
        return self.default is None


def _fmt_num(value: object) -> str:
    if isinstance(value, Quantity):
        return format(value.value.normalize(), "f")
    return str(value)


def field_label(key: str) -> str:
    """The settings page's label for a dotted protocol field (``observation.minimum_minutes``)."""
    return _FIELD_LABELS.get(key, key.split(".")[-1].replace("_", " ").capitalize())


def clinic_settable_fields(protocol: Protocol) -> tuple[SettableField, ...]:
    """Every clinic-settable field of ``protocol`` (not-applicable fields left out), in page order."""
    out: list[SettableField] = []
    groups = {"dose": "Dose", "fasting": "Fasting", "observation": "Observation", "vitals_schedule": "Vitals"}
    for key, cls in _SETTABLE_QTY.items():
        group_name, field_name = key.split(".")
        setting: Setting[Any] = getattr(getattr(protocol, group_name), field_name)
        if setting.not_applicable:
            continue
        direction = ""
        if key == "observation.minimum_minutes" and setting.value is not None:
            direction = "lengthen_only"
        elif (
            key in ("dose.max_mg", "dose.max_mg_per_kg", "dose.ceiling_mg", "dose.ceiling_mg_per_kg")
            and setting.value is not None
        ):
            direction = "lower_only"
        default = None if setting.value is None else _fmt_num(setting.value)
        out.append(
            SettableField(
                key, groups[group_name], _FIELD_LABELS[key], cls.unit, default, setting.source, setting.note,
                direction,
            )
        )  # fmt: skip
    count = protocol.sessions.count
    if not count.not_applicable:
        out.append(
            SettableField(
                "sessions.count", "Series", _FIELD_LABELS["sessions.count"], "sessions",
                None if count.value is None else str(count.value), count.source, count.note,
            )
        )  # fmt: skip
    for name, th in protocol.thresholds.items():
        unit = {"spo2_below": "%", "hr_above": "/min", "hr_below": "/min", "rr_above": "/min"}.get(name, "")
        unit = unit or ("/min" if name.startswith("rr") else "" if name.startswith("moaas") else "mmHg")
        out.append(
            SettableField(
                f"thresholds.{name}", "Alert thresholds", _FIELD_LABELS[f"thresholds.{name}"], unit,
                None if th.value is None else str(th.value),
                None if th.value is None else th.source, th.note,
            )
        )  # fmt: skip
    order = {"Dose": 0, "Series": 1, "Fasting": 2, "Observation": 3, "Vitals": 4, "Alert thresholds": 5}
    return tuple(sorted(out, key=lambda f: order[f.group]))


def validate_clinic_value(
    protocol: Protocol, field: SettableField, raw: str
) -> tuple[str | None, str | None]:
    """Check one value typed on the settings page. Returns (normalised value or None to clear, error
    sentence or None). The sentence names the field and the rule."""
    text = raw.strip()
    if not text:
        return None, None
    name = f"{field.label} ({field.key})"
    if field.key.startswith("thresholds.") or field.key == "sessions.count":
        try:
            number = int(text)
        except ValueError:
            return None, f"{name} must be a whole number; “{text}” is not."
        lo, hi = (
            (1, 100)
            if field.key == "sessions.count"
            else _THRESHOLD_BOUNDS.get(field.key.removeprefix("thresholds."), _DEFAULT_THRESHOLD_BOUNDS)
        )
        if not lo <= number <= hi:
            return None, f"{name} must be between {lo} and {hi} {field.unit}".rstrip() + "; re-enter it."
        return str(number), None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None, f"{name} must be a number; “{text}” is not."
    if not value.is_finite() or value <= 0:
        return None, f"{name} must be a number above 0."
    if field.default is not None and field.direction == "lengthen_only" and value < Decimal(field.default):
        return None, (
            f"{name} cannot be shorter than the {field.default} {field.unit} the protocol requires "
            f"({field.source}); a clinic may lengthen it, never shorten it."
        )
    if field.default is not None and field.direction == "lower_only" and value > Decimal(field.default):
        return None, (
            f"{name} cannot be above the protocol maximum of {field.default} {field.unit} ({field.source}); "
            "a clinic may lower it, never raise it."
        )
    try:
        apply_clinic_settings(protocol, {field.key: format(value.normalize(), "f")})
    except (ProtocolDataError, QuantityError) as exc:
        return None, f"{name}: {exc}"
    return format(value.normalize(), "f"), None


def _duration_text(minutes: Minutes) -> str:
    m = minutes.value
    if m >= 60 and m % 60 == 0:
        hours = int(m // 60)
        return f"{hours} hour" + ("s" if hours != 1 else "")
    return f"{format(m.normalize(), 'f')} minutes"


def preparation_lines(protocol: Protocol) -> tuple[str, ...]:
    """What the patient is told before a dosing session on ``protocol`` (with the clinic's settings
    applied): the fasting times it states and the route's own instructions, nothing from another route.
    No fasting line when the times are not set (the protocol is then not usable anyway)."""
    out: list[str] = []
    food, liquids = protocol.fasting.food_minutes.value, protocol.fasting.liquids_minutes.value
    if food is not None and liquids is not None:
        out.append(
            f"Do not eat for {_duration_text(food)} and do not drink anything for {_duration_text(liquids)} "
            "before your dosing session."
        )
    for text, _source in protocol.fasting.instructions:
        if text.startswith("Arrange transport home"):
            continue  # said for every route, in the patient's words, below
        out.append(text if text.endswith(".") else f"{text}.")
    out.append(
        "Arrange for someone to take you home. Do not drive or operate machinery until the next day, "
        "after a restful sleep."  # [S2][S4] ref §2.7
    )
    return tuple(out)
