"""The demo is consistent: seeded sessions sit on real plans, consents and decisions, and the demo
patient's session today passes the readiness and PHQ-9 items with no override. Its measures tell a
believable story on the clinic outcomes dashboard: baselines before the first dosing session, a PHQ-9
before every session, responders after a few sessions, remitters, non-responders and a relapse in
maintenance."""

from __future__ import annotations

import pytest

from kapclinic.accounts.models import Clinic
from kapclinic.audit.services import verify_chains
from kapclinic.clinical.instruments import get_instrument, score
from kapclinic.core.demo import PATIENT_LOGIN
from kapclinic.measures.models import Episode, InstrumentResponse, SafetyAlert
from kapclinic.measures.selectors import clinic_outcomes
from kapclinic.patients.models import PathwayStatus
from kapclinic.sessions.models import DosingSession, GateOverride
from kapclinic.sessions.selectors import measure_dosing_times
from kapclinic.sessions.services import gate_result
from kapclinic.treatment.models import TreatmentPlan
from tests.demo.conftest import Seeded

pytestmark = [pytest.mark.django_db, pytest.mark.xdist_group("demo")]


def test_seed_demo_is_consistent_and_tells_an_outcome_story(demo: Seeded) -> None:
    assert DosingSession.objects.count() >= 5
    _sessions_are_consistent()
    _every_protocol_is_usable_in_the_demo_clinic()
    _outcomes_tell_a_story()
    assert verify_chains() == []


def _every_protocol_is_usable_in_the_demo_clinic() -> None:
    """Issue 18: the demo medical director set every value the protocols leave to the clinic, each with
    a reason in the settings change log."""
    from kapclinic.accounts.models import Clinic
    from kapclinic.clinical.protocols import all_protocols
    from kapclinic.sessions.models import ClinicSettingChange
    from kapclinic.sessions.services import clinic_protocol

    clinic = DosingSession.objects.select_related("clinic").first().clinic  # type: ignore[union-attr]
    assert isinstance(clinic, Clinic)
    for p in all_protocols():
        assert clinic_protocol(clinic.pk, p.id, version=p.version).usable, p.key
    changes = ClinicSettingChange.objects.filter(clinic=clinic, area="protocol")
    assert changes.exists() and all("medical director" in c.reason for c in changes)


def _sessions_are_consistent() -> None:
    assert not GateOverride.objects.exists()
    for s in DosingSession.objects.select_related("patient"):
        plan = TreatmentPlan.objects.get(patient=s.patient, status="signed")
        assert plan.protocol_id == s.protocol_id
        if s.state == "discharged":
            assert plan.signed_at and s.checked_in_at and s.first_dose_at and s.discharged_at
            assert plan.signed_at < s.checked_in_at < s.first_dose_at < s.discharged_at
            assert s.phq9_done and s.phq9_response is not None
            assert all(i["status"] == "pass" for i in s.gate_snapshot)
            _checks_taken_on_time(s)
    today = DosingSession.objects.get(patient__user__email=PATIENT_LOGIN, state="scheduled")
    items = {i.check.key: i.status for i in gate_result(today).items}
    assert items["signed_plan"] == items["consent_current"] == items["eligibility_current"] == "pass"
    assert items["phq9_done"] == "pass"


def _checks_taken_on_time(s: DosingSession) -> None:
    """Every timed vitals check before recovery was taken at its own minute and counted for itself (the
    ~40 min label check too, beside an interval check at +45; docs/clinical-reference.md#vitals-checks)."""
    from kapclinic.sessions.selectors import vitals_due
    from kapclinic.sessions.services import protocol_for

    assert s.recovery_started_at is not None
    timed = [i for i in vitals_due(s, protocol_for(s)) if i.due_at and i.due_at < s.recovery_started_at]
    assert any(i.label.startswith("~40") for i in timed)
    assert all(i.status == "done" and i.done_at == i.due_at for i in timed), timed


def _outcomes_tell_a_story() -> None:
    clinic = Clinic.objects.get(slug="harbor-kap")
    treated = list(
        clinic.patients.filter(
            pathway_status__in=[PathwayStatus.ACTIVE, PathwayStatus.MAINTENANCE, PathwayStatus.DISCHARGED]
        )
    )
    doses = measure_dosing_times([p.pk for p in treated])
    # Every patient in treatment, maintenance or discharged has had dosing sessions, and each one's
    # baselines come before the first of them.
    assert all(len(doses[p.pk]) >= 2 for p in treated)
    episodes = list(Episode.objects.filter(clinic=clinic).select_related("baseline", "patient"))
    for ep in episodes:
        assert ep.baseline is not None and ep.baseline.completed_at < doses[ep.patient_id][0]
    # A PHQ-9 between consecutive sessions: one for each count of sessions before it.
    phq9 = InstrumentResponse.objects.filter(clinic=clinic, instrument="PHQ-9")
    for p in treated:
        seen = set(phq9.filter(patient=p).values_list("sessions_before", flat=True))
        assert set(range(len(doses[p.pk]))) <= seen
    # Totals are the real scoring of the stored item answers.
    for r in InstrumentResponse.objects.filter(clinic=clinic).prefetch_related("answers")[:60]:
        inst = get_instrument(r.instrument, r.instrument_version)
        values: dict[int, int] = {a.item_number: a.value for a in r.answers.all()}
        assert score(inst, [values.get(i.number) for i in inst.items]).total == r.total

    # The dashboard: a plausible median number of sessions to response in every PHQ-9 group.
    outcomes = clinic_outcomes(clinic)
    (overall,) = [row for row in outcomes["instrument"] if row["instrument"] == "PHQ-9"]
    assert overall["median_sessions"] is not None and 2 <= overall["median_sessions"] <= 4
    for group in ("protocol", "route", "indication"):
        for row in outcomes[group]:
            if row["responded"]:
                assert row["median_sessions"] and row["median_sessions"] >= 1, (group, row)
    followed = [e for e in episodes if e.instrument == "PHQ-9" and e.followup_count]
    responders = [e for e in followed if e.responded and not e.latest_remission]
    remitters = [e for e in followed if e.latest_remission]
    non_responders = [e for e in followed if not e.responded]
    relapsed = [e for e in followed if e.relapsed]
    assert responders and remitters and non_responders
    assert all(2 <= (e.sessions_to_response or 0) <= 6 for e in followed if e.responded)
    assert [e.patient.pathway_status for e in relapsed] == [PathwayStatus.MAINTENANCE]
    # One open (urgent) item-9 alert, on a non-responder; every historical alert was acknowledged.
    (open_alert,) = SafetyAlert.objects.filter(clinic=clinic, acknowledged_at__isnull=True)
    assert open_alert.urgent and open_alert.patient_id in {e.patient_id for e in non_responders}

    # The demo patient's PHQ-9 reads as a story: baseline 19, a response after 3 sessions, 5 today.
    demo = Episode.objects.get(patient__user__email=PATIENT_LOGIN, instrument="PHQ-9")
    totals = list(demo.responses.order_by("completed_at").values_list("total", flat=True))
    assert totals[0] == 19 and totals[-1] == 5 and totals == sorted(totals, reverse=True)
    assert demo.responded and demo.sessions_to_response == 3 and not demo.relapsed
