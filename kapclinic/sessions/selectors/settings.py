"""The clinic settings page's context."""

from __future__ import annotations

from typing import Any


def clinic_settings_context(clinic: Any, protocol_id: str) -> dict[str, Any]:
    """What the clinic-settings page shows: the clinic's values for one protocol, the measure settings,
    and the recent change history (constant number of queries)."""
    from kapclinic.measures.services import SETTING_INFO, measure_settings
    from kapclinic.sessions.models import ClinicProtocolSetting, ClinicSettingChange

    rows = ClinicProtocolSetting.objects.filter(clinic=clinic, protocol_id=protocol_id).select_related(
        "set_by"
    )
    current = {r.key: r for r in rows}
    history = list(
        ClinicSettingChange.objects.filter(clinic=clinic).select_related("by").order_by("-at", "-id")[:50]
    )
    stamp = next((h.pk for h in history if h.area == "protocol" and h.protocol_id == protocol_id), None)
    if stamp is None:
        stamp = (
            ClinicSettingChange.objects.filter(clinic=clinic, area="protocol", protocol_id=protocol_id)
            .order_by("-id")
            .values_list("id", flat=True)
            .first()
        )
    alerts_stamp = next((h.pk for h in history if h.area == "alerts"), None)
    if alerts_stamp is None:
        alerts_stamp = (
            ClinicSettingChange.objects.filter(clinic=clinic, area="alerts")
            .order_by("-id")
            .values_list("id", flat=True)
            .first()
        )
    return {
        "current": current,
        "stamp": stamp or 0,
        "alerts_stamp": alerts_stamp or 0,
        "measure_settings": measure_settings(clinic),
        "measure_info": SETTING_INFO,
        "history": history,
    }
