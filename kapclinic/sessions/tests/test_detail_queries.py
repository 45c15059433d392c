"""The dosing-session page reads each part of the session's record once: its query count is pinned and the
same with one observation as with many; the facts it derives from those rows (latest ratings, vitals
taken, baseline and final readings, open alerts) are the ones the services' own queries find; the vitals
entry finds the next reading number and the baseline in one query."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from kapclinic.clinical.vitals import Reading
from kapclinic.core import clock
from kapclinic.sessions import selectors, services
from kapclinic.sessions.models import (
    Administration,
    DeviceUse,
    DosingSession,
    ObservationKind,
    SessionAlert,
)
from kapclinic.sessions.services import monitoring
from kapclinic.testing.factories import actor_for

pytestmark = pytest.mark.django_db

# The monitoring page as the nurse: session, user, membership, patient; the audit entry (5); the session;
# the clinic's protocol settings; the administration (with its people) and its devices; the observations;
# the alerts; events; transitions; adverse events; gate overrides; the superseded dose orders (issue 18:
# every order stays on the record); the written reasons for missed scheduled checks (issue 18: discharge
# needs the schedule complete or each gap explained); what the session drew from controlled-substance
# stock with its waste, in one query (issue 14).
DETAIL_QUERIES = 22


def _session(world: Any, state: str = "checked_in") -> DosingSession:
    now = clock.now()
    return DosingSession.objects.create(
        clinic=world.clinic,
        patient=world.patient,
        protocol_id="esketamine-in-trd",
        protocol_version="1.0.0",
        scheduled_for=now - dt.timedelta(minutes=60),
        created_by=world.prescriber,
        state=state,
        checked_in_at=now - dt.timedelta(minutes=60),
    )


def _to(s: DosingSession, state: str, **times: Any) -> DosingSession:
    DosingSession.objects.filter(pk=s.pk).update(state=state, **times)
    return DosingSession.objects.get(pk=s.pk)


def _dosed(world: Any) -> DosingSession:
    """A session monitored after a two-device esketamine dose, with its pre-dose baseline."""
    now = clock.now()
    s = _session(world)
    nurse = actor_for(world.nurse, world.clinic)
    services.vitals_record(nurse, s, Reading(sbp=130, dbp=80, hr=70, rr=14, spo2=98))
    s = _to(
        s,
        "monitoring",
        predose_passed_at=now - dt.timedelta(minutes=50),
        first_dose_at=now - dt.timedelta(minutes=45),
        monitoring_started_at=now - dt.timedelta(minutes=35),
    )
    admin = Administration.objects.create(
        session=s,
        product="Esketamine nasal spray",
        route="IN",
        dose_mg=Decimal("56"),
        devices=2,
        ordered_by=world.prescriber,
        ordered_at=now - dt.timedelta(minutes=48),
        double_checked_by=world.nurse,
        double_checked_at=now - dt.timedelta(minutes=47),
        administered_by=world.nurse,
        administered_at=now - dt.timedelta(minutes=45),
    )
    for number in (1, 2):
        at = now - dt.timedelta(minutes=45 - 5 * (number - 1))
        DeviceUse.objects.create(
            administration=admin, number=number, at=at, recorded_by=world.nurse, recorded_at=at
        )
    return s


def _observe(world: Any, s: DosingSession, n: int) -> None:
    """n rounds of monitoring: vitals (every third one raising an alert), ratings and a note."""
    nurse = actor_for(world.nurse, world.clinic)
    for i in range(n):
        clock.advance(dt.timedelta(minutes=1))
        sbp = 190 if i % 3 == 1 else 132
        services.vitals_record(nurse, s, Reading(sbp=sbp, dbp=82, hr=74, rr=14, spo2=97))
        services.rating_record(nurse, s, kind=ObservationKind.SEDATION, value=5 - i % 2)
        services.rating_record(nurse, s, kind=ObservationKind.DISSOCIATION, value=i % 3)
        services.event_record(nurse, s, kind="note", code="", text=f"check {i}")
    for alert in SessionAlert.objects.filter(session=s)[:1]:
        services.alert_acknowledge(nurse, s, alert_id=alert.pk, action="rechecked")


def _detail(s: DosingSession) -> str:
    return reverse("sessions:detail", kwargs={"patient_id": s.patient_id, "session_id": s.pk})


@pytest.mark.parametrize("n", [1, 12])
def test_monitoring_page_query_count_is_pinned_and_constant(
    world: Any, client: Any, clock_frozen: Any, django_assert_num_queries: Any, n: int
) -> None:
    s = _dosed(world)
    _observe(world, s, n)
    client.force_login(world.nurse)
    client.get("/home/")
    with django_assert_num_queries(DETAIL_QUERIES):
        r = client.get(_detail(s))
    assert r.status_code == 200
    page = r.content.decode()
    assert "Device 2 at" in page and "BP 132/82 mmHg" in page
    assert f"check {n - 1}" in page


@pytest.mark.parametrize("n", [1, 12])
def test_recovery_page_with_discharge_preview_reads_no_more(
    world: Any, client: Any, clock_frozen: Any, django_assert_num_queries: Any, n: int
) -> None:
    s = _dosed(world)
    _observe(world, s, n)
    s = _to(s, "recovery", recovery_started_at=clock.now())
    services.vitals_record(actor_for(world.nurse, world.clinic), s, Reading(sbp=128, dbp=80, hr=70))
    client.force_login(world.nurse)
    client.get("/home/")
    with django_assert_num_queries(DETAIL_QUERIES):
        r = client.get(_detail(s))
    assert r.status_code == 200
    assert "Sign and discharge" in r.content.decode()


@pytest.mark.parametrize("n", [0, 1, 5])
def test_record_facts_are_the_services_facts(world: Any, clock_frozen: Any, n: int) -> None:
    """The page's preview of the discharge gate and its panels use the same facts as the services."""
    s = _dosed(world)
    _observe(world, s, n)
    s = _to(s, "recovery", recovery_started_at=clock.now())
    if n:
        services.vitals_record(actor_for(world.nurse, world.clinic), s, Reading(sbp=128, dbp=80, hr=70))
        services.vitals_record(actor_for(world.nurse, world.clinic), s, Reading(sbp=126, dbp=79))
    record = selectors.SessionRecord(s)
    for kind in (ObservationKind.SEDATION, ObservationKind.DISSOCIATION):
        assert record.last_rating(kind) == selectors.last_rating(s, kind)
    assert record.baseline_reading() == selectors.baseline_reading(s)
    assert record.final_reading() == selectors.final_reading(s)
    assert record.vitals_taken_at() == list(
        s.observations.filter(kind=ObservationKind.VITAL)
        .values_list("at", flat=True)
        .distinct()
        .order_by("at")
    )
    assert [a.pk for a in record.open_alerts] == list(
        s.alerts.filter(acknowledged_at__isnull=True).values_list("pk", flat=True)
    )
    kw: dict[str, Any] = {"escort_present": True, "no_driving": True, "signed": True}
    with_record = services.discharge_decision(s, record=record, **kw)
    assert with_record == services.discharge_decision(s, **kw)


