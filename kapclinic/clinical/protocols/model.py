"""Typed values of the protocol library (pure, no Django): what a loaded protocol is.

The data files in ``data/`` are declared and validated in ``schema.py`` and mapped onto these frozen
dataclasses; ``loader.py`` holds the library (lookup, inheritance of ceilings, clinic settings).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Generic, Literal, TypeVar

from kapclinic.clinical.dosing import Mg, MgPerKg, Minutes, WeightBasis
from kapclinic.clinical.vitals import AlertThresholds, Checkpoint, Vital

T = TypeVar("T")

Route = Literal["IV", "IM", "SL", "IN"]
DoseBasis = Literal["mg_per_kg", "fixed_mg"]
DoseForm = Literal["vial_iv", "vial_im", "lozenge", "nasal_device"]


ABSENT_NOTE = "absent from this protocol version"


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
        return self.ceiling_mg.note == ABSENT_NOTE or self.ceiling_mg_per_kg.note == ABSENT_NOTE


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
