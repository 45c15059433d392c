"""Issue #7: today's-sessions widget filters on the session's clinic + date range for clinic-wide roles;
the widget and the chart panel read only the columns they print."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from kapclinic.core import clock
from kapclinic.sessions import selectors
from kapclinic.sessions.models import DosingSession, SessionAlert
from kapclinic.testing.factories import actor_for, make_patient

pytestmark = pytest.mark.django_db


def _session(clinic: Any, patient: Any, when: dt.datetime, by: Any) -> DosingSession:
    return DosingSession.objects.create(
        clinic=clinic,
        patient=patient,
        protocol_id="esketamine-in-trd",
        protocol_version="1.0.0",
        scheduled_for=when,
        created_by=by,
    )


def test_today_sessions_same_rows_without_a_patient_subquery(world: Any, clock_frozen: Any) -> None:
    now = clock.now()
    on_team = _session(world.clinic, world.patient, now, world.prescriber)  # therapist's caseload
    other = _session(world.clinic, make_patient(world.clinic), now, world.prescriber)
    _session(world.clinic, make_patient(world.clinic), now - dt.timedelta(days=3), world.prescriber)
    _session(world.other_clinic, world.other_clinic_patient, now, world.other_clinic_staff)
    for user, role, expected in (
        (world.prescriber, "prescriber", [on_team.pk, other.pk]),
        (world.nurse, "nurse", [on_team.pk, other.pk]),
        (world.therapist, "therapist", [on_team.pk]),
        (world.front_desk, "front_desk", []),
    ):
        actor = actor_for(user, world.clinic)
        assert actor.role == role
        with CaptureQueriesContext(connection) as ctx:
            got = [s.pk for s in selectors.clinic_sessions(actor, clock.today())]
        assert got == expected, role
        sql = ctx.captured_queries[-1]["sql"] if ctx.captured_queries else ""
        if role in ("prescriber", "nurse"):  # no "patient_id IN (every patient of the clinic)"
            assert "IN (SELECT" not in sql and '"kap_sessions_dosingsession"."clinic_id" =' in sql
        elif role == "therapist":  # the caseload filter stays, as a join on the care team
            assert "IN (SELECT" not in sql and '"patients_careteammember"."user_id" =' in sql
            assert '"patients_patient"."clinic_id" =' in sql


def _alert(session: DosingSession, *, acknowledged_by: Any = None) -> SessionAlert:
    return SessionAlert.objects.create(
        session=session,
        rule="sbp_above",
        vital="sbp",
        value=190,
        threshold=180,
        severity="high",
        message="Systolic blood pressure above 180",
        source="test",
        raised_at=clock.now(),
        acknowledged_by=acknowledged_by,
        acknowledged_at=clock.now() if acknowledged_by is not None else None,
        action_taken="Rechecked" if acknowledged_by is not None else "",
    )


def test_home_widget_rows_match_the_sessions_query(world: Any, clock_frozen: Any) -> None:
    """today_sessions (the home widget) shows the sessions of clinic_sessions, in its order, with the same
    link, time, name, state and open-alert count; one query whatever the number of sessions."""
    now = clock.now()
    first = _session(world.clinic, world.patient, now + dt.timedelta(hours=1), world.prescriber)
    named = make_patient(world.clinic, preferred_name="Sunny")
    second = _session(world.clinic, named, now + dt.timedelta(hours=2), world.prescriber)
    _session(world.clinic, named, now - dt.timedelta(days=1), world.prescriber)  # yesterday
    for _ in range(2):
        _alert(second)
    _alert(second, acknowledged_by=world.nurse)  # acknowledged: not counted
    _alert(first, acknowledged_by=world.nurse)
    for user in (world.prescriber, world.nurse, world.therapist, world.front_desk):
        actor = actor_for(user, world.clinic)
        expected = list(selectors.clinic_sessions(actor, clock.today())[:20])
        with CaptureQueriesContext(connection) as ctx:
            rows = selectors.today_sessions(actor, clock.today(), limit=20)
        assert len(ctx.captured_queries) <= 1, actor.role  # none for a role without clinical access
        assert [r.pk for r in rows] == [s.pk for s in expected], actor.role
        for row, s in zip(rows, expected, strict=True):
            assert row.url == reverse("sessions:detail", args=[s.patient_id, s.pk])
            assert row.time == Template('{{ t|time:"H:i" }}').render(Context({"t": s.scheduled_for}))
            assert row.name == s.patient.display_name
            assert row.state == s.get_state_display()
            assert row.open_alerts == s.open_alerts  # type: ignore[attr-defined]
    rows = selectors.today_sessions(actor_for(world.nurse, world.clinic), clock.today())
    assert [(r.name.split()[0], r.open_alerts) for r in rows] == [
        (world.patient.display_name.split()[0], 0),
        ("Sunny", 2),
    ]
    assert len(selectors.today_sessions(actor_for(world.nurse, world.clinic), clock.today(), limit=1)) == 1


def test_chart_panel_rows(world: Any, clock_frozen: Any) -> None:
    now = clock.now()
    sessions = [
        _session(world.clinic, world.patient, now - dt.timedelta(days=i), world.prescriber) for i in range(12)
    ]
    with CaptureQueriesContext(connection) as ctx:
        rows = selectors.patient_sessions(world.patient)
    assert len(ctx.captured_queries) == 1
    assert [r.pk for r in rows] == [s.pk for s in sessions[:10]]  # newest first, ten of them
    top = sessions[0]
    assert rows[0].url == reverse("sessions:detail", args=[world.patient.pk, top.pk])
    assert rows[0].date == Template('{{ d|date:"j M Y" }}').render(Context({"d": top.scheduled_for}))
    assert (rows[0].protocol_id, rows[0].state) == ("esketamine-in-trd", "Scheduled")


def test_home_widget_says_whose_turn_the_dose_is_after_the_pre_dose_checks(
    world: Any, clock_frozen: Any, client: Any
) -> None:
    """Issue 18: the prescriber's home page said only "Pre-dose checks passed" while the session waited
    for their order; the row now says what the dose hand-off waits for (one more query, only then)."""
    from kapclinic.sessions.models import Administration

    now = clock.now()
    waiting = _session(world.clinic, world.patient, now, world.prescriber)
    ordered = _session(world.clinic, make_patient(world.clinic), now, world.prescriber)
    plain = _session(world.clinic, make_patient(world.clinic), now, world.prescriber)
    DosingSession.objects.filter(pk__in=[waiting.pk, ordered.pk]).update(
        state="predose_passed", protocol_id="ketamine-iv-racemic", protocol_version="1.1.0"
    )
    Administration.objects.create(
        session=ordered, product="Racemic ketamine", route="IV", dose_mg=35, ordered_by=world.prescriber,
        ordered_at=now,
    )  # fmt: skip
    actor = actor_for(world.prescriber, world.clinic)
    with CaptureQueriesContext(connection) as ctx:
        rows = {r.pk: r for r in selectors.today_sessions(actor, clock.today())}
    assert len(ctx.captured_queries) == 2
    assert rows[waiting.pk].next_step == "Waiting for the prescriber's order."
    assert rows[ordered.pk].next_step == "Dose ordered: waiting for the double-check."
    assert rows[plain.pk].next_step == "" and rows[plain.pk].state == "Scheduled"
    client.force_login(world.prescriber)
    home = client.get(reverse("core:home")).content.decode()
    badge = '<span class="badge warn">Waiting for the prescriber&#x27;s order.</span>'
    assert f"Pre-dose checks passed</a> {badge}" in home