def test_next_reading_and_baseline_in_one_query(
    world: Any, clock_frozen: Any, django_assert_num_queries: Any
) -> None:
    s = _session(world)
    nurse = actor_for(world.nurse, world.clinic)
    with django_assert_num_queries(1):
        assert monitoring._last_group_and_baseline(s) == (0, None)
    services.vitals_record(nurse, s, Reading(sbp=150, dbp=90, hr=80))
    services.vitals_record(nurse, s, Reading(sbp=140, dbp=88, hr=78, rr=12, spo2=99))
    s = _to(s, "monitoring", first_dose_at=clock.now())
    services.rating_record(nurse, s, kind=ObservationKind.SEDATION, value=5)
    services.vitals_record(nurse, s, Reading(sbp=135, dbp=85))
    with django_assert_num_queries(1):
        last, baseline = monitoring._last_group_and_baseline(s)
    assert last == 3
    assert baseline == selectors.baseline_reading(s) == Reading(sbp=140, dbp=88, hr=78, rr=12, spo2=99)


# The status panel's poll: session, user, membership, patient; the audit entry (5); the session; in the
# monitoring states the clinic's protocol settings, the times vitals were taken and the end of administration
# (the administration with its last device, one query: the observation clock, issue 18; not while dosing,
# when the clock has not started).
STATUS_QUERIES = 13
STATUS_QUERIES_NOT_MONITORING = 10


def _monitor(s: DosingSession) -> str:
    return reverse("sessions:monitor", kwargs={"patient_id": s.patient_id, "session_id": s.pk})


