"""Dosing sessions end to end through the views: gate, dose, monitoring, alerts, discharge, audit."""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from kapclinic.audit.models import AuditEvent
from kapclinic.clinical.vitals import Reading
from kapclinic.core import clock
from kapclinic.patients.models import TimelineEvent
from kapclinic.sessions.models import (
    Administration,
    DosingSession,
    GateOverride,
    Observation,
    SessionAlert,
    SessionTransition,
)
from kapclinic.testing.factories import make_patient, make_staff
from kapclinic.treatment.testing import make_dosing_ready


def take_phq9(world: Any, item9: int = 0, *, at: dt.datetime | None = None) -> Any:
    """A PHQ-9 through the measures app (paper form entered by the nurse)."""
    from kapclinic.measures.services import response_submit
    from kapclinic.testing.factories import actor_for

    return response_submit(
        actor_for(world.nurse, world.clinic),
        world.patient,
        instrument="PHQ-9",
        version=None,
        answers=[1, 1, 1, 1, 0, 0, 0, 0, item9],
        source="paper",
        entered_by=world.nurse,
        completed_at=at,
    )


def make_session(
    world: Any, protocol: str = "esketamine-in-trd", *, ready: bool = True, phq9: bool = True
) -> DosingSession:
    """A scheduled session; with ``ready`` the patient first gets a real signed eligibility decision,
    current consent and a signed plan on ``protocol`` (kapclinic.treatment.testing); with ``phq9`` a
    PHQ-9 (item 9 = 0) is completed in the measures app first."""
    if ready:
        make_dosing_ready(world.patient, world.prescriber, protocol)
    if phq9:
        take_phq9(world)
    return DosingSession.objects.create(
        clinic=world.clinic,
        patient=world.patient,
        protocol_id=protocol,
        protocol_version="1.0.0",
        scheduled_for=clock.now(),
        created_by=world.prescriber,
    )


def set_final_set_interval(world: Any, protocol_id: str, minutes: int | None) -> None:
    """The clinic's value (the medical director's, in the tests a synthetic one) for how recent the last
    full set of vitals and ratings must be at discharge; the reference gives none."""
    from kapclinic.core import request_cache
    from kapclinic.sessions.models import ClinicProtocolSetting

    key = "observation.final_set_within_minutes"
    ClinicProtocolSetting.objects.filter(clinic=world.clinic, protocol_id=protocol_id, key=key).delete()
    if minutes is not None:
        ClinicProtocolSetting.objects.create(
            clinic=world.clinic, protocol_id=protocol_id, key=key, value=str(minutes), set_by=world.prescriber
        )
    request_cache.forget()


def url(s: DosingSession, name: str, **kw: Any) -> str:
    return reverse(f"sessions:{name}", kwargs={"patient_id": s.patient_id, "session_id": s.pk, **kw})


def v(s: DosingSession) -> int:
    s.refresh_from_db()
    return s.version


def start_data(s: DosingSession, **extra: Any) -> dict[str, Any]:
    """The start-dosing POST: the container the dose is drawn from (the clinic's stock, received when
    it has none; kapclinic.inventory.testing), issue 14."""
    from kapclinic.inventory.testing import stock_for_session

    return {"version": v(s), "container": stock_for_session(s), **extra}


def record_disposal(client: Any, world: Any, s: DosingSession) -> None:
    """The used esketamine devices' disposal, witnessed by the prescriber signing in on the form."""
    from kapclinic.inventory.models import SessionDraw
    from kapclinic.testing.factories import PASSWORD

    draw = SessionDraw.objects.get(session=s)
    r = client.post(
        url(s, "stock_disposal"),
        {
            "disp-draw": draw.pk,
            "disp-witness_email": world.prescriber.email,
            "disp-witness_password": PASSWORD,
        },
    )
    assert r.status_code == 302, html.unescape(r.content.decode())[:3000]


def expired_container(s: DosingSession) -> int:
    """A container of the session's kind that expired yesterday (never offered, refused if posted)."""
    from kapclinic.inventory.testing import stock_for_session

    return stock_for_session(s, expiry=clock.today() - dt.timedelta(days=1))


