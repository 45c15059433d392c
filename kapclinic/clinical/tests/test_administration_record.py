"""The administration record rules: esketamine device spacing and count, entered-time plausibility,
IV infusion stop, SL lozenge hold, and what must be recorded before dosing is complete."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from kapclinic.clinical.session_state import (
    AdministrationRecord,
    check_device,
    check_entered_time,
    check_infusion_stop,
    check_lozenge,
    dosing_completion_gaps,
)

T0 = datetime(2026, 3, 2, 14, 0, 0)


# ---------------------------------------------------------------- devices (5 minutes apart, ref §1.3)


def test_second_device_at_4_59_is_refused_with_the_earliest_time() -> None:
    problems = check_device(
        2, T0 + timedelta(minutes=4, seconds=59), ordered=3, previous_at=T0, spacing_minutes=5
    )
    assert problems == [
        "Device 2 at 14:04:59 is only 4 min 59 s after device 1 (14:00:00); wait 5 minutes between devices "
        "([S7] ref §1.3), so device 2 can be used from 14:05:00."
    ]


def test_second_device_at_exactly_5_00_is_accepted() -> None:
    assert check_device(2, T0 + timedelta(minutes=5), ordered=3, previous_at=T0, spacing_minutes=5) == []


def test_device_beyond_the_order_is_refused() -> None:
    problems = check_device(4, T0 + timedelta(minutes=20), ordered=3, previous_at=T0, spacing_minutes=5)
    assert problems == [
        "Devices: all 3 ordered device(s) are already recorded; a device beyond the order cannot be recorded."
    ]


def test_device_before_the_previous_one_is_refused() -> None:
    (problem,) = check_device(3, T0, ordered=3, previous_at=T0 + timedelta(minutes=5), spacing_minutes=5)
    assert "would be before device 2 (14:05:00)" in problem


def test_first_device_has_no_spacing_and_no_order_means_no_devices() -> None:
    assert check_device(1, T0, ordered=2, previous_at=None, spacing_minutes=5) == []
    assert check_device(1, T0, ordered=0, previous_at=None, spacing_minutes=5)[0].startswith("Devices: no")


@given(
    seconds=st.integers(min_value=-3600, max_value=3 * 3600),
    spacing=st.integers(min_value=1, max_value=30),
    number=st.integers(min_value=2, max_value=6),
    ordered=st.integers(min_value=1, max_value=6),
)
def test_device_refused_exactly_when_too_soon_or_beyond_the_order(
    seconds: int, spacing: int, number: int, ordered: int
) -> None:
    at = T0 + timedelta(seconds=seconds)
    problems = check_device(number, at, ordered=ordered, previous_at=T0, spacing_minutes=spacing)
    refused = number > ordered or seconds < spacing * 60
    assert bool(problems) is refused
    assert len(problems) <= 1  # one sentence, never a silent correction


# ---------------------------------------------------------------- typed times


def test_future_and_before_check_in_are_refused() -> None:
    checked_in = T0 - timedelta(minutes=30)
    future = check_entered_time("Device 2", T0 + timedelta(minutes=1), not_before=checked_in, now=T0)
    assert future == ["Device 2: 14:01:00 is in the future (it is now 14:00:00); enter the time it happened."]
    early = check_entered_time("Device 2", T0 - timedelta(hours=1), not_before=checked_in, now=T0)
    assert early == [
        "Device 2: 13:00:00 is before the patient checked in at 13:30:00; enter a time within this session."
    ]
    other_day = check_entered_time("Device 2", T0 - timedelta(days=1), not_before=checked_in, now=T0)
    assert "1 Mar 14:00:00 is before" in other_day[0]
    assert check_entered_time("Device 2", T0, not_before=checked_in, now=T0) == []
    assert check_entered_time("Device 2", checked_in, not_before=checked_in, now=T0) == []


@given(offset=st.integers(min_value=-7200, max_value=7200))
def test_entered_time_accepted_only_between_check_in_and_now(offset: int) -> None:
    checked_in = T0 - timedelta(minutes=45)
    at = T0 + timedelta(seconds=offset)
    ok = checked_in <= at <= T0
    assert (check_entered_time("Stop", at, not_before=checked_in, now=T0) == []) is ok


# ---------------------------------------------------------------- IV and SL


def test_infusion_stop_after_start_and_rate_above_zero() -> None:
    started = T0 - timedelta(minutes=40)
    assert check_infusion_stop(T0, started_at=started, actual_rate_ml_per_h=None) == []
    assert check_infusion_stop(T0, started_at=started, actual_rate_ml_per_h=Decimal("120.5")) == []
    (problem,) = check_infusion_stop(started, started_at=started, actual_rate_ml_per_h=None)
    assert problem.startswith("Infusion stop at 13:20:00 is not after its start at 13:20:00")
    assert "above 0" in check_infusion_stop(T0, started_at=started, actual_rate_ml_per_h=Decimal(0))[0]
    assert "not been started" in check_infusion_stop(T0, started_at=None, actual_rate_ml_per_h=None)[0]


def test_lozenge_hold_within_the_time_since_dosing_and_spat_or_swallowed() -> None:
    assert check_lozenge(15, "spat", minutes_since_first_dose=20) == []
    assert check_lozenge(0, "swallowed", minutes_since_first_dose=0) == []
    assert "longer than the 10 min" in check_lozenge(15, "spat", minutes_since_first_dose=10)[0]
    assert check_lozenge(-1, "spat", minutes_since_first_dose=10)[0].startswith("Hold time")
    assert check_lozenge(5, "", minutes_since_first_dose=10)[0].startswith("Spat or swallowed")


# ---------------------------------------------------------------- dosing complete


def test_all_devices_or_a_partial_reason() -> None:
    missing = AdministrationRecord("nasal_device", devices_ordered=3, devices_recorded=2)
    (gap,) = dosing_completion_gaps(missing)
    assert gap.startswith("Devices: 2 of 3 ordered devices are recorded")
    assert missing.partial
    partial = AdministrationRecord("nasal_device", 3, 2, partial_reason="Patient vomited after device 2")
    assert dosing_completion_gaps(partial) == () and partial.partial
    assert dosing_completion_gaps(AdministrationRecord("nasal_device", 3, 2, partial_reason="  ")) != ()
    complete = AdministrationRecord("nasal_device", devices_ordered=2, devices_recorded=2)
    assert dosing_completion_gaps(complete) == () and not complete.partial


def test_other_routes() -> None:
    assert dosing_completion_gaps(AdministrationRecord("vial_iv"))[0].startswith("Infusion:")
    assert dosing_completion_gaps(AdministrationRecord("vial_iv", infusion_stopped=True)) == ()
    assert dosing_completion_gaps(AdministrationRecord("lozenge"))[0].startswith("Lozenge:")
    assert dosing_completion_gaps(AdministrationRecord("lozenge", lozenge_recorded=True)) == ()
    assert dosing_completion_gaps(AdministrationRecord("vial_im")) == ()


@given(
    ordered=st.integers(min_value=1, max_value=4),
    recorded=st.integers(min_value=0, max_value=4),
    reason=st.sampled_from(["", " ", "Patient declined the third device"]),
)
def test_devices_complete_iff_all_recorded_or_reason(ordered: int, recorded: int, reason: str) -> None:
    recorded = min(recorded, ordered)
    gaps = dosing_completion_gaps(
        AdministrationRecord("nasal_device", ordered, recorded, partial_reason=reason)
    )
    assert (gaps == ()) is (recorded == ordered or bool(reason.strip()))