def _page_status_html(world: Any, user: Any, s: DosingSession) -> str:
    """sessions/_status.html rendered from the whole page's context (what the poll rendered before)."""
    from django.template.loader import render_to_string
    from django.test import RequestFactory

    from kapclinic.patients.models import Patient
    from kapclinic.sessions.views import page as views

    request = RequestFactory().get(_monitor(s))
    request.user = user
    request.clinic = world.clinic  # type: ignore[attr-defined]
    request.role = user.memberships.get(clinic=world.clinic).role  # type: ignore[attr-defined]
    session = views._session(Patient.objects.get(pk=s.patient_id), s.pk)
    return render_to_string("sessions/_status.html", views._context(request, session), request=request)


@pytest.mark.parametrize("n", [1, 12])
@pytest.mark.parametrize("state", ["dosing", "monitoring", "recovery"])
def test_status_poll_reads_only_the_panel_and_prints_what_the_page_prints(
    world: Any, client: Any, clock_frozen: Any, django_assert_num_queries: Any, n: int, state: str
) -> None:
    s = _dosed(world)
    _observe(world, s, n)
    s = _to(s, state, recovery_started_at=clock.now() if state == "recovery" else None)
    clock.advance(dt.timedelta(minutes=7))
    for user in (world.nurse, world.prescriber):
        client.force_login(user)
        client.get("/home/")
        with django_assert_num_queries(STATUS_QUERIES - (state == "dosing")):
            r = client.get(_monitor(s), HTTP_HX_REQUEST="true")
        assert r.status_code == 200
        poll = r.content.decode()
        assert poll == _page_status_html(world, user, s)
        assert "min since first dose" in poll and "Vitals schedule" in poll
        # The same panel as the one on the page.
        page = client.get(_detail(s)).content.decode()
        start = page.index('<div id="monitor-status"')
        assert page[start : page.index("</div>", start) + len("</div>")] == poll.strip()


@pytest.mark.parametrize("state", ["scheduled", "checked_in", "discharged", "aborted"])
def test_status_poll_outside_monitoring_is_the_same_empty_panel(
    world: Any, client: Any, clock_frozen: Any, django_assert_num_queries: Any, state: str
) -> None:
    s = _to(_session(world), state)
    for user in (world.nurse, world.prescriber):
        client.force_login(user)
        client.get("/home/")
        with django_assert_num_queries(STATUS_QUERIES_NOT_MONITORING):
            r = client.get(_monitor(s), HTTP_HX_REQUEST="true")
        assert r.status_code == 200
        assert r.content.decode() == _page_status_html(world, user, s)


def test_every_poll_is_checked_and_audited_like_the_page(world: Any, client: Any, clock_frozen: Any) -> None:
    from kapclinic.audit.models import AuditEvent

    s = _dosed(world)
    _observe(world, s, 2)
    client.force_login(world.nurse)
    for _ in range(2):
        before = AuditEvent.objects.count()
        assert client.get(_monitor(s), HTTP_HX_REQUEST="true").status_code == 200
        events = list(AuditEvent.objects.order_by("id")[before:])
        assert [(e.action, e.object_type, e.object_id, e.patient_id, e.actor_id) for e in events] == [
            ("view", "chart", str(s.patient_id), s.patient_id, world.nurse.pk)
        ]
    # Not on the care team: refused (403) and the refusal audited, as on the page.
    client.force_login(world.therapist_other)
    before = AuditEvent.objects.count()
    assert client.get(_monitor(s), HTTP_HX_REQUEST="true").status_code == 403
    events = list(AuditEvent.objects.order_by("id")[before:])
    assert [(e.action, e.object_type, e.detail) for e in events] == [("denied", "chart", "view_clinical")]
    # Another clinic's staff: not found, as on the page.
    client.force_login(world.other_clinic_staff)
    assert client.get(_monitor(s), HTTP_HX_REQUEST="true").status_code == 404


# The page before dosing as the nurse, patient dosing-ready: session, user, membership, patient; the audit
# entry (5); the session; the clinic's protocol settings; the chart's medications; the eligibility
# decision with its assessment; the baseline reading; the gate overrides (with who overrode); the consent
# document and signature; the signed plan; the PHQ-9 window (previous dose, measure settings, the PHQ-9,
# open safety alerts); once checked in, the adverse events.
PRE_DOSE_QUERIES = {"scheduled": 22, "checked_in": 23}

_MEDS = [
    ("Phenelzine", "15 mg", "antidepressant"),
    ("Lorazepam", "1 mg", "benzodiazepine"),
    ("Sertraline", "50 mg", "antidepressant"),
    ("Zolpidem", "5 mg", "sedative"),
    ("Methylphenidate", "10 mg", "stimulant"),
    ("Lisinopril", "10 mg", "antihypertensive"),
]


