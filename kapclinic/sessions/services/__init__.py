"""Every write for dosing sessions: transactional, audited once, attributed and timestamped.

One module per phase of a session; this package re-exports their public names, so
`from kapclinic.sessions import services` and `services.gate_pass(...)` keep working. Code inside the
package imports from the phase module itself (patch there, not here).
"""

from kapclinic.sessions.services.administration import (
    INFUSED_UNITS,
    administration_record,
    device_record,
    infusion_stop_record,
    lozenge_record,
)
from kapclinic.sessions.services.common import (
    clinic_protocol,
    protocol_for,
    protocol_gaps_sentence,
    settings_url,
)
from kapclinic.sessions.services.discharge import (
    administration_ended_at,
    adverse_event_record,
    discharge_decision,
    missed_check_explain,
    missing_checks,
    process_note_add,
    rems_mark_submitted,
    session_discharge,
)
from kapclinic.sessions.services.dose import (
    NO_STOCK,
    calculate_for_session,
    dose_cosign,
    dose_double_check,
    dose_double_check_withdraw,
    dose_order,
    dosing_start,
    dosing_start_from_stock,
    stock_form,
)
from kapclinic.sessions.services.gate import (
    GATE_FIELDS,
    NASAL_STEROID_DETAIL,
    gate_checks,
    gate_override,
    gate_pass,
    gate_result,
    gate_update,
    session_create,
    session_start_from_appointment,
    session_transition,
)
from kapclinic.sessions.services.monitoring import (
    LOCAL_CODES,
    alert_acknowledge,
    event_record,
    rating_record,
    vitals_record,
)
from kapclinic.sessions.services.settings import (
    alert_routing_update,
    measure_settings_update,
    protocol_settings_update,
)

__all__ = [
    "GATE_FIELDS",
    "INFUSED_UNITS",
    "LOCAL_CODES",
    "NASAL_STEROID_DETAIL",
    "NO_STOCK",
    "administration_ended_at",
    "administration_record",
    "adverse_event_record",
    "alert_acknowledge",
    "alert_routing_update",
    "calculate_for_session",
    "clinic_protocol",
    "device_record",
    "discharge_decision",
    "dose_cosign",
    "dose_double_check",
    "dose_double_check_withdraw",
    "dose_order",
    "dosing_start",
    "dosing_start_from_stock",
    "event_record",
    "gate_checks",
    "gate_override",
    "gate_pass",
    "gate_result",
    "gate_update",
    "infusion_stop_record",
    "lozenge_record",
    "measure_settings_update",
    "missed_check_explain",
    "missing_checks",
    "process_note_add",
    "protocol_for",
    "protocol_gaps_sentence",
    "protocol_settings_update",
    "rating_record",
    "rems_mark_submitted",
    "session_create",
    "session_discharge",
    "session_start_from_appointment",
    "session_transition",
    "settings_url",
    "stock_form",
    "vitals_record",
]
