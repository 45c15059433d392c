"""Vitals: plausibility, alert rules at their edges, due-reminders, properties."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kapclinic.clinical.vitals import (
    DEFAULT_THRESHOLDS,
    LOINC,
    Checkpoint,
    DueItem,
    Reading,
    Vital,
    baseline_within_limits,
    check_dissociation,
    check_moaas,
    check_plausible,
    due_vitals,
    evaluate_reading,
    evaluate_sedation,
    peak_rise,
)

T0 = datetime(2026, 1, 5, 9, 0)


def rules(reading: Reading, **kw: Any) -> set[str]:
    return {a.rule for a in evaluate_reading(reading, **kw)}


# ---------------------------------------------------------------- plausibility


@pytest.mark.parametrize(
    ("reading", "field", "fragment"),
    [
        (Reading(sbp=300, dbp=20), "sbp", "Systolic BP of 300 mmHg is outside the plausible range"),
        (Reading(spo2=101), "spo2", "SpO2 of 101 % is outside the plausible range 50–100"),
        (Reading(hr=0), "hr", "Heart rate of 0 /min is outside"),
        (Reading(rr=0), "rr", "Respiratory rate of 0"),
        (Reading(sbp=120), "dbp", "needs both systolic and diastolic"),
        (Reading(sbp=80, dbp=85), "dbp", "must be at least 10 mmHg below"),
        (Reading(), "__all__", "Enter at least one vital sign"),
    ],
)
def test_implausible_values_refused(reading: Reading, field: str, fragment: str) -> None:
    errors = check_plausible(reading)
    assert any(e.field == field and fragment in e.message for e in errors), errors


def test_plausible_values_accepted() -> None:
    assert check_plausible(Reading(sbp=120, dbp=80, hr=70, rr=14, spo2=98)) == ()
    assert check_plausible(Reading(sbp=260, dbp=160, hr=250, rr=60, spo2=100)) == ()
    assert check_plausible(Reading(sbp=50, dbp=20, hr=20, rr=4, spo2=50)) == ()


def test_loinc_codes() -> None:
    assert LOINC[Vital.SBP].loinc == "8480-6" and LOINC[Vital.SPO2].loinc == "59408-5"
    assert LOINC[Vital.HR].ucum == "/min"


def test_scales() -> None:
    assert check_moaas(5) is None and check_moaas(0) is None
    assert "0 to 5" in (check_moaas(6) or "")
    assert check_dissociation(4) is None and "0 to 4" in (check_dissociation(-1) or "")


# ---------------------------------------------------------------- alert edges


def test_predose_bp_edges() -> None:
    """Consider delaying if BP > 140/90 [S9]: 140/90 passes, 141 or 91 flags."""
    assert rules(Reading(sbp=140, dbp=90), phase="pre_dose") == set()
    assert rules(Reading(sbp=141, dbp=90), phase="pre_dose") == {"predose_sbp_above"}
    assert rules(Reading(sbp=140, dbp=91), phase="pre_dose") == {"predose_dbp_above"}
    assert baseline_within_limits(Reading(sbp=140, dbp=90)) == ()
    assert baseline_within_limits(Reading(sbp=152, dbp=94))
    assert baseline_within_limits(Reading(hr=70)) == ("Baseline blood pressure has not been recorded.",)


def test_rise_from_baseline_edges() -> None:
    """Large rise >= 40 systolic / >= 25 diastolic [S3]."""
    base = Reading(sbp=120, dbp=80)
    assert rules(Reading(sbp=159, dbp=104), baseline=base) == set()
    assert rules(Reading(sbp=160, dbp=104), baseline=base) == {"sbp_rise_at_least"}
    assert rules(Reading(sbp=159, dbp=105), baseline=base) == {"dbp_rise_at_least"}
    # absolute pre-dose rule does not apply during the session
    assert rules(Reading(sbp=150, dbp=95), baseline=base) == set()


def test_spo2_edges() -> None:
    assert rules(Reading(spo2=93)) == set()
    assert rules(Reading(spo2=92)) == {"spo2_below"}


def test_unset_rules_are_off_until_clinic_sets_them() -> None:
    assert rules(Reading(hr=180, rr=5)) == set()
    t = DEFAULT_THRESHOLDS.with_values(hr_above=120, hr_below=50, rr_below=10, rr_above=30, sbp_above=180)
    assert rules(Reading(hr=120), thresholds=t) == set()
    assert rules(Reading(hr=121), thresholds=t) == {"hr_above"}
    assert rules(Reading(hr=50), thresholds=t) == set()
    assert rules(Reading(hr=49), thresholds=t) == {"hr_below"}
    assert rules(Reading(rr=9), thresholds=t) == {"rr_below"}
    assert rules(Reading(rr=31), thresholds=t) == {"rr_above"}
    assert rules(Reading(sbp=181, dbp=90), thresholds=t) == {"sbp_above"}
    assert t.hr_above.source == "clinic setting"
    with pytest.raises(KeyError):
        DEFAULT_THRESHOLDS.with_values(nope=1)


def test_sedation_alert() -> None:
    assert [a.rule for a in evaluate_sedation(0)] == ["moaas_at_or_below"]
    assert evaluate_sedation(1) == ()


def test_alert_messages_cite_sources() -> None:
    (a,) = evaluate_reading(Reading(spo2=90))
    assert a.source.startswith("[S11a]") and a.severity == "critical" and "SpO2 90 is below 93" in a.message


def test_peak_rise() -> None:
    assert peak_rise(Reading(sbp=120), [Reading(sbp=130), Reading(sbp=150), Reading(hr=80)], Vital.SBP) == 30
    assert peak_rise(Reading(), [Reading(sbp=130)], Vital.SBP) is None


@settings(max_examples=200, deadline=None)
@given(v=st.integers(50, 260), delta=st.integers(0, 50), base=st.integers(60, 200))
def test_property_bp_alerts_monotonic(v: int, delta: int, base: int) -> None:
    """If a value alerts, any higher value alerts too (absolute and rise rules)."""
    b = Reading(sbp=base, dbp=60)
    lo = rules(Reading(sbp=v, dbp=60), baseline=b) | rules(Reading(sbp=v, dbp=60), phase="pre_dose")
    hi = rules(Reading(sbp=v + delta, dbp=60), baseline=b) | rules(
        Reading(sbp=v + delta, dbp=60), phase="pre_dose"
    )
    assert lo <= hi


@settings(max_examples=100, deadline=None)
@given(v=st.integers(50, 100), delta=st.integers(0, 50))
def test_property_spo2_alert_monotonic(v: int, delta: int) -> None:
    if "spo2_below" in rules(Reading(spo2=v)):
        assert "spo2_below" in rules(Reading(spo2=max(50, v - delta)))


# ---------------------------------------------------------------- due reminders

ESK = (
    Checkpoint("Pre-dose", "pre_dose"),
    Checkpoint("40 min", "offset", 40),
    Checkpoint("Pre-discharge", "pre_discharge"),
)


def statuses(items: Sequence[DueItem]) -> dict[str, str]:
    return {i.label: i.status for i in items}


def test_due_reminders_esketamine() -> None:
    pre = T0 - timedelta(minutes=10)
    s = statuses(due_vitals(ESK, dose_start=None, now=T0, taken_at=[]))
    assert s == {"Pre-dose": "due", "Pre-discharge": "upcoming"}
    s = statuses(due_vitals(ESK, dose_start=T0, now=T0 + timedelta(minutes=20), taken_at=[pre]))
    assert s == {"Pre-dose": "done", "40 min": "upcoming", "Pre-discharge": "upcoming"}
    s = statuses(due_vitals(ESK, dose_start=T0, now=T0 + timedelta(minutes=36), taken_at=[pre]))
    assert s["40 min"] == "due"
    s = statuses(due_vitals(ESK, dose_start=T0, now=T0 + timedelta(minutes=46), taken_at=[pre]))
    assert s["40 min"] == "overdue"
    s = statuses(
        due_vitals(
            ESK, dose_start=T0, now=T0 + timedelta(minutes=46), taken_at=[pre, T0 + timedelta(minutes=41)]
        )
    )
    assert s["40 min"] == "done"
    rec = T0 + timedelta(minutes=100)
    s = statuses(due_vitals(ESK, dose_start=T0, now=rec, taken_at=[pre], recovery_started=rec))
    assert s["Pre-discharge"] == "due"
    s = statuses(due_vitals(ESK, dose_start=T0, now=rec, taken_at=[pre, rec], recovery_started=rec))
    assert s["Pre-discharge"] == "done"


def test_due_reminders_interval() -> None:
    items = due_vitals(
        (Checkpoint("Pre-dose", "pre_dose"),),
        dose_start=T0,
        now=T0 + timedelta(minutes=26),
        taken_at=[T0 + timedelta(minutes=10)],
        interval_minutes=10,
    )
    s = statuses(items)
    assert s == {"Pre-dose": "overdue", "+10 min": "done", "+20 min": "overdue", "+30 min": "due"}
