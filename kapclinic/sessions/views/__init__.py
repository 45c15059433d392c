"""Thin views for dosing sessions: permission (policy) -> form -> service -> render.

One module per phase; urls.py names the views through this package, which re-exports them.
"""

from kapclinic.sessions.views.administration import (
    cosign,
    device,
    dose,
    double_check,
    double_check_withdraw,
    infusion_stop,
    lozenge,
    start_dosing,
    stock_disposal,
    stock_unused,
    stock_waste,
)
from kapclinic.sessions.views.discharge_and_rems import (
    adverse_event,
    discharge,
    process_note,
    rems,
    rems_submitted,
)
from kapclinic.sessions.views.monitoring import (
    acknowledge,
    event,
    missed_check,
    rating,
    vitals,
)
from kapclinic.sessions.views.page import (
    DOSE_CARD_POLL_SECONDS,
    MONITOR_STATES,
    detail,
    dose_card,
    monitor,
)
from kapclinic.sessions.views.settings import (
    clinic_settings,
    clinic_settings_alerts,
    clinic_settings_measures,
    clinic_settings_protocol,
)
from kapclinic.sessions.views.start_and_gate import (
    abort,
    gate,
    gate_pass,
    index,
    new,
    override,
    start_from_appointment,
    transition,
)

__all__ = [
    "DOSE_CARD_POLL_SECONDS",
    "MONITOR_STATES",
    "abort",
    "acknowledge",
    "adverse_event",
    "clinic_settings",
    "clinic_settings_alerts",
    "clinic_settings_measures",
    "clinic_settings_protocol",
    "cosign",
    "detail",
    "device",
    "discharge",
    "dose",
    "dose_card",
    "double_check",
    "double_check_withdraw",
    "event",
    "gate",
    "gate_pass",
    "index",
    "infusion_stop",
    "lozenge",
    "missed_check",
    "monitor",
    "new",
    "override",
    "process_note",
    "rating",
    "rems",
    "rems_submitted",
    "start_dosing",
    "start_from_appointment",
    "stock_disposal",
    "stock_unused",
    "stock_waste",
    "transition",
    "vitals",
]
