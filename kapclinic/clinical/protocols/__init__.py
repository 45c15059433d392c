"""Protocol library: versioned JSON data (``data/``), its declared format (``schema.py``), the typed values
it becomes (``model.py``) and the library (``loader.py``)."""

from kapclinic.clinical.protocols.loader import (
    SettableField,
    all_protocols,
    apply_clinic_settings,
    clinic_settable_fields,
    field_label,
    get_protocol,
    load_protocol,
    preparation_lines,
    protocol_choices,
    validate_clinic_value,
)
from kapclinic.clinical.protocols.model import (
    GATE_ITEMS,
    ClinicSettingMissing,
    DoseSpec,
    Fasting,
    Measurement,
    Observation,
    Phase,
    Protocol,
    ProtocolDataError,
    SessionPattern,
    Setting,
    UnknownProtocol,
    VitalsSchedule,
)
from kapclinic.clinical.protocols.schema import parse_protocol

__all__ = [
    "GATE_ITEMS",
    "ClinicSettingMissing",
    "DoseSpec",
    "Fasting",
    "Measurement",
    "Observation",
    "Phase",
    "Protocol",
    "ProtocolDataError",
    "SessionPattern",
    "SettableField",
    "Setting",
    "UnknownProtocol",
    "VitalsSchedule",
    "all_protocols",
    "apply_clinic_settings",
    "clinic_settable_fields",
    "field_label",
    "get_protocol",
    "load_protocol",
    "parse_protocol",
    "preparation_lines",
    "protocol_choices",
    "validate_clinic_value",
]