def _pre_dose(world: Any, state: str, n: int, *, ready: bool = True) -> DosingSession:
    """A session before dosing with n chart medications, n pre-dose readings (checked in) and n gate
    overrides, the patient made dosing-ready (eligibility, consent, plan) and a PHQ-9 taken."""
    from kapclinic.patients.services import medication_add
    from kapclinic.sessions.models import GateOverride
    from kapclinic.sessions.tests.test_sessions import take_phq9
    from kapclinic.treatment.testing import make_dosing_ready

    if ready:
        make_dosing_ready(world.patient, world.prescriber, "esketamine-in-trd")
    take_phq9(world)
    prescriber = actor_for(world.prescriber, world.clinic)
    for name, dose, drug_class in (_MEDS * 2)[:n]:
        medication_add(prescriber, world.patient, name=name, dose=dose, drug_class=drug_class)
    s = _session(world, "checked_in")
    nurse = actor_for(world.nurse, world.clinic)
    for i in range(n):
        services.vitals_record(nurse, s, Reading(sbp=140 - i, dbp=85, hr=72, rr=14, spo2=98))
    for i in range(n):
        GateOverride.objects.create(
            session=s,
            item=["escort_named", "intention_noted", "fasting"][i % 3],
            detail="synthetic",
            reason=f"reason {i}",
            by=world.prescriber,
            at=clock.now(),
        )
    return _to(s, state)


@pytest.mark.parametrize("n", [1, 6])
@pytest.mark.parametrize("state", ["scheduled", "checked_in"])
def test_pre_dose_page_reads_each_fact_once(
    world: Any, client: Any, clock_frozen: Any, django_assert_num_queries: Any, n: int, state: str
) -> None:
    s = _pre_dose(world, state, n)
    client.force_login(world.nurse)
    client.get("/home/")
    with django_assert_num_queries(PRE_DOSE_QUERIES[state]):
        r = client.get(_detail(s))
    assert r.status_code == 200
    page = r.content.decode()
    assert "Prescriber overrides" in page and f"reason {n - 1}" in page
    if state == "checked_in":
        assert "On the chart now: Phenelzine (MAOI)" in page


def _gate_view(result: Any) -> list[tuple[str, str, str, str | None]]:
    return [(i.check.key, i.status, i.check.detail, i.override_reason) for i in result.items]


@pytest.mark.parametrize("case", ["ready", "not_ready", "stale", "new_consent", "no_baseline", "wrong_plan"])
def test_gate_on_the_page_s_facts_is_the_gate_on_its_own_reads(
    world: Any, clock_frozen: Any, case: str
) -> None:
    """Every check of the gate, evaluated on the facts the page read once, answers as the gate reading
    them itself (the services' own path, used by gate_pass and gate_override)."""
    from kapclinic.consent.selectors import consent_summary
    from kapclinic.intake.selectors import eligibility_summary
    from kapclinic.patients.selectors import active_medications

    s = _pre_dose(world, "checked_in", 0 if case == "no_baseline" else 3, ready=case != "not_ready")
    if case == "stale":
        from kapclinic.intake.testing import complete_assessment

        complete_assessment(world.patient, heart_rate=99)
    if case == "new_consent":
        from kapclinic.treatment.testing import publish_consent

        publish_consent(world.clinic, title="Consent v2", body="Changed text.")
    if case == "wrong_plan":
        DosingSession.objects.filter(pk=s.pk).update(protocol_id="ketamine-iv-racemic")
    s = DosingSession.objects.select_related("patient", "clinic").get(pk=s.pk)
    patient = s.patient
    protocol = services.protocol_for(s)
    meds = active_medications(patient)
    assessment, eligibility = eligibility_summary(patient, meds)
    page = services.gate_result(
        s,
        protocol,
        overrides=list(s.gate_overrides.select_related("by")),
        eligibility=eligibility,
        consent=consent_summary(patient),
        baseline=selectors.baseline_reading(s),
    )
    own = services.gate_result(s, protocol)
    assert _gate_view(page) == _gate_view(own)
    assert (page.passed, page.blocking) == (own.passed, own.blocking)
    assert selectors.chart_flagged_medications(
        patient, assessment=assessment, meds=meds
    ) == selectors.chart_flagged_medications(patient)
