"""The demo is consistent: seeded sessions sit on real plans, consents and decisions, and the demo
patient's session today passes the readiness and PHQ-9 items with no override. Idempotent."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command

from kapclinic.audit.services import verify_chains
from kapclinic.core import clock
from kapclinic.core.demo import PATIENT_LOGIN
from kapclinic.sessions.models import DosingSession, GateOverride
from kapclinic.sessions.services import gate_result
from kapclinic.treatment.models import TreatmentPlan

pytestmark = pytest.mark.django_db


def test_seed_demo_sessions_are_consistent_and_idempotent(clock_frozen: Any) -> None:
    before = clock.now()
    call_command("seed_demo", "--quiet-logins")
    n = DosingSession.objects.count()
    call_command("seed_demo", "--quiet-logins")
    assert DosingSession.objects.count() == n and n >= 5
    assert not GateOverride.objects.exists()
    for s in DosingSession.objects.select_related("patient"):
        plan = TreatmentPlan.objects.get(patient=s.patient, status="signed")
        assert plan.protocol_id == s.protocol_id
        if s.state == "discharged":
            assert plan.signed_at and s.checked_in_at and s.first_dose_at and s.discharged_at
            assert plan.signed_at < s.checked_in_at < s.first_dose_at < s.discharged_at
            assert s.phq9_done and s.phq9_response is not None
            assert all(i["status"] == "pass" for i in s.gate_snapshot)
    today = DosingSession.objects.get(patient__user__email=PATIENT_LOGIN, state="scheduled")
    items = {i.check.key: i.status for i in gate_result(today).items}
    assert items["signed_plan"] == items["consent_current"] == items["eligibility_current"] == "pass"
    assert items["phq9_done"] == "pass"
    assert verify_chains() == []
    assert clock.now() == before  # the demo put the application clock back