def check_in(client: Any, s: DosingSession) -> None:
    r = client.post(url(s, "transition"), {"event": "check_in", "version": v(s)})
    assert r.status_code == 302


def fill_gate(client: Any, s: DosingSession, **extra: Any) -> Any:
    now = clock.now()
    data = {
        "version": v(s),
        "weight_kg": "70",
        "last_food_at": (now - dt.timedelta(hours=3)).astimezone().strftime("%Y-%m-%dT%H:%M"),
        "last_liquid_at": (now - dt.timedelta(hours=1)).astimezone().strftime("%Y-%m-%dT%H:%M"),
        "escort_name": "Sam Escort",
        "medication_changes_reviewed": "on",
        "pregnancy_status": "not_applicable",
        "intention": "Stay curious",
        "rems_enrolled": "on",
        "nasal_steroid": "none",
    }
    data.update(extra)
    return client.post(url(s, "gate"), data)


def to_predose(client: Any, world: Any, s: DosingSession, bp: tuple[int, int] = (124, 80)) -> None:
    client.force_login(world.nurse)
    check_in(client, s)
    assert fill_gate(client, s).status_code == 302
    r = client.post(url(s, "vitals"), {"sbp": bp[0], "dbp": bp[1], "hr": 72, "spo2": 98, "rr": 14})
    assert r.status_code == 302
    r = client.post(url(s, "gate_pass"), {"version": v(s)})
    assert r.status_code == 302, r.content.decode()[:2000]


