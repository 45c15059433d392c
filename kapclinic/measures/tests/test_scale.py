"""Issue #7: a submission costs the same however long the episode's history is, with the same outcomes
as the full recompute; the outcomes dashboard is cached until the clinic's data changes."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.measures import selectors, services
from kapclinic.measures.models import Episode, InstrumentResponse, OutcomeConfig
from kapclinic.measures.tests.test_measures import phq, submit
from kapclinic.testing.factories import make_patient

COLUMNS = (
    "id",
    "is_baseline",
    "change",
    "percent_change",
    "is_response",
    "is_remission",
    "reliable_change",
    "is_relapse",
)
SUMMARY = (
    "baseline_id",
    "baseline_total",
    "latest_total",
    "followup_count",
    "responded",
    "sessions_to_response",
    "latest_remission",
    "relapsed",
)


def _state(episode: Episode) -> tuple[Any, ...]:
    rows = tuple(episode.responses.order_by("completed_at", "id").values_list(*COLUMNS))
    summary = tuple(Episode.objects.filter(pk=episode.pk).values_list(*SUMMARY).get())
    return rows, summary


def _response_updates(ctx: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].lstrip().upper().startswith("UPDATE") and "measures_instrumentresponse" in q["sql"]
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("seed,consecutive", [(1, 1), (2, 2), (3, 3), (4, 1)])
def test_incremental_outcomes_equal_full_recompute_on_random_history(
    world: Any, clock_frozen: Any, seed: int, consecutive: int
) -> None:
    rng = random.Random(seed)
    if consecutive != 1:
        OutcomeConfig.objects.create(
            clinic=world.clinic,
            instrument="PHQ-9",
            remission_below=5,
            response_min_percent_drop=50,
            rci_sd=5.0,
            rci_r=0.84,
            relapse_consecutive=consecutive,
        )
    start = clock.now() - dt.timedelta(days=400)
    when = start
    for _ in range(30):
        if rng.random() < 0.2:  # a back-dated paper entry somewhere in the past (sometimes before baseline)
            at = start + dt.timedelta(days=rng.randint(-10, (when - start).days))
        else:
            when += dt.timedelta(days=rng.randint(0, 9))
            at = when
        submit(world, phq(rng.choice([3, 4, 6, 9, 10, 12, 14, 18, 20, 24])), completed_at=at)
        episode = Episode.objects.get()
        incremental = _state(episode)
        services.episode_recompute(episode)  # the full recompute from the pure trajectory
        assert _state(episode) == incremental
    assert InstrumentResponse.objects.filter(is_relapse=True).exists() or seed == 3


@pytest.mark.django_db
def test_submission_writes_only_the_new_response(world: Any, clock_frozen: Any) -> None:
    start = clock.now() - dt.timedelta(days=200)
    for i, total in enumerate([20, 9, 8, 16, 7, 18, 6, 5, 4, 12]):
        submit(world, phq(total), completed_at=start + dt.timedelta(days=7 * i))
    before = list(InstrumentResponse.objects.order_by("id").values_list(*COLUMNS))
    with CaptureQueriesContext(connection) as ctx:
        new = submit(world, phq(3))
    # The new row is inserted with its outcome (worked out before the INSERT): no response is updated.
    assert _response_updates(ctx) == []
    assert list(InstrumentResponse.objects.exclude(pk=new.pk).order_by("id").values_list(*COLUMNS)) == before
    assert new.is_response and new.is_remission and not new.is_relapse
    # The same number of queries with a longer history.
    for i in range(10):
        submit(world, phq(10 + i % 5), completed_at=clock.now() - dt.timedelta(days=9 - i))
    with CaptureQueriesContext(connection) as longer:
        submit(world, phq(3))
    assert len(longer.captured_queries) == len(ctx.captured_queries)


@pytest.mark.django_db
def test_back_dated_response_recomputes_from_its_point_only(world: Any, clock_frozen: Any) -> None:
    start = clock.now() - dt.timedelta(days=100)
    rows = [
        submit(world, phq(t), completed_at=start + dt.timedelta(days=7 * i))
        for i, t in enumerate([20, 9, 16, 8])
    ]
    with CaptureQueriesContext(connection) as ctx:
        submit(world, phq(18), completed_at=start + dt.timedelta(days=10))  # between the 2nd and 3rd
    updates = " ".join(_response_updates(ctx))
    assert str(rows[3].pk) in updates and str(rows[2].pk) in updates
    assert f"= {rows[0].pk} " not in updates and f"({rows[0].pk}," not in updates
    episode = Episode.objects.get()
    state = _state(episode)
    services.episode_recompute(episode)
    assert _state(episode) == state


@pytest.mark.django_db
def test_changed_rules_recompute_the_whole_episode(world: Any, clock_frozen: Any) -> None:
    start = clock.now() - dt.timedelta(days=60)
    for i, total in enumerate([20, 9, 14]):
        submit(world, phq(total), completed_at=start + dt.timedelta(days=7 * i))
    assert list(InstrumentResponse.objects.values_list("is_response", flat=True)) == [None, True, False]
    OutcomeConfig.objects.create(
        clinic=world.clinic,
        instrument="PHQ-9",
        remission_below=5,
        response_min_percent_drop=25,
        rci_sd=5.0,
        rci_r=0.84,
        relapse_consecutive=1,
    )
    submit(world, phq(13))
    assert list(InstrumentResponse.objects.values_list("is_response", flat=True)) == [None, True, True, True]
    assert not Episode.objects.get().relapsed


@pytest.mark.django_db
def test_outcomes_dashboard_is_cached_until_a_new_response(
    world: Any, client: Any, clock_frozen: Any, django_assert_max_num_queries: Any
) -> None:
    start = clock.now() - dt.timedelta(days=30)
    patient = make_patient(world.clinic, care_team=[world.prescriber])
    submit(world, phq(20), patient=patient, completed_at=start)
    submit(world, phq(16), patient=patient, completed_at=start + dt.timedelta(days=7))
    first = selectors.clinic_outcomes_cached(world.clinic)
    assert first == selectors.clinic_outcomes(world.clinic)
    assert first["instrument"][0]["responded"] == 0
    with django_assert_max_num_queries(1):
        assert selectors.clinic_outcomes_cached(world.clinic) == first
    submit(world, phq(6), patient=patient, completed_at=start + dt.timedelta(days=14))
    after = selectors.clinic_outcomes_cached(world.clinic)
    assert after["instrument"][0]["responded"] == 1 and after == selectors.clinic_outcomes(world.clinic)
    # A new episode (restart) changes it too, and the page shows the fresh figures.
    services.episode_restart(Actor.system(world.clinic), patient, instrument="PHQ-9")
    submit(world, phq(12), patient=patient)
    assert selectors.clinic_outcomes_cached(world.clinic) == selectors.clinic_outcomes(world.clinic)
    client.force_login(world.prescriber)
    assert client.get(reverse("measures:outcomes")).status_code == 200


@pytest.mark.django_db
def test_outcomes_cache_is_per_clinic(world: Any, clock_frozen: Any) -> None:
    submit(world, phq(20), completed_at=clock.now() - dt.timedelta(days=7))
    submit(world, phq(5))
    assert selectors.clinic_outcomes_cached(world.clinic)["instrument"]
    assert selectors.clinic_outcomes_cached(world.other_clinic) == selectors.clinic_outcomes(
        world.other_clinic
    )
    assert selectors.clinic_outcomes_cached(world.other_clinic)["instrument"] == []
