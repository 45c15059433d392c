"""The protocol file format, declared (pure, no Django): what a ``data/<id>.v<version>.json`` may contain.

Each model below is one object of the file; pydantic validates the whole document against them (unknown
keys refused, numbers as exact strings, every field typed) and :func:`parse_protocol` maps it onto the
frozen dataclasses of ``model.py``.  A problem is reported with its field path, e.g.
``ketamine-iv-racemic.v1.1.0.json: dose.max_mg: every value needs a source citation``.

Every number carries a ``source`` citation into docs/clinical-reference.md.  Where the reference gives
no number the field is ``{"value": null, "clinic_setting": true, "note": ...}``: a clinic setting with no
default, which code refuses to use until the clinic sets it.  A field that does not apply to the route
is ``{"value": null, "not_applicable": true}``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Generic, Literal, Self, TypeVar, get_args

from pydantic import (
    AfterValidator,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from kapclinic.clinical.datafile import DataModel, DecimalText, Text, describe, quantity_from_text
from kapclinic.clinical.dosing import Mg, MgPerKg, Minutes, WeightBasis
from kapclinic.clinical.protocols.model import (
    ABSENT_NOTE,
    GATE_ITEMS,
    DoseBasis,
    DoseForm,
    DoseSpec,
    Fasting,
    Measurement,
    Observation,
    Phase,
    Protocol,
    ProtocolDataError,
    Route,
    SessionPattern,
    Setting,
    VitalsSchedule,
)
from kapclinic.clinical.vitals import AlertThresholds, Checkpoint, Threshold, Vital

SchemaId = Literal["kapclinic.protocol/1"]
SCHEMA: str = get_args(SchemaId)[0]

V = TypeVar("V")

MgText = Annotated[Mg, PlainValidator(quantity_from_text(Mg))]
MgPerKgText = Annotated[MgPerKg, PlainValidator(quantity_from_text(MgPerKg))]
MinutesText = Annotated[Minutes, PlainValidator(quantity_from_text(Minutes))]


def _semver(value: str) -> str:
    parts = value.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError("must look like 1.0.0")
    return value


def _gate_item(value: str) -> str:
    if value not in GATE_ITEMS:
        raise ValueError(f"unknown item {value!r}; the known items are {', '.join(GATE_ITEMS)}")
    return value


def _present(value: object) -> object:
    """An optional object may be left out, never written as null."""
    if value is None:
        raise ValueError("leave the key out instead of writing null")
    return value


# ---------------------------------------------------------------------------- a cited value (Setting)


class SettingIn(DataModel, Generic[V]):
    """``{"value", "unit", "source", "note", "clinic_setting", "unconfirmed", "not_applicable"}``."""

    #: The unit the file must state (None: the value has no unit to state).
    unit_required: ClassVar[str | None] = None

    value: V | None
    unit: str | None = None
    source: str | None = None
    note: str = ""
    clinic_setting: StrictBool = False
    unconfirmed: StrictBool = False
    not_applicable: StrictBool = False

    @model_validator(mode="after")
    def _cited_or_clinic_setting(self) -> Self:
        if self.not_applicable:
            if self.value is not None or self.clinic_setting:
                raise ValueError("a not-applicable field has a null value and is not a clinic setting")
            return self
        if self.unit_required is not None and self.unit != self.unit_required:
            raise ValueError(f"unit must be {self.unit_required!r} (got {self.unit!r})")
        if self.value is None:
            if not self.clinic_setting:
                raise ValueError('a null value must be marked "clinic_setting": true')
            if not self.note:
                raise ValueError("a clinic setting must carry a note saying what the reference says")
        else:
            if not self.source:
                raise ValueError("every value needs a source citation")
            if self.clinic_setting:
                raise ValueError("a cited default is not a clinic setting without default")
        return self

    def setting(self) -> Setting[V]:
        return Setting(
            self.value, self.source, self.note, self.clinic_setting, self.unconfirmed, self.not_applicable
        )


class MgSetting(SettingIn[MgText]):
    unit_required = "mg"


class MgPerKgSetting(SettingIn[MgPerKgText]):
    unit_required = "mg/kg"


class MinutesSetting(SettingIn[MinutesText]):
    unit_required = "min"


class WeightBasisSetting(SettingIn[WeightBasis]):
    pass


class CountSetting(SettingIn[StrictInt]):
    pass


class MmHgThreshold(SettingIn[StrictInt]):
    unit_required = "mm[Hg]"


class PerMinuteThreshold(SettingIn[StrictInt]):
    unit_required = "/min"


class PercentThreshold(SettingIn[StrictInt]):
    unit_required = "%"


class ScoreThreshold(SettingIn[StrictInt]):
    unit_required = "score"


# ---------------------------------------------------------------------------- the file's objects


class CitedText(DataModel):
    text: Text
    source: Text


class DoseIn(DataModel):
    basis: DoseBasis
    form: DoseForm
    weight_basis: WeightBasisSetting
    default_mg_per_kg: MgPerKgSetting
    min_mg_per_kg: MgPerKgSetting
    max_mg_per_kg: MgPerKgSetting
    default_mg: MgSetting
    min_mg: MgSetting
    max_mg: MgSetting
    allowed_mg: tuple[MgText, ...]
    allowed_mg_source: str | None
    unit_strengths: tuple[MgText, ...]
    unit_strengths_source: str | None
    device_spacing_minutes: MinutesSetting
    infusion_minutes: MinutesSetting
    infusion_minutes_min: MinutesSetting
    infusion_minutes_max: MinutesSetting
    double_check_required: StrictBool
    notes: tuple[Text, ...]
    # Left out by versions written before hard ceilings existed (they inherit the newest version's).
    ceiling_mg: MgSetting | None = None
    ceiling_mg_per_kg: MgPerKgSetting | None = None

    _no_null_ceiling = field_validator("ceiling_mg", "ceiling_mg_per_kg", mode="before")(_present)

    @field_validator("weight_basis")
    @classmethod
    def _weight_basis_for_mg_per_kg(cls, value: WeightBasisSetting, info: ValidationInfo) -> Any:
        if info.data.get("basis") == "mg_per_kg" and value.value is None and not value.clinic_setting:
            raise ValueError("required for mg/kg dosing")
        return value

    @field_validator("allowed_mg_source", "unit_strengths_source")
    @classmethod
    def _list_needs_source(cls, value: str | None, info: ValidationInfo) -> Any:
        listed = info.data.get(str(info.field_name).removesuffix("_source"))
        if listed and not value:
            raise ValueError(f"{str(info.field_name).removesuffix('_source')} needs a source citation")
        return value

    @model_validator(mode="after")
    def _nasal_device(self) -> Self:
        if self.form == "nasal_device" and (
            len(self.unit_strengths) != 1 or self.device_spacing_minutes.value is None
        ):
            raise ValueError("a nasal device protocol needs one device strength and the device spacing")
        return self

    def spec(self) -> DoseSpec:
        absent: Setting[Any] = Setting(None, None, ABSENT_NOTE, clinic_setting=True)
        return DoseSpec(
            basis=self.basis,
            form=self.form,
            weight_basis=self.weight_basis.setting(),
            default_mg_per_kg=self.default_mg_per_kg.setting(),
            min_mg_per_kg=self.min_mg_per_kg.setting(),
            max_mg_per_kg=self.max_mg_per_kg.setting(),
            default_mg=self.default_mg.setting(),
            min_mg=self.min_mg.setting(),
            max_mg=self.max_mg.setting(),
            allowed_mg=self.allowed_mg,
            allowed_mg_source=self.allowed_mg_source,
            unit_strengths=self.unit_strengths,
            unit_strengths_source=self.unit_strengths_source,
            device_spacing_minutes=self.device_spacing_minutes.setting(),
            infusion_minutes=self.infusion_minutes.setting(),
            infusion_minutes_min=self.infusion_minutes_min.setting(),
            infusion_minutes_max=self.infusion_minutes_max.setting(),
            double_check_required=self.double_check_required,
            notes=self.notes,
            ceiling_mg=self.ceiling_mg.setting() if self.ceiling_mg is not None else absent,
            ceiling_mg_per_kg=(
                self.ceiling_mg_per_kg.setting() if self.ceiling_mg_per_kg is not None else absent
            ),
        )


class PhaseIn(DataModel):
    name: Text
    weeks_from: StrictInt | None
    weeks_to: StrictInt | None
    frequency: Text
    sessions_per_week: tuple[DecimalText, ...]
    dose: Text
    source: Text


class SessionsIn(DataModel):
    count: CountSetting
    phases: tuple[PhaseIn, ...]
    notes: tuple[Text, ...]

    def pattern(self) -> SessionPattern:
        phases = tuple(
            Phase(p.name, p.weeks_from, p.weeks_to, p.frequency, p.sessions_per_week, p.dose, p.source)
            for p in self.phases
        )
        return SessionPattern(count=self.count.setting(), phases=phases, notes=self.notes)


class FastingIn(DataModel):
    food_minutes: MinutesSetting
    liquids_minutes: MinutesSetting
    instructions: tuple[CitedText, ...]


class ObservationIn(DataModel):
    minimum_minutes: MinutesSetting
    until_resolved: tuple[Text, ...]
    until_resolved_source: str | None
    discharge_criteria: tuple[CitedText, ...]


class CheckpointIn(DataModel):
    label: Text
    kind: Literal["pre_dose", "offset", "pre_discharge"]
    offset_minutes: StrictInt | None
    source: Text

    @model_validator(mode="after")
    def _offset_only_for_offset(self) -> Self:
        if (self.kind == "offset") != (self.offset_minutes is not None):
            raise ValueError("offset_minutes is needed for (and only for) offset checkpoints")
        return self


class VitalsScheduleIn(DataModel):
    checkpoints: tuple[CheckpointIn, ...]
    interval_minutes: MinutesSetting
    measures: tuple[Vital, ...]
    pulse_oximetry_required: StrictBool
    pulse_oximetry_source: str | None


class ThresholdsIn(DataModel):
    """Each key may be left out (the library default of ``vitals.AlertThresholds`` applies)."""

    predose_sbp_above: MmHgThreshold | None = None
    predose_dbp_above: MmHgThreshold | None = None
    sbp_rise_at_least: MmHgThreshold | None = None
    dbp_rise_at_least: MmHgThreshold | None = None
    spo2_below: PercentThreshold | None = None
    sbp_above: MmHgThreshold | None = None
    dbp_above: MmHgThreshold | None = None
    hr_above: PerMinuteThreshold | None = None
    hr_below: PerMinuteThreshold | None = None
    rr_above: PerMinuteThreshold | None = None
    rr_below: PerMinuteThreshold | None = None
    moaas_at_or_below: ScoreThreshold | None = None

    _no_null = field_validator("*", mode="before")(_present)

    def thresholds(self) -> AlertThresholds:
        changes: dict[str, Threshold] = {}
        for name in self.model_fields_set:
            s: SettingIn[int] = getattr(self, name)
            changes[name] = Threshold(
                s.value, s.source or "clinic setting (the reference gives no number)", s.note
            )
        return AlertThresholds(**changes)


class MeasurementIn(DataModel):
    instrument: Text
    when: Text
    source: Text


class ProtocolFile(DataModel):
    """The whole file."""

    schema_: SchemaId = Field(alias="schema")
    id: Text
    version: Annotated[Text, AfterValidator(_semver)]
    title: Text
    product: Text
    route: Route
    indication: Text
    regulatory_note: Text
    sources: tuple[Text, ...]
    dose: DoseIn
    sessions: SessionsIn
    fasting: FastingIn
    observation: ObservationIn
    vitals_schedule: VitalsScheduleIn
    monitoring_thresholds: ThresholdsIn
    measurement_schedule: tuple[MeasurementIn, ...]
    gate_items: tuple[Annotated[str, AfterValidator(_gate_item)], ...]
    rems_monitoring_form: StrictBool
    notes: tuple[Text, ...]

    def protocol(self) -> Protocol:
        f, o, v = self.fasting, self.observation, self.vitals_schedule
        return Protocol(
            id=self.id,
            version=self.version,
            title=self.title,
            product=self.product,
            route=self.route,
            indication=self.indication,
            regulatory_note=self.regulatory_note,
            sources=self.sources,
            dose=self.dose.spec(),
            sessions=self.sessions.pattern(),
            fasting=Fasting(
                food_minutes=f.food_minutes.setting(),
                liquids_minutes=f.liquids_minutes.setting(),
                instructions=tuple((i.text, i.source) for i in f.instructions),
            ),
            observation=Observation(
                minimum_minutes=o.minimum_minutes.setting(),
                until_resolved=o.until_resolved,
                until_resolved_source=o.until_resolved_source,
                discharge_criteria=tuple((c.text, c.source) for c in o.discharge_criteria),
            ),
            vitals_schedule=VitalsSchedule(
                checkpoints=tuple(
                    Checkpoint(c.label, c.kind, c.offset_minutes, c.source) for c in v.checkpoints
                ),
                interval_minutes=v.interval_minutes.setting(),
                measures=v.measures,
                pulse_oximetry_required=v.pulse_oximetry_required,
                pulse_oximetry_source=v.pulse_oximetry_source,
            ),
            thresholds=self.monitoring_thresholds.thresholds(),
            measurement_schedule=tuple(
                Measurement(m.instrument, m.when, m.source) for m in self.measurement_schedule
            ),
            gate_items=self.gate_items,
            rems_monitoring_form=self.rems_monitoring_form,
            notes=self.notes,
        )


def parse_protocol(data: object, path: str = "<data>") -> Protocol:
    """Validate decoded JSON against :class:`ProtocolFile` and build the :class:`Protocol`.

    Raises :class:`ProtocolDataError` naming ``path`` and the field path of every problem."""
    try:
        document = ProtocolFile.model_validate(data)
    except ValidationError as exc:
        raise ProtocolDataError(f"{path}: {describe(exc)}") from None
    return document.protocol()