def test_esketamine_full_flow(world: Any, client: Any, clock_frozen: Any) -> None:
    s = make_session(world)
    client.force_login(world.nurse)
    check_in(client, s)
    assert fill_gate(client, s).status_code == 302
    client.post(url(s, "vitals"), {"sbp": 152, "dbp": 94, "hr": 80, "spo2": 98, "rr": 14})
    # gate blocks on the high pre-dose BP
    r = client.post(url(s, "gate_pass"), {"version": v(s)})
    assert r.status_code == 400
    assert "Pre-dose systolic BP 152 is above 140" in r.content.decode()
    s.refresh_from_db()
    assert s.state == "checked_in"
    # a nurse cannot override
    r = client.post(url(s, "override"), {"item": "baseline_vitals", "reason": "x"})
    assert r.status_code == 403
    client.force_login(world.prescriber)
    r = client.post(url(s, "override"), {"item": "baseline_vitals", "reason": ""})
    assert r.status_code == 400
    # the refusal is a sentence beside the reason box of the check being overridden, not only a summary
    body = r.content.decode()
    assert 'id="ov-baseline_vitals-err"' in body
    assert "Override reason: write why this check may be overridden" in body
    assert 'aria-describedby="ov-baseline_vitals-err"' in body
    r = client.post(
        url(s, "override"), {"item": "baseline_vitals", "reason": "Repeat 146/90 after rest; anxious"}
    )
    assert r.status_code == 302
    assert GateOverride.objects.get(session=s).reason.startswith("Repeat")
    r = client.post(url(s, "gate_pass"), {"version": v(s)})
    assert r.status_code == 302
    s.refresh_from_db()
    assert s.state == "predose_passed"
    assert any(i["status"] == "overridden" for i in s.gate_snapshot)
    # dose 84 mg = 3 devices
    r = client.post(url(s, "dose"), {"version": v(s), "fixed_mg": "84"})
    assert r.status_code == 302
    adm = Administration.objects.get(session=s)
    assert adm.dose_mg == Decimal("84") and adm.devices == 3
    client.force_login(world.nurse)
    # no stock on hand: a clear refusal that links to the stock, nothing stored (issue 14)
    page = client.get(url(s, "detail")).content.decode()
    assert "no esketamine nasal device packs on hand" in page
    assert f'href="{reverse("inventory:index")}"' in page
    r = client.post(url(s, "start_dosing"), {"version": v(s), "container": ""})
    assert r.status_code == 400 and "has no nasal device packs on hand" in r.content.decode()
    assert f'href="{reverse("inventory:index")}"' in r.content.decode()
    # stock received: the container must be chosen
    start_data(s)
    r = client.post(url(s, "start_dosing"), {"version": v(s), "container": ""})
    assert r.status_code == 400 and "This field is required." in r.content.decode()
    r = client.post(url(s, "start_dosing"), start_data(s))
    assert r.status_code == 302
    s.refresh_from_db()
    assert s.state == "dosing" and s.first_dose_at == clock.now()
    # cannot dose twice
    r = client.post(url(s, "start_dosing"), start_data(s))
    assert r.status_code == 400 and "cannot be dosed twice" in r.content.decode()
    # the first device was recorded at the first-dose time; dosing is complete once all three are
    r = client.post(url(s, "transition"), {"event": "start_monitoring", "version": v(s)})
    assert r.status_code == 400 and "1 of 3 ordered devices are recorded" in r.content.decode()
    for _ in (2, 3):
        clock_frozen.advance(dt.timedelta(minutes=5))
        now = clock.now().astimezone().strftime("%Y-%m-%dT%H:%M:%S")
        assert client.post(url(s, "device"), {"dev-version": v(s), "dev-at": now}).status_code == 302
    r = client.post(url(s, "transition"), {"event": "start_monitoring", "version": v(s)})
    assert r.status_code == 302
    # 40 min vitals: rise >= 40 from baseline 152 fires an alert (htmx partial)
    clock_frozen.advance(dt.timedelta(minutes=30))
    r = client.post(
        url(s, "vitals"), {"sbp": 195, "dbp": 100, "hr": 90, "spo2": 97, "rr": 16}, HTTP_HX_REQUEST="true"
    )
    assert r.status_code == 200 and "has risen 43 mmHg" in r.content.decode()
    # 195 is also above the clinic's intra-session limit of 180 (its medical director's value): two alerts
    assert SessionAlert.objects.filter(session=s).count() == 2
    alert = SessionAlert.objects.get(session=s, message__contains="has risen")
    # implausible entry refused, nothing stored
    n = Observation.objects.filter(session=s).count()
    r = client.post(url(s, "vitals"), {"sbp": 300, "dbp": 20}, HTTP_HX_REQUEST="true")
    assert r.status_code == 400 and "outside the plausible range" in r.content.decode()
    assert Observation.objects.filter(session=s).count() == n
    client.post(url(s, "rating", kind="sedation"), {"sed-value": 4})
    client.post(url(s, "rating", kind="dissociation"), {"dis-value": 2})
    client.post(url(s, "event", kind="side_effect"), {"se-code": "nausea", "se-text": ""})
    client.post(url(s, "event", kind="intervention"), {"iv-code": "antiemetic", "iv-text": "ondansetron"})
    # Recovery starts only after the protocol's 120 minutes of observation from the end of administration
    # (the third device, 10 minutes after the first): 30 minutes have passed.
    r = client.post(url(s, "transition"), {"event": "start_recovery", "version": v(s)})
    assert r.status_code == 400
    assert "Recovery: 30 of the protocol's 120 minutes of observation since the end of administration" in (
        html.unescape(r.content.decode())
    )
    clock_frozen.advance(dt.timedelta(minutes=89))
    r = client.post(url(s, "transition"), {"event": "start_recovery", "version": v(s)})
    assert r.status_code == 400 and "119 of the protocol's 120 minutes" in html.unescape(r.content.decode())
    clock_frozen.advance(dt.timedelta(minutes=1))
    r = client.post(url(s, "transition"), {"event": "start_recovery", "version": v(s)})
    assert r.status_code == 302
    set_final_set_interval(world, "esketamine-in-trd", 15)
    discharge = {
        "version": v(s),
        "escort_present": "on",
        "no_driving": "on",
        "signed": "on",
        "ready_to_leave_minutes": 60,
    }
    r = client.post(url(s, "discharge"), discharge)
    body = r.content.decode()
    assert r.status_code == 400
    assert "Final vitals: record a set of vitals during recovery before discharge." in body
    assert "Final full set: the last full set of vitals (" in body and "90 minutes ago" in body
    assert "alert(s) have not been acknowledged" in body
    client.post(url(s, "vitals"), {"sbp": 140, "dbp": 88, "hr": 76, "spo2": 98, "rr": 14})
    client.post(url(s, "rating", kind="sedation"), {"sed-value": 5})
    client.post(url(s, "rating", kind="dissociation"), {"dis-value": 0})
    r = client.post(url(s, "acknowledge", alert_id=alert.pk), {"action": ""}, HTTP_HX_REQUEST="true")
    assert f'id="ack-{alert.pk}-err"' in r.content.decode()
    assert "Action taken: write what you did about this alert" in r.content.decode()
    assert r.status_code == 400
    r = client.post(
        url(s, "acknowledge", alert_id=alert.pk), {"action": "Rechecked in 10 min; prescriber informed"}
    )
    assert r.status_code == 302
    other = SessionAlert.objects.exclude(pk=alert.pk).get(session=s)
    r = client.post(url(s, "acknowledge", alert_id=other.pk), {"action": "Same reading; rechecked"})
    assert r.status_code == 302
    # The clinic's 15-minute interval checks this flow skipped are refused by name, then explained.
    r = client.post(url(s, "discharge"), {**discharge, "version": v(s)})
    assert r.status_code == 400
    missed = re.findall(r"check \(due (\d\d):(\d\d):00\) was not done", html.unescape(r.content.decode()))
    assert ("14", "15") in missed
    for hour, minute in sorted(set(missed)):
        offset = (int(hour) - 14) * 60 + int(minute)
        r = client.post(url(s, "missed_check"), {"mc-offset": offset, "mc-text": "Patient asleep; not woken"})
        assert r.status_code == 302, re.findall(r"<li>[^<]*</li>", html.unescape(r.content.decode()))[:5]
    # the used devices' disposal is not recorded yet: discharge refused, with a link to the form (issue 14)
    r = client.post(url(s, "discharge"), {**discharge, "version": v(s)})
    body = html.unescape(r.content.decode())
    assert r.status_code == 400 and "the disposal of the 3 used esketamine device(s) from S-0001" in body
    assert 'href="#stock-h"' in body
    record_disposal(client, world, s)
    r = client.post(url(s, "discharge"), {**discharge, "version": v(s)})
    assert r.status_code == 302, html.unescape(r.content.decode())[:3000]
    s.refresh_from_db()
    assert s.state == "discharged" and s.discharged_by == world.nurse
    r = client.post(url(s, "discharge"), {**discharge, "version": v(s)})
    assert r.status_code == 400 and "cannot be discharged twice" in r.content.decode()
    events = list(SessionTransition.objects.filter(session=s).values_list("event", flat=True))
    assert events == [
        "check_in",
        "pass_predose",
        "start_dosing",
        "start_monitoring",
        "start_recovery",
        "discharge",
    ]
    assert TimelineEvent.objects.filter(patient=world.patient, kind="sessions.discharged").exists()
    # REMS record
    r = client.get(url(s, "rems"))
    body = r.content.decode()
    assert r.status_code == 200 and "S-0001, lot LOT-A1" in body and "84 mg" in body and "120" in body
    assert "195/100" in body and "152/94" in body
    page = client.get(url(s, "detail")).content.decode()
    assert "Rechecked in 10 min" in page


