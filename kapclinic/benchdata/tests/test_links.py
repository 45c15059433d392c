"""seed_scale fills the links the models now expect: DosingSession.appointment and phq9_response."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command

from kapclinic.sessions.models import DosingSession


@pytest.mark.django_db
def test_sessions_link_their_appointment_and_the_phq9_that_counted() -> None:
    out = io.StringIO()
    call_command("seed_scale", patients=24, seed=3, no_progress=True, json=True, stdout=out)
    summary: dict[str, Any] = json.loads(out.getvalue())
    assert summary["domains_skipped"] == {}
    done = list(
        DosingSession.objects.filter(state="discharged").select_related("appointment", "phq9_response")
    )
    assert done
    linked = [s for s in done if s.appointment is not None]
    assert len(linked) >= len(done) * 0.8  # a few attended appointments are recorded as no-shows
    for s in linked:
        appt = s.appointment
        assert appt is not None
        assert (appt.patient_id, appt.kind, appt.starts_at) == (s.patient_id, "dosing", s.scheduled_for)
        assert appt.status == "completed"
    counted = [s for s in done if s.phq9_done]
    assert counted  # the weekly PHQ-9 often falls inside the window
    for s in done:
        r = s.phq9_response
        if s.phq9_done:
            assert r is not None and r.patient_id == s.patient_id and r.instrument == "PHQ-9"
            assert s.predose_passed_at is not None and r.completed_at <= s.predose_passed_at
            assert not s.phq9_waiver_reason
        else:
            assert r is None and s.phq9_waiver_reason
