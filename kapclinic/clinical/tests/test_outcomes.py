"""Worked examples and properties for outcomes (ref §4.4 response/remission, §4.5 reliable change)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kapclinic.clinical.outcomes import (
    DEFAULT_OUTCOME_SETTINGS,
    Measurement,
    ReliableChangeCategory,
    change_from_baseline,
    outcome_settings,
    percent_change,
    relapse_flags,
    reliable_change,
    s_diff,
    trajectory,
)

PHQ9 = DEFAULT_OUTCOME_SETTINGS["PHQ-9"]
GAD7 = DEFAULT_OUTCOME_SETTINGS["GAD-7"]
PCL5 = DEFAULT_OUTCOME_SETTINGS["PCL-5"]
IMPROVED = ReliableChangeCategory.IMPROVED
NO_CHANGE = ReliableChangeCategory.NO_CHANGE
WORSE = ReliableChangeCategory.DETERIORATED
T0 = datetime(2026, 1, 5, 9, 0)


# ---------------------------------------------------------------- percent change and response


@pytest.mark.parametrize(
    ("baseline", "followup", "expected"),
    [(20, 10, -50.0), (10, 15, 50.0), (7, 7, 0.0), (0, 0, None), (0, 5, None), (3, 0, -100.0)],
)
def test_percent_change_only_when_baseline_above_zero(
    baseline: int, followup: int, expected: float | None
) -> None:
    assert percent_change(baseline, followup) == expected


RESPONSE = [
    # instrument, baseline, follow-up, response
    ("PHQ-9", 20, 10, True),  # exactly 50 %
    ("PHQ-9", 20, 11, False),  # 45 %
    ("PHQ-9", 15, 7, True),  # 53.3 %
    ("PHQ-9", 15, 8, False),  # 46.7 %
    ("PHQ-9", 1, 0, True),  # 100 %
    ("PHQ-9", 0, 0, None),  # percent rule not applicable at baseline 0
    ("GAD-7", 12, 6, True),
    ("GAD-7", 12, 7, False),
    ("PCL-5", 50, 40, True),  # 10-point drop [S59a]
    ("PCL-5", 50, 41, False),
    ("PCL-5", 0, 0, False),  # point rule applies at baseline 0
]


@pytest.mark.parametrize(("key", "baseline", "followup", "expected"), RESPONSE)
def test_response_edges(key: str, baseline: int, followup: int, expected: bool | None) -> None:
    outcome = change_from_baseline(baseline, followup, DEFAULT_OUTCOME_SETTINGS[key])
    assert outcome.response is expected


def test_percent_or_point_rule() -> None:
    both = outcome_settings("PCL-5", response_min_percent_drop=50.0)
    assert change_from_baseline(60, 45, both).response is True  # 15 points, 25 %
    assert change_from_baseline(16, 8, both).response is True  # 8 points, 50 %
    assert change_from_baseline(16, 9, both).response is False


REMISSION = [
    ("PHQ-9", 4, True), ("PHQ-9", 5, False), ("GAD-7", 4, True), ("GAD-7", 5, False),
    ("PCL-5", 32, True), ("PCL-5", 33, False),
]  # fmt: skip


@pytest.mark.parametrize(("key", "followup", "remission"), REMISSION)
def test_remission_edges(key: str, followup: int, remission: bool) -> None:
    assert change_from_baseline(40, followup, DEFAULT_OUTCOME_SETTINGS[key]).remission is remission


# ---------------------------------------------------------------- reliable change (ref §4.5)


@pytest.mark.parametrize(
    ("key", "rc_points"),
    [("PHQ-9", 6.1), ("GAD-7", 5.6), ("PCL-5", 13.7)],  # ref §4.5 table: 6.1, 5.6, 13.8 (rounded inputs)
)
def test_rc_points_match_reference_table(key: str, rc_points: float) -> None:
    settings = DEFAULT_OUTCOME_SETTINGS[key]
    assert 1.96 * s_diff(settings.rci_sd, settings.rci_r) == pytest.approx(rc_points, abs=0.06)


RCI = [
    ("PHQ-9", 12, 6, NO_CHANGE),  # 6 < 6.10
    ("PHQ-9", 12, 5, IMPROVED),  # 7 > 6.10
    ("PHQ-9", 5, 12, WORSE),
    ("GAD-7", 15, 10, NO_CHANGE),  # 5 < 5.59
    ("GAD-7", 15, 9, IMPROVED),
    ("PCL-5", 50, 37, NO_CHANGE),  # 13 < 13.75
    ("PCL-5", 50, 36, IMPROVED),
    ("PCL-5", 30, 44, WORSE),
]


@pytest.mark.parametrize(("key", "baseline", "followup", "category"), RCI)
def test_reliable_change_edges(
    key: str, baseline: int, followup: int, category: ReliableChangeCategory
) -> None:
    rc = reliable_change(baseline, followup, DEFAULT_OUTCOME_SETTINGS[key])
    assert rc.category is category
    assert rc.rci == pytest.approx((followup - baseline) / rc.s_diff)


def test_rci_worked_example() -> None:
    rc = reliable_change(20, 10, PHQ9)
    assert rc.s_diff == pytest.approx(5.5 * math.sqrt(2 * 0.16))
    assert rc.rci == pytest.approx(-10 / 3.1113, abs=1e-3)
    assert rc.rc_points == pytest.approx(6.098, abs=1e-3)


def test_sd_r_and_fixed_points_are_configurable() -> None:
    local = outcome_settings("PHQ-9", rci_sd=5.5, rci_r=0.737)  # ref §4.5 row 3: RC 7.8
    assert reliable_change(12, 5, local).category is NO_CHANGE
    assert reliable_change(12, 4, local).category is IMPROVED
    marx = outcome_settings("PCL-5", rc_min_points=15)  # Marx 2022 sample 1 [S57]
    assert reliable_change(50, 36, marx).category is NO_CHANGE
    assert reliable_change(50, 35, marx).category is IMPROVED
    assert reliable_change(50, 35, marx).rc_points == 15


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rci_sd": 0}, "SD must be greater than 0"),
        ({"rci_r": 1.0}, "reliability r must be at least 0 and below 1"),
        ({"rci_z": 0}, "z must be greater than 0"),
        ({"response_min_percent_drop": None}, "needs a percent drop, a point drop, or both"),
        ({"response_min_percent_drop": 150}, "percent drop must be above 0 and at most 100"),
        ({"response_min_point_drop": 0}, "point drop must be greater than 0"),
        ({"rc_min_points": -1}, "minimum points must be greater than 0"),
        ({"relapse_consecutive": 0}, "at least 1 follow-up"),
    ],
)
def test_bad_settings_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        outcome_settings("PHQ-9", **overrides)


def test_unknown_instrument_settings() -> None:
    with pytest.raises(ValueError, match="choose one of PHQ-9, GAD-7, PCL-5"):
        outcome_settings("BDI")


def test_clinically_significant_change() -> None:
    assert change_from_baseline(14, 4, PHQ9).clinically_significant is True  # reliable and crossed < 5
    assert change_from_baseline(14, 5, PHQ9).clinically_significant is False  # not below cut-off
    assert change_from_baseline(9, 4, PHQ9).clinically_significant is False  # change not reliable
    assert change_from_baseline(4, 0, PHQ9).clinically_significant is False  # started below cut-off


def test_negative_totals_refused() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        change_from_baseline(-1, 3, PHQ9)


# ---------------------------------------------------------------- trajectories and relapse


def series(*totals: int) -> list[Measurement]:
    return [Measurement(at=T0 + timedelta(weeks=i), total=t, sessions_before=i) for i, t in enumerate(totals)]


def test_trajectory_worked_example() -> None:
    traj = trajectory(series(20, 15, 10, 4, 12, 9), PHQ9)
    assert traj.baseline is not None and traj.baseline.total == 20
    assert [f.outcome.change for f in traj.followups] == [-5, -10, -16, -8, -11]
    assert [f.outcome.response for f in traj.followups] == [False, True, True, False, True]
    assert traj.first_response is not None and traj.first_response.measurement.total == 10
    assert traj.sessions_to_response == 2
    assert [r.measurement.total for r in traj.relapses] == [12]
    assert traj.relapsed and traj.responded
    assert traj.latest is not None and traj.latest.outcome.remission is False


def test_relapse_needs_consecutive_misses_when_configured() -> None:
    two = outcome_settings("PHQ-9", relapse_consecutive=2)
    assert trajectory(series(20, 10, 12, 9), two).relapses == ()
    assert [r.measurement.total for r in trajectory(series(20, 10, 12, 13), two).relapses] == [13]


@pytest.mark.parametrize(
    ("verdicts", "consecutive", "expected"),
    [
        ([False, False], 1, (False, False)),  # never responded: never relapses
        ([True, False], 1, (False, True)),
        ([True, None], 1, (False, True)),  # not applicable counts as not responding
        ([True, False, True, False], 1, (False, True, False, True)),  # second episode
        ([True, False, False, False], 1, (False, True, False, False)),  # one relapse per loss
        ([True, False, True, False, False], 2, (False, False, False, False, True)),
    ],
)
def test_relapse_flags(verdicts: list[bool | None], consecutive: int, expected: tuple[bool, ...]) -> None:
    assert relapse_flags(verdicts, consecutive) == expected


def test_trajectory_sorts_and_honours_baseline_index() -> None:
    points = list(reversed(series(9, 20, 10)))
    traj = trajectory(points, PHQ9, baseline_index=1)
    assert traj.baseline is not None and traj.baseline.total == 20
    assert [f.measurement.total for f in traj.followups] == [10]
    with pytest.raises(ValueError, match="baseline index"):
        trajectory(points, PHQ9, baseline_index=3)


def test_empty_and_baseline_only() -> None:
    assert trajectory([], PHQ9).baseline is None
    only = trajectory(series(12), PHQ9)
    assert only.followups == () and only.latest is None and only.sessions_to_response is None


# ---------------------------------------------------------------- properties

totals = st.integers(0, 27)


@given(totals, totals)
def test_percent_change_defined_iff_baseline_positive(baseline: int, followup: int) -> None:
    outcome = change_from_baseline(baseline, followup, PHQ9)
    assert (outcome.percent_change is None) is (baseline == 0)
    assert outcome.change == followup - baseline
    if outcome.response:
        assert outcome.percent_change is not None and outcome.percent_change <= -50.0


@given(totals, totals, totals)
def test_response_is_monotonic_in_followup(baseline: int, a: int, b: int) -> None:
    low, high = sorted((a, b))
    if change_from_baseline(baseline, high, PHQ9).response:
        assert change_from_baseline(baseline, low, PHQ9).response


@given(totals, totals)
def test_reliable_change_is_antisymmetric(a: int, b: int) -> None:
    forward, back = reliable_change(a, b, PHQ9), reliable_change(b, a, PHQ9)
    assert forward.rci == pytest.approx(-back.rci)
    flip = {IMPROVED: WORSE, WORSE: IMPROVED, NO_CHANGE: NO_CHANGE}
    assert back.category is flip[forward.category]


@given(st.lists(st.one_of(st.none(), st.booleans()), max_size=20), st.integers(1, 3))
def test_relapses_only_after_a_response(verdicts: list[bool | None], consecutive: int) -> None:
    flags = relapse_flags(verdicts, consecutive)
    assert len(flags) == len(verdicts)
    for i, flag in enumerate(flags):
        if flag:
            assert any(verdicts[:i]) and not verdicts[i]
    assert sum(flags) <= sum(1 for v in verdicts if v)


@given(st.lists(st.integers(0, 80), min_size=1, max_size=12))
def test_trajectory_followups_count(values: list[int]) -> None:
    traj = trajectory(series(*values), PCL5)
    assert len(traj.followups) == len(values) - 1
    if traj.first_response is not None:
        assert traj.first_response.outcome.response