def test_one_audit_event_per_request(world: Any, client: Any, clock_frozen: Any) -> None:
    s = make_session(world)
    client.force_login(world.nurse)
    before = AuditEvent.objects.count()
    client.post(url(s, "transition"), {"event": "check_in", "version": v(s)})
    assert AuditEvent.objects.count() == before + 1
    before = AuditEvent.objects.count()
    client.get(url(s, "detail"))
    assert AuditEvent.objects.count() == before + 1
    before = AuditEvent.objects.count()
    client.post(url(s, "vitals"), {"sbp": 300, "dbp": 20})
    assert AuditEvent.objects.count() == before + 1


def test_version_conflict(world: Any, client: Any, clock_frozen: Any) -> None:
    s = make_session(world)
    client.force_login(world.nurse)
    stale = v(s)
    check_in(client, s)
    r = client.post(url(s, "abort"), {"version": stale, "reason": "Patient unwell"})
    assert r.status_code == 409 and "Someone else changed this record" in r.content.decode()
    s.refresh_from_db()
    assert s.state == "checked_in"
    r = client.post(url(s, "abort"), {"version": v(s), "reason": ""})
    assert r.status_code == 400 and "Reason is required" in r.content.decode()
    r = client.post(url(s, "abort"), {"version": v(s), "reason": "Patient unwell"})
    assert r.status_code == 302
    s.refresh_from_db()
    assert s.state == "aborted" and s.abort_reason == "Patient unwell"


