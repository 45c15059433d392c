"""Issue 13: a timeline event stores what it links to (a URL name and kwargs), not a path; the chart
builds the address with ``reverse`` when it shows the line."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import NoReverseMatch

from kapclinic.patients import services
from kapclinic.patients.models import TimelineEvent
from kapclinic.patients.selectors import timeline_page
from kapclinic.testing.factories import actor_for


@pytest.mark.django_db
def test_event_stores_the_url_name_and_the_chart_builds_the_address(world: Any, client: Any) -> None:
    pid = world.patient.pk
    event = services.add_timeline_event(
        world.patient, kind="t", title="Scores", url_name="measures:patient", url_kwargs={"patient_id": pid}
    )
    event.refresh_from_db()
    assert (event.url_name, event.url_kwargs) == ("measures:patient", {"patient_id": pid})
    rows, _ = timeline_page(world.patient, clinical=True)
    assert [r.url for r in rows] == [f"/measures/patients/{pid}/"]
    client.force_login(world.prescriber)
    assert (
        f'<a href="/measures/patients/{pid}/">Scores</a>'
        in client.get(f"/patients/{pid}/timeline/").content.decode()
    )


@pytest.mark.django_db
def test_a_name_that_does_not_reverse_is_refused_at_write(world: Any) -> None:
    with pytest.raises(NoReverseMatch):
        services.add_timeline_event(world.patient, kind="t", title="x", url_name="measures:nope")
    with pytest.raises(NoReverseMatch):
        services.add_timeline_event(world.patient, kind="t", title="x", url_name="measures:patient")
    assert not TimelineEvent.objects.filter(patient=world.patient, title="x").exists()


@pytest.mark.django_db
def test_a_stored_name_that_no_longer_reverses_leaves_the_line_unlinked(world: Any, client: Any) -> None:
    actor = actor_for(world.nurse, world.clinic)
    services.add_timeline_event(world.patient, kind="t", title="Old page", actor=actor)
    TimelineEvent.objects.filter(patient=world.patient).update(url_name="removed:page", url_kwargs={"pk": 1})
    rows, _ = timeline_page(world.patient, clinical=True)
    assert [(r.title, r.url) for r in rows] == [("Old page", "")]
    client.force_login(world.prescriber)
    assert client.get(f"/patients/{world.patient.pk}/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_migration_turns_stored_paths_into_url_names_and_back(world: Any) -> None:
    before = [("patients", "0005_timelineevent_url_name")]
    pid = world.patient.pk
    paths = {
        "session": f"/sessions/patient/{pid}/12/",
        "scores": f"/measures/patients/{pid}/?tab=phq9#latest",
        "note": f"/notes/patient/{pid}/3/",
        "gone": "/no/such/page/",
        "none": "",
    }
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        Event = old.get_model("patients", "TimelineEvent")
        for title, url in paths.items():
            Event.objects.create(patient_id=pid, at="2026-03-01T10:00:00Z", kind="t", title=title, url=url)
    finally:
        MigrationExecutor(connection).migrate(leaves)
    links = {e.title: (e.url_name, e.url_kwargs) for e in TimelineEvent.objects.filter(patient_id=pid)}
    assert links == {
        "session": ("sessions:detail", {"patient_id": pid, "session_id": 12}),
        "scores": ("measures:patient", {"patient_id": pid}),
        "note": ("notes:detail", {"patient_id": pid, "note_id": 3}),
        "gone": ("", {}),  # was already a broken link
        "none": ("", {}),
    }

    executor = MigrationExecutor(connection)
    executor.migrate(before)  # and back: the paths are rebuilt from the names
    try:
        Event = executor.loader.project_state(before).apps.get_model("patients", "TimelineEvent")
        assert dict(Event.objects.filter(patient_id=pid).values_list("title", "url")) == {
            "session": f"/sessions/patient/{pid}/12/",
            "scores": f"/measures/patients/{pid}/",
            "note": f"/notes/patient/{pid}/3/",
            "gone": "",
            "none": "",
        }
    finally:
        MigrationExecutor(connection).migrate(leaves)
