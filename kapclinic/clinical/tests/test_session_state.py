"""Session state machine, safety gate and discharge rules."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kapclinic.clinical.session_state import (
    TERMINAL,
    DischargeDecision,
    DischargeInput,
    Event,
    GateCheck,
    IllegalTransition,
    Phq9Evidence,
    State,
    allowed_events,
    check_baseline_vitals,
    check_fasting,
    check_medication_changes,
    check_phq9_response,
    evaluate_discharge,
    evaluate_gate,
    next_state,
    phq9_window,
)
from kapclinic.clinical.vitals import Reading

T0 = datetime(2026, 1, 5, 9, 0)

HAPPY = [
    (Event.CHECK_IN, State.CHECKED_IN),
    (Event.PASS_PREDOSE, State.PREDOSE_PASSED),
    (Event.START_DOSING, State.DOSING),
    (Event.START_MONITORING, State.MONITORING),
    (Event.START_RECOVERY, State.RECOVERY),
    (Event.DISCHARGE, State.DISCHARGED),
]


def test_happy_path() -> None:
    s = State.SCHEDULED
    for ev, expected in HAPPY:
        s = next_state(s, ev)
        assert s is expected


def test_abort_from_every_non_terminal_state_needs_reason() -> None:
    for s in set(State) - TERMINAL:
        with pytest.raises(IllegalTransition, match="Reason is required"):
            next_state(s, Event.ABORT)
        assert next_state(s, Event.ABORT, reason="Patient unwell") is State.ABORTED


def test_illegal_transitions_are_sentences() -> None:
    with pytest.raises(IllegalTransition, match="cannot be discharged twice"):
        next_state(State.DISCHARGED, Event.DISCHARGE)
    with pytest.raises(IllegalTransition, match="cannot be dosed twice"):
        next_state(State.MONITORING, Event.START_DOSING)
    with pytest.raises(IllegalTransition, match="You cannot start dosing while the session is checked in"):
        next_state(State.CHECKED_IN, Event.START_DOSING)
    with pytest.raises(IllegalTransition, match="no further changes"):
        next_state(State.ABORTED, Event.CHECK_IN)
    with pytest.raises(IllegalTransition, match="no further changes"):
        next_state(State.DISCHARGED, Event.ABORT, reason="x")


@given(st.lists(st.sampled_from(list(Event)), max_size=12))
def test_property_machine_never_skips(events: list[Event]) -> None:
    s = State.SCHEDULED
    for e in events:
        try:
            new = next_state(s, e, reason="r")
        except IllegalTransition:
            assert e not in allowed_events(s)
            continue
        assert e in allowed_events(s)
        if new is State.DISCHARGED:
            assert s is State.RECOVERY
        s = new


# ---------------------------------------------------------------- gate


def passing_checks() -> list[GateCheck]:
    return [
        GateCheck("signed_plan", True),
        GateCheck("consent_current", True),
        GateCheck("eligibility_current", True),
        GateCheck("phq9_done", True),
        GateCheck("escort_named", True),
    ]


def test_gate_blocks_and_overrides() -> None:
    checks = [*passing_checks(), check_baseline_vitals(Reading(sbp=152, dbp=94))]
    r = evaluate_gate(checks)
    assert not r.passed and r.overridable_failures == ("baseline_vitals",)
    assert "Pre-dose systolic BP 152 is above 140" in r.blocking[0]
    assert "unless a prescriber overrides it" in r.blocking[0]
    r = evaluate_gate(checks, {"baseline_vitals": "   "})
    assert not r.passed
    r = evaluate_gate(checks, {"baseline_vitals": "Repeat BP after rest 138/88; known white-coat effect"})
    assert r.passed and r.items[-1].status == "overridden"


def test_hard_stops_cannot_be_overridden() -> None:
    checks = [GateCheck("consent_current", False, "Consent expired."), *passing_checks()[2:]]
    r = evaluate_gate(checks, {"consent_current": "I say so"})
    assert not r.passed and "hard stop" in r.blocking[0]


def test_required_items_missing_fail() -> None:
    r = evaluate_gate(passing_checks(), required=["intention_noted"])
    assert not r.passed and "not been completed" in r.blocking[0]


W_TODAY = phq9_window("same_day", now=T0, day_start=T0.replace(hour=0), previous_dose_at=None, max_hours=48)


def ev(item9: int | None = 0, **kw: Any) -> Phq9Evidence:
    return Phq9Evidence(completed_at=T0 - timedelta(hours=1), total=9, item9=item9, item9_urgent=False, **kw)


def test_phq9_waiver() -> None:
    assert check_phq9_response(None, "Patient declined; clinician interview done", W_TODAY).waived_reason
    missing = check_phq9_response(None, " ", W_TODAY)
    assert not missing.passed
    assert missing.detail == "No PHQ-9 has been completed today and no waiver reason is given."
    r = evaluate_gate([check_phq9_response(None, "declined", W_TODAY)])
    assert r.passed and r.items[0].status == "waived"


def test_phq9_response_found_passes_and_shows_item9() -> None:
    c = check_phq9_response(ev(0), "", W_TODAY)
    assert c.passed and "total 9" in c.detail and "Item 9: 0" in c.detail and c.flag is None
    c = check_phq9_response(ev(1, acknowledged_action="Called the patient"), "", W_TODAY)
    assert c.passed and c.flag == "item9_positive"
    assert "answered 1" in c.detail and "acknowledged: Called the patient" in c.detail
    urgent = Phq9Evidence(T0, 12, 2, True)
    assert check_phq9_response(urgent, "", W_TODAY).flag == "item9_urgent"


def test_phq9_open_safety_alert_blocks_and_waiver_does_not_cover_it() -> None:
    c = check_phq9_response(ev(2), "patient in a hurry", W_TODAY, open_safety_alerts=1)
    assert not c.passed and c.waived_reason is None and c.flag == "item9_positive"
    assert "not yet acknowledged" in c.detail
    r = evaluate_gate([c])
    assert r.items[0].status == "blocked"  # a prescriber may override with a written reason
    assert evaluate_gate([c], {"phq9_done": "Seen by prescriber; C-SSRS low risk"}).passed
    c = check_phq9_response(None, "declined", W_TODAY, open_safety_alerts=2)
    assert not c.passed and "2 PHQ-9 item 9 safety alert(s)" in c.detail


def test_phq9_window_edges() -> None:
    prev = T0 - timedelta(hours=30)
    w = phq9_window("since_previous_session", now=T0, day_start=T0, previous_dose_at=prev, max_hours=48)
    assert w.start == prev and "since the previous dosing session" in w.description
    # a previous session older than the cap: the cap wins (and applies to a first session)
    old = T0 - timedelta(hours=49)
    w = phq9_window("since_previous_session", now=T0, day_start=T0, previous_dose_at=old, max_hours=48)
    assert w.start == T0 - timedelta(hours=48) and w.description == "in the last 48 hours"
    w = phq9_window("since_previous_session", now=T0, day_start=T0, previous_dose_at=None, max_hours=24)
    assert w.start == T0 - timedelta(hours=24)
    assert phq9_window(
        "same_day", now=T0, day_start=T0.replace(hour=0), previous_dose_at=prev, max_hours=1
    ).start == T0.replace(hour=0)
    with pytest.raises(ValueError, match="Unknown PHQ-9 window"):
        phq9_window("weekly", now=T0, day_start=T0, previous_dose_at=None, max_hours=48)
    with pytest.raises(ValueError, match="at least 1 hour"):
        phq9_window("same_day", now=T0, day_start=T0, previous_dose_at=None, max_hours=0)


@settings(max_examples=200, deadline=None)
@given(
    item9=st.one_of(st.none(), st.integers(0, 3)),
    open_alerts=st.integers(0, 3),
    waiver=st.sampled_from(["", "  ", "declined"]),
    found=st.booleans(),
)
def test_phq9_open_alert_never_passes(item9: int | None, open_alerts: int, waiver: str, found: bool) -> None:
    c = check_phq9_response(ev(item9) if found else None, waiver, W_TODAY, open_safety_alerts=open_alerts)
    if open_alerts:
        assert not c.passed
    elif found:
        assert c.passed and c.waived_reason is None
    else:
        assert c.passed == bool(waiver.strip())


def test_fasting_esketamine_edges() -> None:
    """No food 2 h, no liquids 30 min [S10]."""
    kw: dict[str, Any] = {"now": T0, "food_minutes": 120, "liquids_minutes": 30}
    ok = check_fasting(
        last_food_at=T0 - timedelta(minutes=120), last_liquid_at=T0 - timedelta(minutes=30), **kw
    )
    assert ok.passed
    bad = check_fasting(
        last_food_at=T0 - timedelta(minutes=119), last_liquid_at=T0 - timedelta(minutes=30), **kw
    )
    assert not bad.passed and "requires 120 min" in bad.detail
    bad = check_fasting(last_food_at=None, last_liquid_at=T0 - timedelta(minutes=29), **kw)
    assert "not recorded" in bad.detail and "requires 30 min" in bad.detail
    assert check_fasting(
        last_food_at=None, last_liquid_at=None, now=T0, food_minutes=None, liquids_minutes=None
    ).passed


def test_medication_flags() -> None:
    c = check_medication_changes(True, ["maoi", "benzodiazepine"])
    assert c.passed and "MAOI" in c.detail and "Benzodiazepine" in c.detail
    assert not check_medication_changes(False, []).passed
    with pytest.raises(ValueError):
        check_medication_changes(True, ["aspirin"])


# ---------------------------------------------------------------- discharge


def discharge(**kw: Any) -> DischargeDecision:
    base: dict[str, Any] = {
        "first_dose_at": T0,
        "now": T0 + timedelta(minutes=120),
        "minimum_minutes": 120,
        "last_moaas": 5,
        "last_dissociation": 0,
        "final_vitals": Reading(sbp=128, dbp=82, hr=72, rr=14, spo2=98),
        "baseline": Reading(sbp=124, dbp=80),
        "escort_present": True,
        "escort_name": "Sam Escort",
        "no_driving_advice_given": True,
        "clinician_signed": True,
    }
    base.update(kw)
    return evaluate_discharge(DischargeInput(**base))


def test_discharge_allowed_at_exactly_minimum() -> None:
    d = discharge()
    assert d.allowed and d.minutes_observed == 120


def test_discharge_refused_before_minimum() -> None:
    d = discharge(now=T0 + timedelta(minutes=119, seconds=59))
    assert not d.allowed
    assert d.reasons[0].startswith("Minimum observation time: 119 of 120 minutes")
    assert d.earliest_at == T0 + timedelta(minutes=120)


def test_discharge_refused_when_minimum_not_configured() -> None:
    assert "clinic has not set one" in discharge(minimum_minutes=None).reasons[0]
    assert "End of administration: it has not been recorded" in discharge(first_dose_at=None).reasons[0]


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"last_moaas": 4}, "Sedation"),
        ({"last_moaas": None}, "Sedation"),
        ({"last_dissociation": 1}, "Dissociation"),
        ({"final_vitals": None}, "Final vitals"),
        ({"final_vitals": Reading(sbp=170, dbp=82, spo2=98)}, "Final vitals"),
        ({"final_vitals": Reading(sbp=128, dbp=82, spo2=91)}, "Final vitals"),
        ({"escort_present": False}, "Escort"),
        ({"escort_name": " "}, "Escort"),
        ({"no_driving_advice_given": False}, "No-driving"),
        ({"clinician_signed": False}, "Signature"),
        ({"open_alerts": 1}, "Alerts"),
    ],
)
def test_discharge_criteria(kw: dict[str, Any], fragment: str) -> None:
    d = discharge(**kw)
    assert not d.allowed and any(r.startswith(fragment) for r in d.reasons)


@settings(max_examples=200, deadline=None)
@given(minimum=st.integers(1, 600), elapsed_s=st.integers(0, 48 * 3600))
def test_property_never_discharged_before_minimum(minimum: int, elapsed_s: int) -> None:
    d = discharge(minimum_minutes=minimum, now=T0 + timedelta(seconds=elapsed_s))
    if elapsed_s < minimum * 60:
        assert not d.allowed
    else:
        assert d.allowed
