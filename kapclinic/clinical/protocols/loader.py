"""Typed loader for the protocol library (versioned JSON data beside this file; pure, no Django).

Each ``data/<id>.json`` file describes one protocol: route, dose basis and range, maximum, session
pattern, fasting, minimum observation, vitals schedule, monitoring thresholds and measurement schedule.
Every number carries a ``source`` citation into docs/clinical-reference.md.  Where the
reference gives no number the field is ``{"value": null, "clinic_setting": true, "note": ...}``: a
*clinic setting with no default*.  Code that needs such a value refuses with a sentence until the clinic
sets it (see :func:`apply_clinic_settings`).

The loader is strict: unknown keys, wrong units, missing citations and malformed numbers raise
:class:`ProtocolDataError` naming the file and the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, cast

from kapclinic.clinical.dosing import Mg, MgPerKg, Minutes, Quantity, QuantityError, WeightBasis
from kapclinic.clinical.vitals import AlertThresholds, Checkpoint, Threshold, Vital

DATA_DIR = Path(__file__).parent / "data"
SCHEMA = "kapclinic.protocol/1"

T = TypeVar("T")
QT = TypeVar("QT", bound=Quantity)

Route = Literal["IV", "IM", "SL", "IN"]
DoseBasis = Literal["mg_per_kg", "fixed_mg"]
DoseForm = Literal["vial_iv", "vial_im", "lozenge", "nasal_device"]


_ABSENT = "absent from this protocol version"


class ProtocolDataError(ValueError):
    """The protocol data file is malformed."""


class UnknownProtocol(LookupError):
    pass


class ClinicSettingMissing(LookupError):
    """A value the reference does not give has not been set by the clinic."""


@dataclass(frozen=True)
class Setting(Generic[T]):
    """A value with its citation; ``value`` None + ``clinic_setting`` = the clinic must set it."""

    value: T | None
    source: str | None
    note: str = ""
    clinic_setting: bool = False
    unconfirmed: bool = False
    not_applicable: bool = False

    @property
    def is_set(self) -> bool:
        return self.value is not None

    def require(self, label: str) -> T:
        if self.value is None:
            raise ClinicSettingMissing(
                f"{label} is a clinic setting with no default in the clinical reference; the clinic must "
                "set it before this protocol can be used for that step."
            )
        return self.value


@dataclass(frozen=True)
class DoseSpec:
    basis: DoseBasis
    form: DoseForm
    weight_basis: Setting[WeightBasis]
    default_mg_per_kg: Setting[MgPerKg]
    min_mg_per_kg: Setting[MgPerKg]
    max_mg_per_kg: Setting[MgPerKg]
    default_mg: Setting[Mg]
    min_mg: Setting[Mg]
    max_mg: Setting[Mg]
    allowed_mg: tuple[Mg, ...]
    allowed_mg_source: str | None
    unit_strengths: tuple[Mg, ...]
    unit_strengths_source: str | None
    device_spacing_minutes: Setting[Minutes]
    infusion_minutes: Setting[Minutes]
    infusion_minutes_min: Setting[Minutes]
    infusion_minutes_max: Setting[Minutes]
    double_check_required: bool
    notes: tuple[str, ...]
    #: The hard ceiling no override passes (esketamine: the label maximum per session; racemic ketamine:
    #: a per-route ceiling the medical director sets).  A protocol version written before ceilings
    #: existed inherits the ceiling of the newest version of the same protocol (see all_protocols).
    ceiling_mg: Setting[Mg] = Setting(None, None, not_applicable=True)
    ceiling_mg_per_kg: Setting[MgPerKg] = Setting(None, None, not_applicable=True)
    ceiling_inherited: bool = False

    @property
    def ceiling_absent(self) -> bool:
        return self.ceiling_mg.note == _ABSENT or self.ceiling_mg_per_kg.note == _ABSENT


@dataclass(frozen=True)
class Phase:
    name: str
    weeks_from: int | None
    weeks_to: int | None
    frequency: str
    sessions_per_week: tuple[Decimal, ...]
    dose: str
    source: str


@dataclass(frozen=True)
class SessionPattern:
    count: Setting[int]
    phases: tuple[Phase, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Fasting:
    food_minutes: Setting[Minutes]
    liquids_minutes: Setting[Minutes]
    instructions: tuple[tuple[str, str], ...]  # (text, source)


FINAL_SET_UNSET: Setting[Minutes] = Setting(
    None,
    None,
    "The reference asks for vital signs in an acceptable range before the session ends ([S6a] ref §2.7) "
    "but gives no interval; the medical director sets it.",
    clinic_setting=True,
)


@dataclass(frozen=True)
class Observation:
    minimum_minutes: Setting[Minutes]
    until_resolved: tuple[str, ...]
    until_resolved_source: str | None
    discharge_criteria: tuple[tuple[str, str], ...]  # (text, source)
    # How recent the last full set of vitals and ratings must be at discharge. The reference names the
    # check ("vital signs in acceptable range before the session ends", [S6a] ref §2.7) but gives no
    # interval, so it is always a clinic setting the medical director sets (never a file default).
    final_set_within_minutes: Setting[Minutes] = field(default_factory=lambda: FINAL_SET_UNSET)


@dataclass(frozen=True)
class VitalsSchedule:
    checkpoints: tuple[Checkpoint, ...]
    interval_minutes: Setting[Minutes]
    measures: tuple[Vital, ...]
    pulse_oximetry_required: bool
    pulse_oximetry_source: str | None


@dataclass(frozen=True)
class Measurement:
    instrument: str
    when: str
    source: str


@dataclass(frozen=True)
class Protocol:
    id: str
    version: str
    title: str
    product: str
    route: Route
    indication: str
    regulatory_note: str
    sources: tuple[str, ...]
    dose: DoseSpec
    sessions: SessionPattern
    fasting: Fasting
    observation: Observation
    vitals_schedule: VitalsSchedule
    thresholds: AlertThresholds
    measurement_schedule: tuple[Measurement, ...]
    gate_items: tuple[str, ...]
    rems_monitoring_form: bool
    notes: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"

    def missing_clinic_settings(self) -> tuple[str, ...]:
        """Dotted names of the settings the clinic still has to fill in."""
        out: list[str] = []
        for group_name in ("dose", "sessions", "fasting", "observation", "vitals_schedule"):
            group = getattr(self, group_name)
            for f in fields(group):
                v = getattr(group, f.name)
                if isinstance(v, Setting) and v.clinic_setting and v.value is None:
                    out.append(f"{group_name}.{f.name}")
        out.extend(f"thresholds.{n}" for n, t in self.thresholds.items() if t.value is None)
        return tuple(out)

    def required_values(self) -> tuple[str, ...]:
        """Dotted names of the values a protocol needs before anyone can be planned, booked or dosed on
        it: the dose range and maximum for its basis, the hard ceiling, fasting, the observation minimum,
        how recent the final full set must be at discharge, the vitals interval and every alert
        threshold (docs/clinical-reference-dosing.md §4)."""
        dose: tuple[str, ...]
        if self.dose.basis == "mg_per_kg":
            dose = ("dose.weight_basis", "dose.min_mg_per_kg", "dose.max_mg_per_kg", "dose.ceiling_mg_per_kg")
        else:
            dose = ("dose.min_mg", "dose.max_mg", "dose.ceiling_mg")
        if self.dose.form == "vial_iv":
            dose += ("dose.infusion_minutes_min", "dose.infusion_minutes_max")
        keys = (
            *dose,
            "fasting.food_minutes",
            "fasting.liquids_minutes",
            "observation.minimum_minutes",
            "observation.final_set_within_minutes",
            "vitals_schedule.interval_minutes",
        )
        return keys + tuple(f"thresholds.{n}" for n, _t in self.thresholds.items())

    def usability_gaps(self) -> tuple[str, ...]:
        """The :meth:`required_values` that have no value (cited default or clinic setting): while any
        remain, the protocol cannot be used in a plan, a booking, the pre-dose checks or a dose order."""
        out: list[str] = []
        for key in self.required_values():
            group_name, name = key.split(".")
            if group_name == "thresholds":
                if getattr(self.thresholds, name).value is None:
                    out.append(key)
                continue
            setting = getattr(getattr(self, group_name), name)
            if setting.value is None:
                out.append(key)
        return tuple(out)

    @property
    def usable(self) -> bool:
        return not self.usability_gaps()


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------


class _Ctx:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, where: str, msg: str) -> ProtocolDataError:
        return ProtocolDataError(f"{self.path}: {where}: {msg}")

    def obj(
        self, data: object, where: str, allowed: set[str], required: set[str] | None = None
    ) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(where, "must be an object")
        unknown = set(data) - allowed
        if unknown:
            raise self.fail(where, f"unknown keys {sorted(unknown)}")
        missing = (required if required is not None else allowed) - set(data)
        if missing:
            raise self.fail(where, f"missing keys {sorted(missing)}")
        return cast(dict[str, Any], data)

    def text(self, data: object, where: str) -> str:
        if not isinstance(data, str) or not data.strip():
            raise self.fail(where, "must be a non-empty string")
        return data

    def texts(self, data: object, where: str) -> tuple[str, ...]:
        if not isinstance(data, list):
            raise self.fail(where, "must be a list of strings")
        return tuple(self.text(x, f"{where}[{i}]") for i, x in enumerate(data))

    def cited_texts(self, data: object, where: str) -> tuple[tuple[str, str], ...]:
        if not isinstance(data, list):
            raise self.fail(where, "must be a list")
        out = []
        for i, item in enumerate(data):
            o = self.obj(item, f"{where}[{i}]", {"text", "source"})
            out.append(
                (self.text(o["text"], f"{where}[{i}].text"), self.text(o["source"], f"{where}[{i}].source"))
            )
        return tuple(out)

    def decimal(self, data: object, where: str) -> Decimal:
        if not isinstance(data, str):
            raise self.fail(where, 'numbers are written as strings (e.g. "0.5") to keep them exact')
        try:
            return Decimal(data)
        except InvalidOperation:
            raise self.fail(where, f"{data!r} is not a number") from None

    def setting_raw(self, data: object, where: str, unit: str | None) -> tuple[object | None, dict[str, Any]]:
        o = self.obj(
            data,
            where,
            {"value", "unit", "source", "note", "clinic_setting", "unconfirmed", "not_applicable"},
            {"value"},
        )
        if o.get("not_applicable") is True:
            if o["value"] is not None or o.get("clinic_setting"):
                raise self.fail(where, "a not-applicable field has a null value and is not a clinic setting")
            return None, o
        if unit is not None and o.get("unit") != unit:
            raise self.fail(where, f"unit must be {unit!r} (got {o.get('unit')!r})")
        value = o["value"]
        if value is None:
            if o.get("clinic_setting") is not True:
                raise self.fail(where, 'a null value must be marked "clinic_setting": true')
            if not o.get("note"):
                raise self.fail(where, "a clinic setting must carry a note saying what the reference says")
        else:
            if not o.get("source"):
                raise self.fail(where, "every value needs a source citation")
            if o.get("clinic_setting"):
                raise self.fail(where, "a cited default is not a clinic setting without default")
        return value, o

    def _meta(self, o: dict[str, Any]) -> dict[str, Any]:
        return {
            "source": o.get("source"),
            "note": o.get("note", ""),
            "clinic_setting": bool(o.get("clinic_setting", False)),
            "unconfirmed": bool(o.get("unconfirmed", False)),
            "not_applicable": bool(o.get("not_applicable", False)),
        }

    def qty(self, data: object, where: str, cls: type[QT]) -> Setting[QT]:
        value, o = self.setting_raw(data, where, cls.unit)
        if value is None:
            return Setting(None, **self._meta(o))
        try:
            q = cls(self.decimal(value, f"{where}.value"))
        except QuantityError as e:
            raise self.fail(where, str(e)) from None
        return Setting(q, **self._meta(o))

    def integer(self, data: object, where: str, unit: str | None = None) -> Setting[int]:
        value, o = self.setting_raw(data, where, unit)
        if value is None:
            return Setting(None, **self._meta(o))
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, "value must be a whole number")
        return Setting(value, **self._meta(o))

    def mg_list(self, data: object, where: str) -> tuple[Mg, ...]:
        if not isinstance(data, list):
            raise self.fail(where, "must be a list of mg strings")
        return tuple(Mg(self.decimal(x, f"{where}[{i}]")) for i, x in enumerate(data))


_ROUTES = {"IV", "IM", "SL", "IN"}
_BASES = {"mg_per_kg", "fixed_mg"}
_FORMS = {"vial_iv", "vial_im", "lozenge", "nasal_device"}
GATE_ITEMS = (
    "signed_plan",
    "consent_current",
    "eligibility_current",
    "phq9_done",
    "fasting",
    "escort_named",
    "medication_changes_reviewed",
    "pregnancy_status",
    "intention_noted",
    "baseline_vitals",
    "rems_enrolled",
    "nasal_steroid_timing",
)


def parse_protocol(data: object, path: str = "<data>") -> Protocol:
    c = _Ctx(path)
    top = c.obj(
        data,
        "protocol",
        {
            "schema", "id", "version", "title", "product", "route", "indication", "regulatory_note",
            "sources", "dose", "sessions", "fasting", "observation", "vitals_schedule",
            "monitoring_thresholds", "measurement_schedule", "gate_items", "rems_monitoring_form", "notes",
        },
    )  # fmt: skip
    if top["schema"] != SCHEMA:
        raise c.fail("schema", f"must be {SCHEMA!r}")
    version = c.text(top["version"], "version")
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise c.fail("version", "must look like 1.0.0")
    route = top["route"]
    if route not in _ROUTES:
        raise c.fail("route", f"must be one of {sorted(_ROUTES)}")

    d = c.obj(
        top["dose"],
        "dose",
        {
            "basis", "form", "weight_basis", "default_mg_per_kg", "min_mg_per_kg", "max_mg_per_kg",
            "default_mg", "min_mg", "max_mg", "allowed_mg", "allowed_mg_source", "unit_strengths",
            "unit_strengths_source", "device_spacing_minutes", "infusion_minutes", "infusion_minutes_min",
            "infusion_minutes_max", "double_check_required", "notes", "ceiling_mg", "ceiling_mg_per_kg",
        },
        {
            "basis", "form", "weight_basis", "default_mg_per_kg", "min_mg_per_kg", "max_mg_per_kg",
            "default_mg", "min_mg", "max_mg", "allowed_mg", "allowed_mg_source", "unit_strengths",
            "unit_strengths_source", "device_spacing_minutes", "infusion_minutes", "infusion_minutes_min",
            "infusion_minutes_max", "double_check_required", "notes",
        },
    )  # fmt: skip
    if d["basis"] not in _BASES:
        raise c.fail("dose.basis", f"must be one of {sorted(_BASES)}")
    if d["form"] not in _FORMS:
        raise c.fail("dose.form", f"must be one of {sorted(_FORMS)}")
    wb_value, wb_o = c.setting_raw(d["weight_basis"], "dose.weight_basis", None)
    if wb_value is not None and wb_value not in ("actual", "ideal"):
        raise c.fail("dose.weight_basis", 'value must be "actual" or "ideal"')
    weight_basis: Setting[WeightBasis] = Setting(
        WeightBasis(wb_value) if isinstance(wb_value, str) else None, **c._meta(wb_o)
    )
    if not isinstance(d["double_check_required"], bool):
        raise c.fail("dose.double_check_required", "must be true or false")
    dose = DoseSpec(
        basis=d["basis"],
        form=d["form"],
        weight_basis=weight_basis,
        default_mg_per_kg=c.qty(d["default_mg_per_kg"], "dose.default_mg_per_kg", MgPerKg),
        min_mg_per_kg=c.qty(d["min_mg_per_kg"], "dose.min_mg_per_kg", MgPerKg),
        max_mg_per_kg=c.qty(d["max_mg_per_kg"], "dose.max_mg_per_kg", MgPerKg),
        default_mg=c.qty(d["default_mg"], "dose.default_mg", Mg),
        min_mg=c.qty(d["min_mg"], "dose.min_mg", Mg),
        max_mg=c.qty(d["max_mg"], "dose.max_mg", Mg),
        allowed_mg=c.mg_list(d["allowed_mg"], "dose.allowed_mg"),
        allowed_mg_source=d["allowed_mg_source"],
        unit_strengths=c.mg_list(d["unit_strengths"], "dose.unit_strengths"),
        unit_strengths_source=d["unit_strengths_source"],
        device_spacing_minutes=c.qty(d["device_spacing_minutes"], "dose.device_spacing_minutes", Minutes),
        infusion_minutes=c.qty(d["infusion_minutes"], "dose.infusion_minutes", Minutes),
        infusion_minutes_min=c.qty(d["infusion_minutes_min"], "dose.infusion_minutes_min", Minutes),
        infusion_minutes_max=c.qty(d["infusion_minutes_max"], "dose.infusion_minutes_max", Minutes),
        double_check_required=d["double_check_required"],
        notes=c.texts(d["notes"], "dose.notes"),
        ceiling_mg=(
            c.qty(d["ceiling_mg"], "dose.ceiling_mg", Mg)
            if "ceiling_mg" in d
            else Setting(None, None, _ABSENT, clinic_setting=True)
        ),
        ceiling_mg_per_kg=(
            c.qty(d["ceiling_mg_per_kg"], "dose.ceiling_mg_per_kg", MgPerKg)
            if "ceiling_mg_per_kg" in d
            else Setting(None, None, _ABSENT, clinic_setting=True)
        ),
    )
    if (dose.allowed_mg and not dose.allowed_mg_source) or (
        dose.unit_strengths and not dose.unit_strengths_source
    ):
        raise c.fail("dose", "allowed_mg and unit_strengths need a source citation")
    if dose.basis == "mg_per_kg" and dose.weight_basis.value is None and not dose.weight_basis.clinic_setting:
        raise c.fail("dose.weight_basis", "required for mg/kg dosing")
    if dose.form == "nasal_device" and (
        len(dose.unit_strengths) != 1 or not dose.device_spacing_minutes.is_set
    ):
        raise c.fail("dose", "a nasal device protocol needs one device strength and the device spacing")

    s = c.obj(top["sessions"], "sessions", {"count", "phases", "notes"})
    phases = []
    for i, p in enumerate(s["phases"]):
        w = f"sessions.phases[{i}]"
        po = c.obj(
            p, w, {"name", "weeks_from", "weeks_to", "frequency", "sessions_per_week", "dose", "source"}
        )
        for k in ("weeks_from", "weeks_to"):
            if po[k] is not None and (isinstance(po[k], bool) or not isinstance(po[k], int)):
                raise c.fail(f"{w}.{k}", "must be a whole number or null")
        if not isinstance(po["sessions_per_week"], list):
            raise c.fail(f"{w}.sessions_per_week", "must be a list of number strings")
        phases.append(
            Phase(
                name=c.text(po["name"], f"{w}.name"),
                weeks_from=po["weeks_from"],
                weeks_to=po["weeks_to"],
                frequency=c.text(po["frequency"], f"{w}.frequency"),
                sessions_per_week=tuple(
                    c.decimal(x, f"{w}.sessions_per_week[{j}]") for j, x in enumerate(po["sessions_per_week"])
                ),
                dose=c.text(po["dose"], f"{w}.dose"),
                source=c.text(po["source"], f"{w}.source"),
            )
        )
    sessions = SessionPattern(
        count=c.integer(s["count"], "sessions.count"),
        phases=tuple(phases),
        notes=c.texts(s["notes"], "sessions.notes"),
    )

    f = c.obj(top["fasting"], "fasting", {"food_minutes", "liquids_minutes", "instructions"})
    fasting = Fasting(
        food_minutes=c.qty(f["food_minutes"], "fasting.food_minutes", Minutes),
        liquids_minutes=c.qty(f["liquids_minutes"], "fasting.liquids_minutes", Minutes),
        instructions=c.cited_texts(f["instructions"], "fasting.instructions"),
    )

    o = c.obj(
        top["observation"],
        "observation",
        {"minimum_minutes", "until_resolved", "until_resolved_source", "discharge_criteria"},
    )
    observation = Observation(
        minimum_minutes=c.qty(o["minimum_minutes"], "observation.minimum_minutes", Minutes),
        until_resolved=c.texts(o["until_resolved"], "observation.until_resolved"),
        until_resolved_source=o["until_resolved_source"],
        discharge_criteria=c.cited_texts(o["discharge_criteria"], "observation.discharge_criteria"),
    )

    v = c.obj(
        top["vitals_schedule"],
        "vitals_schedule",
        {"checkpoints", "interval_minutes", "measures", "pulse_oximetry_required", "pulse_oximetry_source"},
    )
    cps = []
    for i, cp in enumerate(v["checkpoints"]):
        w = f"vitals_schedule.checkpoints[{i}]"
        cpo = c.obj(cp, w, {"label", "kind", "offset_minutes", "source"})
        if cpo["kind"] not in ("pre_dose", "offset", "pre_discharge"):
            raise c.fail(f"{w}.kind", "must be pre_dose, offset or pre_discharge")
        if (cpo["kind"] == "offset") != isinstance(cpo["offset_minutes"], int):
            raise c.fail(f"{w}.offset_minutes", "needed for (and only for) offset checkpoints")
        cps.append(
            Checkpoint(
                c.text(cpo["label"], f"{w}.label"),
                cpo["kind"],
                cpo["offset_minutes"],
                c.text(cpo["source"], f"{w}.source"),
            )
        )
    try:
        measures = tuple(Vital(x) for x in v["measures"])
    except ValueError:
        raise c.fail("vitals_schedule.measures", f"must be among {[x.value for x in Vital]}") from None
    vitals_schedule = VitalsSchedule(
        checkpoints=tuple(cps),
        interval_minutes=c.qty(v["interval_minutes"], "vitals_schedule.interval_minutes", Minutes),
        measures=measures,
        pulse_oximetry_required=bool(v["pulse_oximetry_required"]),
        pulse_oximetry_source=v["pulse_oximetry_source"],
    )

    names = {fl.name for fl in fields(AlertThresholds)}
    th_data = c.obj(top["monitoring_thresholds"], "monitoring_thresholds", names, set())
    changes: dict[str, Threshold] = {}
    for name, raw in th_data.items():
        unit = {"spo2_below": "%", "moaas_at_or_below": "score"}.get(
            name, "/min" if name.startswith(("hr", "rr")) else "mm[Hg]"
        )
        st = c.integer(raw, f"monitoring_thresholds.{name}", unit)
        changes[name] = Threshold(
            st.value, st.source or "clinic setting (the reference gives no number)", st.note
        )
    thresholds = replace(AlertThresholds(), **changes)

    ms = []
    for i, m in enumerate(top["measurement_schedule"]):
        w = f"measurement_schedule[{i}]"
        mo = c.obj(m, w, {"instrument", "when", "source"})
        ms.append(Measurement(c.text(mo["instrument"], w), c.text(mo["when"], w), c.text(mo["source"], w)))

    gate = c.texts(top["gate_items"], "gate_items")
    bad = set(gate) - set(GATE_ITEMS)
    if bad:
        raise c.fail("gate_items", f"unknown items {sorted(bad)}")

    return Protocol(
        id=c.text(top["id"], "id"),
        version=version,
        title=c.text(top["title"], "title"),
        product=c.text(top["product"], "product"),
        route=route,
        indication=c.text(top["indication"], "indication"),
        regulatory_note=c.text(top["regulatory_note"], "regulatory_note"),
        sources=c.texts(top["sources"], "sources"),
        dose=dose,
        sessions=sessions,
        fasting=fasting,
        observation=observation,
        vitals_schedule=vitals_schedule,
        thresholds=thresholds,
        measurement_schedule=tuple(ms),
        gate_items=gate,
        rems_monitoring_form=bool(top["rems_monitoring_form"]),
        notes=c.texts(top["notes"], "notes"),
    )


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