def test_simultaneous_vitals_both_kept(world: Any, client: Any, clock_frozen: Any) -> None:
    s = make_session(world)
    to_predose(client, world, s)
    other_nurse = make_staff(world.clinic, "nurse")
    client.post(url(s, "vitals"), {"sbp": 120, "dbp": 80})
    client.force_login(other_nurse)
    client.post(url(s, "vitals"), {"hr": 70})
    # both appended (no version needed for appends), nothing lost
    assert Observation.objects.filter(session=s).count() >= 2


def _gate_items(s: DosingSession) -> dict[str, Any]:
    from kapclinic.sessions.services import gate_result

    s.refresh_from_db()
    return {i.check.key: i for i in gate_result(s).items}


def test_real_readiness_passes_without_override(world: Any, client: Any, clock_frozen: Any) -> None:
    """Signed plan, current consent and current eligibility from the real apps: those items pass."""
    s = make_session(world)
    to_predose(client, world, s)
    s.refresh_from_db()
    statuses = {i["key"]: i["status"] for i in s.gate_snapshot}
    assert statuses["signed_plan"] == statuses["consent_current"] == "pass"
    assert statuses["eligibility_current"] == "pass"
    assert not GateOverride.objects.filter(session=s).exists()
    detail = {i["key"]: i["detail"] for i in s.gate_snapshot}
    assert detail["consent_current"].startswith("Consent version 1 signed on")
    assert "Esketamine" in detail["signed_plan"] or "esketamine" in detail["signed_plan"].lower()


def test_no_plan_no_consent_no_decision_are_hard_stops(world: Any, client: Any, clock_frozen: Any) -> None:
    s = make_session(world, ready=False)
    client.force_login(world.nurse)
    check_in(client, s)
    fill_gate(client, s)
    client.post(url(s, "vitals"), {"sbp": 120, "dbp": 80})
    r = client.post(url(s, "gate_pass"), {"version": v(s)})
    body = r.content.decode()
    assert r.status_code == 400 and "hard stop and cannot be overridden" in body
    assert "No eligibility decision has been signed." in body
    assert "There is no signed treatment plan." in body
    items = _gate_items(s)
    assert {items[k].status for k in ("signed_plan", "consent_current", "eligibility_current")} == {
        "hard_stop"
    }
    client.force_login(world.prescriber)
    r = client.post(url(s, "override"), {"item": "consent_current", "reason": "trust me"})
    assert r.status_code == 400 and "hard stop" in r.content.decode()


def test_new_consent_version_blocks_until_re_consent(world: Any, client: Any, clock_frozen: Any) -> None:
    from kapclinic.treatment.testing import publish_consent, sign_consent

    s = make_session(world)
    publish_consent(world.clinic, title="Consent v2", body="Changed text.")
    items = _gate_items(s)
    assert items["consent_current"].status == "hard_stop"
    assert "must re-consent" in items["consent_current"].check.detail
    sign_consent(world.patient, witness=world.nurse)
    assert _gate_items(s)["consent_current"].status == "pass"


def test_stale_eligibility_blocks(world: Any, client: Any, clock_frozen: Any) -> None:
    from kapclinic.intake.testing import complete_assessment

    s = make_session(world)
    complete_assessment(world.patient, heart_rate=99)  # intake changed after sign-off
    items = _gate_items(s)
    assert items["eligibility_current"].status == "hard_stop"
    assert "out of date" in items["eligibility_current"].check.detail


def test_session_protocol_must_match_signed_plan(world: Any, client: Any, clock_frozen: Any) -> None:
    make_dosing_ready(world.patient, world.prescriber, "ketamine-iv-racemic")
    s = make_session(world, "esketamine-in-trd", ready=False)
    item = _gate_items(s)["signed_plan"]
    assert item.status == "hard_stop"
    assert "dose only a protocol the prescriber signed" in item.check.detail


