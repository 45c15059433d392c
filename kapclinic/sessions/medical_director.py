"""The demo clinic's medical-director values for what the protocols leave to the clinic.

SYNTHETIC DEMO VALUES, NOT CLINICAL GUIDANCE. The reference gives no number for these (IM dose range,
fasting before racemic ketamine, observation minimums, vitals intervals, intra-session BP/HR/RR alert
limits, the sublingual hard ceiling), so a clinic cannot plan on a protocol until its medical director sets
them (docs/clinical-reference-dosing.md §4). The demo clinic (and the test clinics the factories make) set
them here so every protocol is usable; where a value borrows a cited number by analogy the table in
docs/clinical-reference-dosing.md §6 says which. A real clinic's medical director sets their own on
/sessions/settings/, each with a reason.
"""

from __future__ import annotations

from typing import Any

#: Intra-session alert limits the demo medical director chose (synthetic; the reference has none).
_THRESHOLDS = {
    "thresholds.sbp_above": "180",
    "thresholds.dbp_above": "110",
    "thresholds.hr_above": "100",
    "thresholds.hr_below": "50",
    "thresholds.rr_above": "24",
    "thresholds.rr_below": "10",
}
#: Fasting as for esketamine (no food 2 h, no liquids 30 min, [S10] ref §1.3), adopted by analogy.
_FASTING = {"fasting.food_minutes": "120", "fasting.liquids_minutes": "30"}

#: How recent the last full set of vitals and ratings must be at discharge: the reference gives no
#: interval ([S6a] ref §2.7), so this is the demo medical director's synthetic value, not a recommendation.
_FINAL_SET = {"observation.final_set_within_minutes": "15"}

DEMO_VALUES: dict[str, dict[str, str]] = {
    "ketamine-iv-racemic": {
        **_FINAL_SET,
        **_FASTING,
        "observation.minimum_minutes": "120",
        **_THRESHOLDS,
    },
    "ketamine-im-racemic": {
        **_FINAL_SET,
        # The subcutaneous KADS range 0.5-0.9 mg/kg ([S22] ref §1.2), adopted by analogy for IM.
        "dose.min_mg_per_kg": "0.5",
        "dose.max_mg_per_kg": "0.9",
        **_FASTING,
        "observation.minimum_minutes": "120",
        "vitals_schedule.interval_minutes": "15",
        **_THRESHOLDS,
    },
    "ketamine-sl-lozenge": {
        **_FINAL_SET,
        # The top of the CTP lozenge range (100-400 mg, [S28] ref §1.2, per session UNCONFIRMED).
        "dose.ceiling_mg": "400",
        **_FASTING,
        "observation.minimum_minutes": "120",
        "vitals_schedule.interval_minutes": "15",
        **_THRESHOLDS,
    },
    "esketamine-in-trd": {"vitals_schedule.interval_minutes": "15", **_FINAL_SET, **_THRESHOLDS},
    "esketamine-in-mdsi": {"vitals_schedule.interval_minutes": "15", **_FINAL_SET, **_THRESHOLDS},
}

DEMO_REASON = (
    "Demo clinic medical director's values for what the reference leaves to the clinic (synthetic demo "
    "data, not clinical guidance; see docs/clinical-reference-dosing.md §6)."
)


def configure_protocols(clinic: Any, user: Any = None, *, reason: str = DEMO_REASON) -> None:
    """Store DEMO_VALUES for ``clinic`` (values already set are kept). With ``user``, each value is also
    written to the settings change log with ``reason``, as the settings page would."""
    from kapclinic.core import clock
    from kapclinic.sessions.models import ClinicProtocolSetting, ClinicSettingChange

    now = clock.now()
    existing = set(ClinicProtocolSetting.objects.filter(clinic=clinic).values_list("protocol_id", "key"))
    rows = []
    changes = []
    for protocol_id, values in DEMO_VALUES.items():
        for key, value in values.items():
            if (protocol_id, key) in existing:
                continue
            rows.append(
                ClinicProtocolSetting(
                    clinic=clinic, protocol_id=protocol_id, key=key, value=value, set_by=user, set_at=now
                )
            )
            if user is not None:
                changes.append(
                    ClinicSettingChange(
                        clinic=clinic,
                        area="protocol",
                        protocol_id=protocol_id,
                        key=key,
                        old_value="",
                        new_value=value,
                        reason=reason,
                        by=user,
                        at=now,
                    )
                )
    ClinicProtocolSetting.objects.bulk_create(rows)
    ClinicSettingChange.objects.bulk_create(changes)
