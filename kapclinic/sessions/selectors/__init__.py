"""Reads for dosing sessions.

One module per phase (and the lists and the session's record that every phase reads); this package
re-exports their public names, so `from kapclinic.sessions import selectors` keeps working.
"""

from kapclinic.sessions.selectors.administration import (
    DoseHandoff,
    dose_handoff,
    dose_handoff_lines,
    infusion_running,
)
from kapclinic.sessions.selectors.discharge import (
    SessionProcessNote,
    rems_record,
    session_process_notes,
)
from kapclinic.sessions.selectors.gate import chart_flagged_medications, session_phq9
from kapclinic.sessions.selectors.lists import (
    REMS_SUBMIT_DAYS,
    PatientSession,
    TodaySession,
    appointments_not_started,
    clinic_sessions,
    measure_dosing_times,
    patient_sessions,
    protocol_title,
    rems_overdue,
    session_for_appointment,
    sessions_for_appointments,
    startable_appointments,
    state_label,
    today_sessions,
    with_protocol_titles,
)
from kapclinic.sessions.selectors.monitoring import (
    TimelineRow,
    monitoring_timeline,
    vitals_due,
)
from kapclinic.sessions.selectors.record import (
    MISSED_CHECK_CODE,
    GivenRecord,
    ObservationRow,
    SessionRecord,
    baseline_reading,
    final_reading,
    given_record,
    last_rating,
    latest_reading,
    missed_check_explanations,
    previous_dose_at,
)
from kapclinic.sessions.selectors.settings import clinic_settings_context

__all__ = [
    "MISSED_CHECK_CODE",
    "REMS_SUBMIT_DAYS",
    "DoseHandoff",
    "GivenRecord",
    "ObservationRow",
    "PatientSession",
    "SessionProcessNote",
    "SessionRecord",
    "TimelineRow",
    "TodaySession",
    "appointments_not_started",
    "baseline_reading",
    "chart_flagged_medications",
    "clinic_sessions",
    "clinic_settings_context",
    "dose_handoff",
    "dose_handoff_lines",
    "final_reading",
    "given_record",
    "infusion_running",
    "last_rating",
    "latest_reading",
    "measure_dosing_times",
    "missed_check_explanations",
    "monitoring_timeline",
    "patient_sessions",
    "previous_dose_at",
    "protocol_title",
    "rems_overdue",
    "rems_record",
    "session_for_appointment",
    "session_phq9",
    "session_process_notes",
    "sessions_for_appointments",
    "startable_appointments",
    "state_label",
    "today_sessions",
    "vitals_due",
    "with_protocol_titles",
]