def test_iv_double_check_and_max(world: Any, client: Any, clock_frozen: Any) -> None:
    s = make_session(world, "ketamine-iv-racemic")
    to_predose(client, world, s)
    client.force_login(world.prescriber)
    r = client.post(
        url(s, "dose"), {"version": v(s), "mg_per_kg": "0.8", "concentration": "10", "infusion_minutes": 40}
    )
    assert r.status_code == 400 and "above the protocol maximum of 52.5 mg" in r.content.decode()
    assert not Administration.objects.filter(session=s).exists()
    r = client.post(
        url(s, "dose"), {"version": v(s), "mg_per_kg": "0.5", "concentration": "10", "diluent_ml": "100"}
    )
    assert r.status_code == 302
    adm = Administration.objects.get(session=s)
    assert adm.dose_mg == 35 and adm.volume_ml == Decimal("3.5") and adm.rate_ml_per_h == Decimal("155.3")
    # the orderer cannot double-check
    r = client.post(url(s, "double_check"))
    assert r.status_code == 400 and "second staff member" in r.content.decode()
    client.force_login(world.nurse)
    r = client.post(url(s, "start_dosing"), start_data(s))
    assert r.status_code == 400 and "must be double-checked" in r.content.decode()
    client.post(url(s, "double_check"))
    r = client.post(url(s, "start_dosing"), start_data(s))
    assert r.status_code == 400 and "cannot also be the one giving it" in r.content.decode()
    client.force_login(world.prescriber)
    r = client.post(url(s, "start_dosing"), {"version": v(s), "container": expired_container(s)})
    assert r.status_code == 400 and "Select a valid choice" in r.content.decode()
    r = client.post(url(s, "start_dosing"), start_data(s))
    assert r.status_code == 302
    # IV minimum observation is a clinic setting with no default: discharge refused until the clinic sets it
    s.refresh_from_db()
    assert s.state == "dosing"


def test_adverse_event_on_timeline(world: Any, client: Any, clock_frozen: Any) -> None:
    s = make_session(world)
    to_predose(client, world, s)
    onset = clock.now().astimezone().strftime("%Y-%m-%dT%H:%M")
    r = client.post(
        url(s, "adverse_event"),
        {
            "description": "Vomiting",
            "onset_at": onset,
            "severity": "mild",
            "action_taken": "Antiemetic",
            "outcome": "resolved",
        },
    )
    assert r.status_code == 302
    events = TimelineEvent.objects.filter(patient=world.patient, kind__startswith="sessions.")
    assert events.filter(kind="sessions.adverse_event").exists()
    # Issue 13: sessions store what a line links to (a URL name and kwargs), like every other app
    links = {(e.url_name, tuple(sorted(e.url_kwargs.items()))) for e in events}
    assert links == {("sessions:detail", (("patient_id", world.patient.pk), ("session_id", s.pk)))}


def test_process_notes_are_separate(world: Any, client: Any, clock_frozen: Any) -> None:
    s = make_session(world)
    client.force_login(world.therapist)
    r = client.post(url(s, "process_note"), {"pn-text": "Quiet presence; patient spoke of grief"})
    assert r.status_code == 302
    client.force_login(world.nurse)
    r = client.post(url(s, "process_note"), {"pn-text": "x"})
    assert r.status_code == 400
    page = client.get(url(s, "detail")).content.decode()
    assert "spoke of grief" not in page


def test_rems_overdue_list(world: Any, client: Any, clock_frozen: Any) -> None:
    s = make_session(world)
    DosingSession.objects.filter(pk=s.pk).update(
        state="discharged", discharged_at=clock.now() - dt.timedelta(days=8)
    )
    client.force_login(world.nurse)
    r = client.get(reverse("sessions:index"))
    assert r.status_code == 200
    assert (
        reverse("sessions:rems", kwargs={"patient_id": s.patient_id, "session_id": s.pk})
        in r.content.decode()
    )


