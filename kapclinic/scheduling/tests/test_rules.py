from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from kapclinic.scheduling import rules

T0 = dt.datetime(2026, 3, 3, 9, 0, tzinfo=dt.UTC)


def m(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def test_back_to_back_does_not_overlap() -> None:
    assert not rules.overlaps(m(0), m(60), m(60), m(120))
    assert not rules.overlaps(m(60), m(120), m(0), m(60))


def test_one_minute_overlap_counts() -> None:
    assert rules.overlaps(m(0), m(61), m(60), m(120))


def test_containment_and_identity_overlap() -> None:
    assert rules.overlaps(m(0), m(180), m(30), m(60))
    assert rules.overlaps(m(0), m(60), m(0), m(60))


def test_conflicts_name_what_clashes_and_ignore_self() -> None:
    cand = rules.Slot(1, m(0), m(60), staff_id=7, resource_id=3, patient_id=9)
    booked = [
        rules.Slot(1, m(0), m(60), 7, 3, 9),  # itself (rescheduling)
        rules.Slot(2, m(30), m(90), 8, 3, 10),  # same chair
        rules.Slot(3, m(59), m(70), 7, None, 11),  # same clinician
        rules.Slot(4, m(60), m(120), 7, 3, 9),  # back-to-back: fine
        rules.Slot(5, m(10), m(20), 8, 4, 9),  # same patient
    ]
    found = rules.conflicts(cand, booked)
    assert [(c.what, c.other_ref) for c in found] == [("staff", 3), ("resource", 2), ("patient", 5)]


def test_duration_limits_for_dosing() -> None:
    rule = rules.DEFAULT_KINDS[rules.DOSING]
    assert rules.duration_problem(rule, 120) is None
    assert rules.duration_problem(rule, 180) is None
    assert "between 120 and 180" in (rules.duration_problem(rule, 119) or "")
    assert rules.duration_problem(rule, 181) is not None


def test_preparation_instructions_for_dosing_cover_fasting_ride_and_driving() -> None:
    from kapclinic.clinical.protocols import apply_clinic_settings, get_protocol, preparation_lines

    esk = " ".join(rules.preparation_for(rules.DOSING, preparation_lines(get_protocol("esketamine-in-trd"))))
    assert "2 hours" in esk and "30 minutes" in esk and "take you home" in esk and "next day" in esk
    assert "nasal corticosteroid" in esk.lower()
    # IM: no nasal-spray instruction, and no fasting times until the clinic has set them (issue 18)
    im = get_protocol("ketamine-im-racemic")
    text = " ".join(preparation_lines(im))
    assert "nasal" not in text.lower() and "Do not eat" not in text and "take you home" in text
    im = apply_clinic_settings(im, {"fasting.food_minutes": "240", "fasting.liquids_minutes": "60"})
    assert "Do not eat for 4 hours and do not drink anything for 1 hour" in " ".join(preparation_lines(im))
    no_plan = " ".join(rules.preparation_for(rules.DOSING))
    assert "take you home" in no_plan and "2 hours" not in no_plan


def test_retry_delay_grows_and_is_capped() -> None:
    delays = [rules.retry_delay(n).total_seconds() / 60 for n in range(1, 7)]
    assert delays == [5, 15, 45, 135, 240, 240]


intervals = st.tuples(st.integers(0, 600), st.integers(1, 240)).map(lambda t: (m(t[0]), m(t[0] + t[1])))


@given(intervals, intervals)
def test_overlap_is_symmetric(a: tuple[dt.datetime, dt.datetime], b: tuple[dt.datetime, dt.datetime]) -> None:
    assert rules.overlaps(*a, *b) == rules.overlaps(*b, *a)


@given(intervals, st.integers(0, 300))
def test_an_interval_never_clashes_with_one_starting_at_its_end(
    a: tuple[dt.datetime, dt.datetime], length: int
) -> None:
    assert not rules.overlaps(a[0], a[1], a[1], a[1] + dt.timedelta(minutes=length + 1))
