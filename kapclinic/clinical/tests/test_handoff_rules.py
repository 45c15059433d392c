"""Issue 18: the pure rules of the observation clock, recovery start, missed scheduled checks and the
last full set before discharge (property tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from kapclinic.clinical.session_state import (
    DischargeInput,
    administration_end,
    evaluate_discharge,
    final_set_problems,
    missing_scheduled_checks,
    recovery_start_problems,
)
from kapclinic.clinical.vitals import Checkpoint, Reading, due_vitals

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
CHECKPOINTS = (
    Checkpoint("Pre-dose (baseline)", "pre_dose"),
    Checkpoint("~40 min (expected BP peak)", "offset", 40),
    Checkpoint("Pre-discharge", "pre_discharge"),
)


def test_administration_end_per_route() -> None:
    assert administration_end("vial_im", administered_at=T0) == T0
    assert administration_end("vial_iv", administered_at=T0) is None  # not stopped yet
    stop = T0 + timedelta(minutes=40)
    assert administration_end("vial_iv", administered_at=T0, infusion_stopped_at=stop) == stop
    last = T0 + timedelta(minutes=10)
    assert administration_end("nasal_device", administered_at=T0, last_device_at=last) == last
    assert administration_end("lozenge", administered_at=T0) is None
    assert administration_end("lozenge", administered_at=T0, hold_minutes=15) == T0 + timedelta(minutes=15)
    assert administration_end("vial_im", administered_at=None) is None


@settings(max_examples=300, deadline=None)
@given(
    ended_s=st.integers(0, 4 * 3600),
    minimum=st.integers(1, 300),
    now_s=st.integers(0, 10 * 3600),
)
def test_recovery_allowed_exactly_from_end_plus_minimum(ended_s: int, minimum: int, now_s: int) -> None:
    ended = T0 + timedelta(seconds=ended_s)
    now = T0 + timedelta(seconds=now_s)
    problems = recovery_start_problems(ended_at=ended, now=now, minimum_minutes=minimum)
    assert (not problems) == (now >= ended + timedelta(minutes=minimum))
    if problems:
        assert problems[0].startswith("Recovery: ") and f"of the protocol's {minimum} minutes" in problems[0]


@given(now_s=st.integers(0, 10 * 3600))
def test_recovery_refused_without_a_minimum_or_an_end(now_s: int) -> None:
    now = T0 + timedelta(seconds=now_s)
    assert "has not set a minimum" in recovery_start_problems(ended_at=T0, now=now, minimum_minutes=None)[0]
    assert "has not been recorded" in recovery_start_problems(ended_at=None, now=now, minimum_minutes=60)[0]


@settings(max_examples=200, deadline=None)
@given(
    taken=st.lists(st.integers(1, 200), max_size=25, unique=True),
    explained=st.sets(st.sampled_from(list(range(10, 210, 10))), max_size=20),
    recovery_at=st.integers(41, 200),
    interval=st.sampled_from([None, 10, 15]),
)
def test_missing_checks_are_exactly_the_undone_unexplained_checks_before_recovery(
    taken: list[int], explained: set[int], recovery_at: int, interval: int | None
) -> None:
    now = T0 + timedelta(minutes=recovery_at + 20)
    until = T0 + timedelta(minutes=recovery_at)
    items = due_vitals(
        CHECKPOINTS,
        dose_start=T0,
        now=now,
        taken_at=[T0 + timedelta(minutes=m) for m in taken],
        interval_minutes=interval,
        recovery_started=until,
    )
    reasons = dict.fromkeys(explained, "asleep")
    missing = missing_scheduled_checks(items, dose_start=T0, until=until, explained=reasons)
    expected = [
        i
        for i in items
        if i.due_at is not None
        and i.status != "done"
        and i.due_at < until
        and int((i.due_at - T0).total_seconds() // 60) not in explained
    ]
    assert len(missing) == len(expected)
    for sentence, item in zip(missing, expected, strict=True):
        assert sentence.startswith(f"Vitals schedule: the {item.label} check")
    # Explaining every missed check (or doing it) leaves nothing missing.
    every = {int((i.due_at - T0).total_seconds() // 60): "asleep" for i in items if i.due_at is not None}
    assert missing_scheduled_checks(items, dose_start=T0, until=until, explained=every) == ()
    # A blank explanation does not count.
    blank = dict.fromkeys(every, "  ")
    assert len(missing_scheduled_checks(items, dose_start=T0, until=until, explained=blank)) == len(
        [i for i in items if i.due_at is not None and i.status != "done" and i.due_at < until]
    )


@settings(max_examples=300, deadline=None)
@given(
    within=st.integers(1, 120),
    ages=st.tuples(*(st.one_of(st.none(), st.integers(0, 300 * 60)) for _ in range(3))),
)
def test_final_set_is_recent_enough_exactly_when_each_part_is_within_the_interval(
    within: int, ages: tuple[int | None, int | None, int | None]
) -> None:
    now = T0 + timedelta(hours=6)
    at = [None if a is None else now - timedelta(seconds=a) for a in ages]
    problems = final_set_problems(
        now=now,
        within_minutes=within,
        full_vitals_at=at[0],
        ratings_at={"moaas": at[1], "dissociation": at[2]},
        measures_label="BP, HR, SpO2",
    )
    # A missing full set of vitals is refused here; a missing rating by the sedation/dissociation rules.
    bad = [a for i, a in enumerate(ages) if (a is None and i == 0) or (a is not None and a > within * 60)]
    assert len(problems) == len(bad)
    assert all(p.startswith("Final full set: ") for p in problems)


@given(age=st.integers(0, 3600))
def test_final_set_refused_while_the_clinic_has_not_set_the_interval(age: int) -> None:
    now = T0 + timedelta(hours=3)
    problems = final_set_problems(
        now=now,
        within_minutes=None,
        full_vitals_at=now - timedelta(seconds=age),
        ratings_at={"moaas": now, "dissociation": now},
        measures_label="BP",
    )
    assert len(problems) == 1 and "the clinic has not set how recent" in problems[0]


def test_discharge_carries_the_schedule_and_final_set_reasons() -> None:
    base = DischargeInput(
        first_dose_at=T0, now=T0 + timedelta(minutes=200), minimum_minutes=120, last_moaas=5,
        last_dissociation=0, final_vitals=Reading(sbp=120, dbp=80, spo2=98), baseline=None,
        escort_present=True, escort_name="Sam", no_driving_advice_given=True, clinician_signed=True,
    )  # fmt: skip
    assert evaluate_discharge(base).allowed
    d = evaluate_discharge(
        DischargeInput(**{**base.__dict__, "missing_checks": ("Vitals schedule: x",), "final_set": ("F",)})
    )
    assert not d.allowed and d.reasons == ("Vitals schedule: x", "F")