@pytest.mark.parametrize("n", [1, 12])
def test_index_query_count(
    world: Any, client: Any, clock_frozen: Any, django_assert_max_num_queries: Any, n: int
) -> None:
    for _ in range(n):
        p = make_patient(world.clinic, care_team=[world.prescriber])
        DosingSession.objects.create(
            clinic=world.clinic,
            patient=p,
            protocol_id="esketamine-in-trd",
            protocol_version="1.0.0",
            scheduled_for=clock.now(),
            created_by=world.prescriber,
        )
    client.force_login(world.nurse)
    with django_assert_max_num_queries(22):
        r = client.get(reverse("sessions:index"))
    assert r.status_code == 200


def test_measure_dosing_times(world: Any, clock_frozen: Any) -> None:
    from kapclinic.sessions.selectors import measure_dosing_times

    s = make_session(world)
    DosingSession.objects.filter(pk=s.pk).update(first_dose_at=clock.now())
    assert measure_dosing_times([world.patient.pk, world.other_patient.pk]) == {
        world.patient.pk: [clock.now()],
        world.other_patient.pk: [],
    }


# ---------------------------------------------------------------- PHQ-9 from the measures app


def test_gate_without_phq9_blocks_and_waiver_passes(world: Any, client: Any, clock_frozen: Any) -> None:
    s = make_session(world, phq9=False)
    client.force_login(world.nurse)
    check_in(client, s)
    fill_gate(client, s)
    item = _gate_items(s)["phq9_done"]
    assert item.status == "blocked"
    assert item.check.detail == (
        "No PHQ-9 has been completed in the last 48 hours and no waiver reason is given."
    )
    page = client.get(url(s, "detail")).content.decode()
    assert "Enter a paper PHQ-9" in page
    fill_gate(client, s, phq9_waiver_reason="Patient declined today; mood interview by prescriber")
    item = _gate_items(s)["phq9_done"]
    assert item.status == "waived"


def test_gate_reads_phq9_and_records_it(world: Any, client: Any, clock_frozen: Any) -> None:
    s = make_session(world, phq9=False)
    response = take_phq9(world)
    to_predose(client, world, s)
    s.refresh_from_db()
    assert s.phq9_done and s.phq9_response_id == response.pk
    snap = {i["key"]: i for i in s.gate_snapshot}
    assert snap["phq9_done"]["status"] == "pass" and "total 4" in snap["phq9_done"]["detail"]


