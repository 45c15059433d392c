"""Issue #7: today's-sessions widget filters on the session's clinic + date range for clinic-wide roles."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from kapclinic.core import clock
from kapclinic.sessions import selectors
from kapclinic.sessions.models import DosingSession
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
        elif role == "therapist":  # the caseload filter stays
            assert "IN (SELECT" in sql
