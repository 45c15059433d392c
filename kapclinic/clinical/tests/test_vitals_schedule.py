"""Which reading counts for which scheduled vitals check (issue 18).

The rule (docs/clinical-reference.md#vitals-checks): each reading goes to the timed check it is nearest to,
counting from ``early`` (5 min) before a check's due time; a reading equally near two checks goes to the
earlier one; each check takes one reading, the nearest. The label's blood-pressure checkpoints are "before
dosing, about 40 minutes after dosing, then as clinically warranted" [S4][S7] ref §2.1; the IV schedule is
every 10 minutes [S15] ref §2.2.

The first examples reproduce the defect: with a 15-minute interval (the demo clinic's esketamine value,
docs/clinical-reference-dosing.md §6) a reading taken exactly at +40 was counted for the +45 check and the
~40 check read as missed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from kapclinic.clinical.vitals import Checkpoint, DueItem, assign_readings, due_vitals

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # the first dose

ESKETAMINE = (  # the label's checkpoints, as in esketamine-in-trd.v1.1.0.json
    Checkpoint("Pre-dose (baseline)", "pre_dose"),
    Checkpoint("~40 min after dosing", "offset", 40),
    Checkpoint("Pre-discharge", "pre_discharge"),
)
IV = (  # as in ketamine-iv-racemic.v1.1.0.json (interval 10 min)
    Checkpoint("Pre-dose (baseline)", "pre_dose"),
    Checkpoint("~40 min (expected BP peak)", "offset", 40),
    Checkpoint("Pre-discharge", "pre_discharge"),
)
LABEL_40 = "~40 min after dosing"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def by_label(items: Sequence[DueItem]) -> dict[str, DueItem]:
    return {i.label: i for i in items}


def statuses(items: dict[str, DueItem]) -> dict[str, str]:
    return {label: i.status for label, i in items.items()}


def esk(
    taken: Sequence[float], now: float, recovery: float | None = None, interval: int | None = 15
) -> dict[str, DueItem]:
    return by_label(
        due_vitals(
            ESKETAMINE,
            dose_start=T0,
            now=at(now),
            taken_at=[at(m) for m in taken],
            interval_minutes=interval,
            recovery_started=None if recovery is None else at(recovery),
        )
    )


# ------------------------------------------------------------------ worked examples: esketamine


def test_a_reading_exactly_at_40_is_the_40_minute_check_not_the_45_minute_one() -> None:
    items = esk([-10, 15, 30, 40], now=44)
    assert items[LABEL_40].status == "done" and items[LABEL_40].done_at == at(40)
    assert items["+45 min"].status == "due"  # still to do: it was never the +40 reading's check
    items = esk([-10, 15, 30, 40, 45], now=50)
    assert items[LABEL_40].done_at == at(40) and items["+45 min"].done_at == at(45)


def test_esketamine_label_day_on_time_with_a_15_minute_interval_leaves_nothing_missed() -> None:
    recovery = 125
    checks = [15, 30, 40, 45, 60, 75, 90, 105, 120]
    items = esk([-10, *checks, recovery + 5], now=recovery + 10, recovery=recovery)
    assert statuses(items) == {
        "Pre-dose (baseline)": "done",
        "+15 min": "done",
        "+30 min": "done",
        LABEL_40: "done",
        "+45 min": "done",
        "+60 min": "done",
        "+75 min": "done",
        "+90 min": "done",
        "+105 min": "done",
        "+120 min": "done",
        "Pre-discharge": "done",
    }
    # Every reading counted once, each for the check at its own minute; the one in recovery is the
    # pre-discharge reading, and no interval check is listed from the start of recovery on.
    assert [i.done_at for i in items.values()] == [at(m) for m in (-10, *checks, recovery + 5)]


def test_esketamine_a_reading_between_40_and_45_goes_to_the_nearer_check_ties_to_the_earlier() -> None:
    assert esk([42], now=55)[LABEL_40].done_at == at(42)
    assert esk([42], now=55)["+45 min"].status == "overdue"
    assert esk([43], now=55)["+45 min"].done_at == at(43)
    assert esk([43], now=55)[LABEL_40].status == "overdue"
    tie = esk([42.5], now=55)  # 2.5 minutes from each: the earlier check, which can no longer be on time
    assert tie[LABEL_40].done_at == at(42.5) and tie["+45 min"].status == "overdue"


def test_esketamine_tolerance_up_to_5_minutes_early_and_late_until_another_check_is_nearer() -> None:
    no_interval = esk([35], now=60, interval=None)  # 5 minutes early: counts
    assert no_interval[LABEL_40].done_at == at(35)
    assert esk([34], now=60, interval=None)[LABEL_40].status == "overdue"  # 6 minutes early: does not
    assert esk([90], now=95, interval=None)[LABEL_40].done_at == at(90)  # late, but the only check
    assert esk([36], now=38)[LABEL_40].done_at == at(36)  # with +30 nearer by 6 vs 4: still the ~40
    assert esk([34], now=38)["+30 min"].done_at == at(34)  # nearer the +30 check


def test_each_check_takes_one_reading_the_nearest_and_a_reading_counts_once() -> None:
    items = esk([38, 41], now=55)
    assert items[LABEL_40].done_at == at(41)  # 1 minute off beats 2
    assert items["+45 min"].status == "overdue"  # the +38 reading is an extra one, not the +45 check
    items = esk([39, 41], now=55)  # equally near: the earlier reading
    assert items[LABEL_40].done_at == at(39)


def test_recovery_readings_are_the_pre_discharge_reading_only() -> None:
    items = esk([-10, 15, 30, 40, 45, 60, 75, 90, 105, 120, 121], now=130, recovery=120.5)
    assert items["+120 min"].done_at == at(120)
    assert items["Pre-discharge"].done_at == at(121)
    assert "+135 min" not in items  # interval checks stop where recovery starts
    before = esk([-10, 15, 30, 40], now=44)
    assert before["Pre-dose (baseline)"].done_at == at(-10)
    assert esk([0], now=3)["Pre-dose (baseline)"].done_at == at(0)  # at the dose start: the baseline


# ------------------------------------------------------------------ worked examples: IV every 10 minutes


def iv(taken: Sequence[float], now: float, recovery: float | None = None) -> dict[str, DueItem]:
    return by_label(
        due_vitals(
            IV,
            dose_start=T0,
            now=at(now),
            taken_at=[at(m) for m in taken],
            interval_minutes=10,
            recovery_started=None if recovery is None else at(recovery),
        )
    )


def test_iv_schedule_on_time() -> None:
    items = iv([-15, 10, 20, 30, 40, 50], now=52)
    assert statuses(items) == {
        "Pre-dose (baseline)": "done",
        "+10 min": "done",
        "+20 min": "done",
        "+30 min": "done",
        "~40 min (expected BP peak)": "done",  # the label's +40 is one check with the interval's +40
        "+50 min": "done",
        "+60 min": "upcoming",
        "Pre-discharge": "upcoming",
    }
    assert items["~40 min (expected BP peak)"].done_at == at(40)


def test_iv_readings_a_few_minutes_off() -> None:
    items = iv([9, 22, 35, 44], now=46)
    assert items["+10 min"].done_at == at(9)
    assert items["+20 min"].done_at == at(22)
    assert items["+30 min"].done_at == at(35)  # halfway between +30 and ~40: the earlier check
    assert items["~40 min (expected BP peak)"].done_at == at(44)
    items = iv([36], now=46)
    assert items["~40 min (expected BP peak)"].done_at == at(36) and items["+30 min"].status == "overdue"


def test_assign_readings_direct() -> None:
    dues = [at(40), at(45)]
    assert assign_readings(dues, [at(40)], early=timedelta(minutes=5)) == {0: at(40)}
    assert assign_readings(dues, [at(44), at(46)], early=timedelta(minutes=5)) == {1: at(44)}
    assert assign_readings(dues, [at(30)], early=timedelta(minutes=5)) == {}


# ------------------------------------------------------------------ properties

intervals = st.sampled_from([None, 5, 10, 15, 20, 30])
fixed_offsets = st.sets(st.integers(1, 180), max_size=3)
seconds = st.integers(-30 * 60, 240 * 60)


def schedule(offsets: set[int]) -> tuple[Checkpoint, ...]:
    return (
        Checkpoint("Pre-dose", "pre_dose"),
        *(Checkpoint(f"fixed {m}", "offset", m) for m in sorted(offsets)),
        Checkpoint("Pre-discharge", "pre_discharge"),
    )


def run(
    offsets: set[int], interval: int | None, taken: Sequence[int], now: int, recovery: int | None
) -> tuple[DueItem, ...]:
    return due_vitals(
        schedule(offsets),
        dose_start=T0,
        now=T0 + timedelta(seconds=now),
        taken_at=[T0 + timedelta(seconds=s) for s in taken],
        interval_minutes=interval,
        recovery_started=None if recovery is None else T0 + timedelta(seconds=recovery),
    )


def done_keys(items: Sequence[DueItem]) -> set[tuple[str, datetime | None]]:
    return {(i.label, i.due_at) for i in items if i.status == "done"}


@settings(max_examples=300, deadline=None)
@given(
    offsets=fixed_offsets,
    interval=intervals,
    taken=st.lists(seconds, max_size=20),
    recovery=st.one_of(st.none(), st.integers(1, 240 * 60)),
)
def test_no_reading_is_counted_twice(
    offsets: set[int], interval: int | None, taken: list[int], recovery: int | None
) -> None:
    items = run(offsets, interval, taken, 240 * 60, recovery)
    used = [i.done_at for i in items if i.status == "done"]
    assert len(used) == len(set(used))
    assert all(u in {T0 + timedelta(seconds=s) for s in taken} for u in used)


@settings(max_examples=300, deadline=None)
@given(
    offsets=fixed_offsets,
    interval=intervals,
    taken=st.lists(seconds, max_size=20),
    pick=st.integers(0, 1000),
    recovery=st.one_of(st.none(), st.integers(1, 240 * 60)),
)
def test_a_reading_exactly_at_a_checks_due_time_satisfies_that_check(
    offsets: set[int], interval: int | None, taken: list[int], pick: int, recovery: int | None
) -> None:
    now = 240 * 60
    timed = [
        i
        for i in run(offsets, interval, taken, now, recovery)
        if i.due_at is not None and (recovery is None or i.due_at < T0 + timedelta(seconds=recovery))
    ]
    if not timed:
        return
    check = timed[pick % len(timed)]
    assert check.due_at is not None
    exact = int((check.due_at - T0).total_seconds())
    after = {(i.label, i.due_at): i for i in run(offsets, interval, [*taken, exact], now, recovery)}
    assert after[(check.label, check.due_at)].status == "done"
    assert after[(check.label, check.due_at)].done_at == check.due_at


@settings(max_examples=300, deadline=None)
@given(
    offsets=fixed_offsets,
    interval=intervals,
    taken=st.lists(seconds, max_size=20),
    extra=seconds,
    recovery=st.one_of(st.none(), st.integers(1, 240 * 60)),
    now=st.integers(0, 240 * 60),
)
def test_adding_a_reading_never_undoes_a_done_check(
    offsets: set[int], interval: int | None, taken: list[int], extra: int, recovery: int | None, now: int
) -> None:
    taken = [s for s in taken if s <= now]
    extra = min(extra, now)
    before = done_keys(run(offsets, interval, taken, now, recovery))
    after = done_keys(run(offsets, interval, [*taken, extra], now, recovery))
    assert before <= after


@settings(max_examples=200, deadline=None)
@given(
    offsets=fixed_offsets,
    interval=intervals,
    taken=st.lists(seconds, max_size=20),
    now=st.integers(0, 240 * 60),
    later=st.integers(0, 120 * 60),
)
def test_time_passing_never_undoes_a_done_check(
    offsets: set[int], interval: int | None, taken: list[int], now: int, later: int
) -> None:
    taken = [s for s in taken if s <= now]
    assert done_keys(run(offsets, interval, taken, now, None)) <= done_keys(
        run(offsets, interval, taken, now + later, None)
    )


@settings(max_examples=300, deadline=None)
@given(
    offsets=fixed_offsets,
    interval=intervals,
    taken=st.lists(seconds, max_size=20),
    recovery=st.one_of(st.none(), st.integers(1, 240 * 60)),
)
def test_every_done_check_holds_a_reading_nearest_to_it(
    offsets: set[int], interval: int | None, taken: list[int], recovery: int | None
) -> None:
    """The model, checked by brute force: a timed check is done exactly when some timed reading has it
    as its nearest eligible check, and it holds the nearest of those readings."""
    now = 240 * 60
    items = run(offsets, interval, taken, now, recovery)
    timed = [i for i in items if i.due_at is not None]
    early = timedelta(minutes=5)
    end = None if recovery is None else T0 + timedelta(seconds=recovery)
    readings = [T0 + timedelta(seconds=s) for s in taken]
    readings = [t for t in readings if t > T0 and (end is None or t < end)]

    def nearest(t: datetime) -> DueItem | None:
        eligible = [i for i in timed if i.due_at is not None and t >= i.due_at - early]
        if not eligible:
            return None
        return min(eligible, key=lambda i: (abs(t - i.due_at), i.due_at))  # type: ignore[operator]

    for item in timed:
        mine = [t for t in readings if nearest(t) is item]
        if mine:
            assert item.status == "done"
            assert item.done_at == min(mine, key=lambda t: (abs(t - item.due_at), t))  # type: ignore[operator]
        else:
            assert item.status != "done"