def test_item9_positive_shows_on_gate_and_blocks_until_acknowledged(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    from kapclinic.measures.services import alert_acknowledge
    from kapclinic.testing.factories import actor_for

    s = make_session(world, phq9=False)
    response = take_phq9(world, item9=2)
    client.force_login(world.nurse)
    check_in(client, s)
    fill_gate(client, s, phq9_waiver_reason="in a hurry")  # a waiver never covers an open alert
    item = _gate_items(s)["phq9_done"]
    assert item.status == "blocked" and item.check.flag == "item9_urgent"
    assert "answered 2 (urgent)" in item.check.detail and "not yet acknowledged" in item.check.detail
    page = client.get(url(s, "detail")).content.decode()
    assert "PHQ-9 item 9 positive: urgent" in page
    alert_acknowledge(
        actor_for(world.prescriber, world.clinic),
        response.safety_alert,
        action="structured_screen",
        note="C-SSRS screener: low risk",
    )
    item = _gate_items(s)["phq9_done"]
    assert item.status == "pass" and item.check.flag == "item9_urgent"
    assert "Safety alert acknowledged: Structured suicide-risk screen completed" in item.check.detail


def test_phq9_window_settings(world: Any, client: Any, clock_frozen: Any) -> None:
    from kapclinic.measures.models import MeasureSettings

    yesterday = clock.now() - dt.timedelta(hours=20)
    s = make_session(world, phq9=False)
    take_phq9(world, at=yesterday)
    assert _gate_items(s)["phq9_done"].status == "pass"  # default: since previous session, <= 48 h
    cfg = MeasureSettings.objects.create(clinic=world.clinic, pre_session_phq9_window="same_day")
    assert _gate_items(s)["phq9_done"].status == "blocked"
    assert "completed today" in _gate_items(s)["phq9_done"].check.detail
    cfg.pre_session_phq9_window = "since_previous_session"
    cfg.save()
    # a previous session dosed after that PHQ-9: it no longer counts for this session
    prev = DosingSession.objects.create(
        clinic=world.clinic,
        patient=world.patient,
        protocol_id="esketamine-in-trd",
        protocol_version="1.0.0",
        scheduled_for=clock.now() - dt.timedelta(hours=10),
        created_by=world.prescriber,
        state="discharged",
        first_dose_at=clock.now() - dt.timedelta(hours=10),
    )
    item = _gate_items(s)["phq9_done"]
    assert item.status == "blocked" and "since the previous dosing session" in item.check.detail
    take_phq9(world)
    assert _gate_items(s)["phq9_done"].status == "pass"
    assert prev.pk


def test_gate_shows_chart_medications_in_flagged_classes(world: Any, client: Any, clock_frozen: Any) -> None:
    from kapclinic.patients.services import medication_add
    from kapclinic.testing.factories import actor_for

    s = make_session(world)
    actor = actor_for(world.prescriber, world.clinic)
    medication_add(actor, world.patient, name="Phenelzine", dose="15 mg", drug_class="antidepressant")
    client.force_login(world.nurse)
    check_in(client, s)
    page = client.get(url(s, "detail")).content.decode()
    assert "On the chart now: Phenelzine (MAOI)" in page
    assert 'value="maoi" id="id_flagged_medication_classes_5" checked' in page or (
        'value="maoi"' in page and "checked" in page.split('value="maoi"')[1][:80]
    )


def test_vitals_entry_reads_the_session_once_and_keeps_its_alert_and_audit(
    world: Any, client: Any, clock_frozen: Any, django_assert_num_queries: Any
) -> None:
    """Vitals during monitoring (the bench's write): the rise from the pre-dose baseline raises its alert
    and the audit entry counts rows and alerts, in a fixed number of queries: the patient and clinic the
    permission check and session read already hold are not read again for the audit entry (issue #7)."""
    from kapclinic.sessions.services import vitals_record
    from kapclinic.testing.factories import actor_for

    s = make_session(world, ready=False, phq9=False)
    now = clock.now()
    DosingSession.objects.filter(pk=s.pk).update(
        state="checked_in", checked_in_at=now - dt.timedelta(minutes=40)
    )
    # The pre-dose baseline, as the gate step records it; then the session is being monitored.
    vitals_record(actor_for(world.nurse, world.clinic), s, Reading(sbp=135, dbp=85, hr=80))
    DosingSession.objects.filter(pk=s.pk).update(
        state="monitoring",
        predose_passed_at=now - dt.timedelta(minutes=35),
        first_dose_at=now - dt.timedelta(minutes=30),
        monitoring_started_at=now - dt.timedelta(minutes=25),
    )
    client.force_login(world.nurse)
    client.get("/home/")  # the session's user and membership are read once per request anyway
    with django_assert_num_queries(17):  # the next reading number and the baseline are one query
        r = client.post(url(s, "vitals"), {"sbp": 178, "dbp": 100, "hr": 90, "spo2": 97, "rr": 16})
    assert r.status_code == 302
    alert = SessionAlert.objects.get(session=s)
    assert alert.vital == "sbp" and "has risen 43 mmHg" in alert.message
    event = AuditEvent.objects.filter(object_id=str(s.pk), action="create").latest("seq")
    assert event.detail == "vitals:5:alerts:1" and event.patient_id == world.patient.pk
    assert event.clinic_id == world.clinic.pk and event.actor_id == world.nurse.pk


def test_refused_gate_pass_returns_the_current_version_and_keeps_what_was_typed(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    """Saving the checklist then confirming it (no baseline vitals yet: refused) saves the checklist, so
    the page returned must carry the new version; the nurse's next save must not be a 'conflict'."""
    import re

    s = make_session(world)
    client.force_login(world.nurse)
    check_in(client, s)
    r = fill_gate(client, s, confirm="on", escort_name="Robin Escort")
    assert r.status_code == 400
    body = r.content.decode()
    s.refresh_from_db()
    versions = re.findall(r'name="version" value="(\d+)"', body)
    assert versions and all(int(found) == s.version for found in versions), (versions, s.version)
    assert 'value="Robin Escort"' in body
    again = fill_gate(client, s, escort_name="Robin Escort")  # the version the page carried
    assert again.status_code == 302
