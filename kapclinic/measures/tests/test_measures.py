"""Measures app: responses, links, alerts, safety plan, trajectories, outcomes, schedules, command."""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from kapclinic.audit.models import AuditEvent
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.errors import DomainError
from kapclinic.measures import selectors, services
from kapclinic.measures.models import (
    Episode,
    InstrumentResponse,
    ItemAnswer,
    MeasureLink,
    MeasureSettings,
    SafetyAlert,
    SafetyPlan,
)
from kapclinic.measures.schedule import DEFAULT_RULES, ScheduleRule, next_due
from kapclinic.testing.factories import actor_for, make_patient

PHQ_MILD_ITEM9 = [1, 1, 1, 1, 1, 1, 1, 1, 2]  # total 10, item 9 = 2 (urgent)


def submit(
    world: Any, answers: list[int], *, patient: Any = None, instrument: str = "PHQ-9", **kw: Any
) -> Any:
    return services.response_submit(
        actor_for(world.prescriber, world.clinic),
        patient or world.patient,
        instrument=instrument,
        version=None,
        answers=answers,
        source=kw.pop("source", "paper"),
        entered_by=world.prescriber,
        **kw,
    )


def phq(total: int) -> list[int]:
    """PHQ-9 answers with the given total and item 9 = 0."""
    answers, left = [], total
    for _ in range(8):
        answers.append(min(3, left))
        left -= answers[-1]
    assert left == 0
    return [*answers, 0]


# ---------------------------------------------------------------- responses and alerts


@pytest.mark.django_db
def test_response_stores_typed_scores_and_answers(world: Any, clock_frozen: Any) -> None:
    r = submit(world, [2, 2, 2, 2, 2, 0, 0, 0, 0])
    assert (r.total, r.severity, r.instrument_version) == (10, "moderate", "1.0.0")
    assert r.provisional_diagnosis == "major_depressive_syndrome"
    assert r.source == "paper" and r.entered_by == world.prescriber
    answers = list(ItemAnswer.objects.filter(response=r).values_list("item_number", "value", "answer_code"))
    assert answers[0] == (1, 2, "LA6570-1") and len(answers) == 9
    assert r.is_baseline and r.episode.baseline_id == r.pk
    assert not SafetyAlert.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_item9_raises_alert_and_emails_care_team_without_clinical_detail(
    world: Any, clock_frozen: Any
) -> None:
    mail.outbox.clear()
    r = submit(world, PHQ_MILD_ITEM9)
    alert = SafetyAlert.objects.get(response=r)
    assert alert.urgent and alert.is_open
    # one email per care-team member, each through the outbound queue
    assert sorted(m.to[0] for m in mail.outbox) == sorted([world.prescriber.email, world.therapist.email])
    assert all(len(m.to) == 1 for m in mail.outbox)
    alert.refresh_from_db()
    assert alert.notified_via == "care_team"
    assert set(alert.notified_names.split(", ")) == {world.prescriber.full_name, world.therapist.full_name}
    body = "".join(f"{m.subject}{m.body}" for m in mail.outbox).lower()
    for secret in (
        "phq",
        "item 9",
        "suicid",
        "urgent",
        world.patient.legal_last_name.lower(),
        world.patient.mrn.lower(),
    ):
        assert secret not in body


@pytest.mark.django_db
def test_item9_of_one_is_not_urgent(world: Any) -> None:
    r = submit(world, [0, 0, 0, 0, 0, 0, 0, 0, 1])
    assert SafetyAlert.objects.get(response=r).urgent is False


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ([1] * 8, "PHQ-9 needs 9 or 10 answers"),
        ([1] * 8 + [4], "Item 9 answer 4 is out of range"),
        ([1] * 8 + [None], "Item(s) 9 have no answer"),
    ],
)
def test_bad_answers_store_nothing(world: Any, answers: list[Any], message: str) -> None:
    with pytest.raises(DomainError) as exc:
        submit(world, answers)
    assert message in str(exc.value)
    assert not InstrumentResponse.objects.exists() and not Episode.objects.exists()


@pytest.mark.django_db
def test_unknown_instrument_version_is_refused(world: Any, client: Any) -> None:
    with pytest.raises(DomainError, match=r"version '0\.9' is not on file"):
        services.response_submit(
            Actor.system(world.clinic), world.patient, instrument="PHQ-9", version="0.9",
            answers=[0] * 9, source="paper",
        )  # fmt: skip
    client.force_login(world.nurse)
    url = reverse("measures:enter", kwargs={"patient_id": world.patient.pk, "instrument": "PHQ-9"})
    data = {f"item_{i}": 0 for i in range(1, 10)} | {
        "completed_on": "2026-03-01",
        "instrument_version": "0.9",
    }
    resp = client.post(url, data)
    assert resp.status_code == 400
    assert "version &#x27;0.9&#x27; is not on file" in resp.content.decode()
    assert not InstrumentResponse.objects.exists()


@pytest.mark.django_db
def test_paper_entry_view(world: Any, client: Any, clock_frozen: Any) -> None:
    client.force_login(world.therapist)
    url = reverse("measures:enter", kwargs={"patient_id": world.patient.pk, "instrument": "GAD-7"})
    resp = client.get(url)
    assert "Feeling nervous, anxious or on edge" in resp.content.decode()
    bad = client.post(url, {"item_1": 3, "item_2": 9, "completed_on": "2026-03-01"})
    assert bad.status_code == 400
    html = bad.content.decode()
    assert "Item 3 needs an answer." in html and "Item 2: 9 is not one of the listed answers." in html
    future = client.post(url, {f"item_{i}": 1 for i in range(1, 8)} | {"completed_on": "2026-03-09"})
    assert "Date completed cannot be in the future." in future.content.decode()
    assert not InstrumentResponse.objects.exists()
    ok = client.post(url, {f"item_{i}": 1 for i in range(1, 8)} | {"completed_on": "2026-03-01"})
    assert ok.status_code == 302
    r = InstrumentResponse.objects.get()
    assert (r.source, r.entered_by, r.total, r.completed_at.date()) == (
        "paper",
        world.therapist,
        7,
        dt.date(2026, 3, 1),
    )


# ---------------------------------------------------------------- emailed single-use links


def _send(world: Any) -> tuple[MeasureLink, str]:
    with _captured_on_commit():
        return services.link_send(actor_for(world.therapist, world.clinic), world.patient, instrument="PHQ-9")


class _captured_on_commit:
    """Run on_commit callbacks immediately inside a (non-transactional) test."""

    def __enter__(self) -> None:
        from django.db import transaction

        self._orig = transaction.on_commit
        transaction.on_commit = lambda fn, using=None, robust=False: fn()  # type: ignore[assignment]

    def __exit__(self, *exc: Any) -> None:
        from django.db import transaction

        transaction.on_commit = self._orig


@pytest.mark.django_db
def test_link_is_hashed_single_use_and_expires(world: Any, client: Any, clock_frozen: Any) -> None:
    mail.outbox.clear()
    link, token = _send(world)
    assert token not in link.token_hash and len(link.token_hash) == 64
    assert link.expires_at == clock.now() + dt.timedelta(hours=72)
    assert len(mail.outbox) == 1 and token in mail.outbox[0].body and "PHQ" not in mail.outbox[0].body
    url = reverse("measures:link", kwargs={"token": token})
    assert "Little interest or pleasure in doing things" in client.get(url).content.decode()
    data = {f"item_{i}": 0 for i in range(1, 10)}
    resp = client.post(url, data)
    assert resp.status_code == 302 and resp["Location"].endswith("/done/")
    r = InstrumentResponse.objects.get()
    assert r.source == "email_link" and r.entered_by is None
    again = client.post(url, data)
    assert again.status_code == 410 and "already been used" in again.content.decode()
    assert InstrumentResponse.objects.count() == 1
    done = client.get(resp["Location"])
    assert (
        done.status_code == 200 and "988" not in done.content.decode().split("<main")[1].split("</main>")[0]
    )


@pytest.mark.django_db
def test_expired_and_unknown_links(world: Any, client: Any, clock_frozen: Any) -> None:
    MeasureSettings.objects.create(clinic=world.clinic, link_hours=24)
    link, token = _send(world)
    assert link.expires_at == clock.now() + dt.timedelta(hours=24)
    clock.advance(dt.timedelta(hours=24, seconds=1))
    url = reverse("measures:link", kwargs={"token": token})
    resp = client.post(url, {f"item_{i}": 0 for i in range(1, 10)})
    assert resp.status_code == 410 and "expired" in resp.content.decode()
    assert client.get(reverse("measures:link", kwargs={"token": "nope"})).status_code == 404
    assert not InstrumentResponse.objects.exists()


@pytest.mark.django_db
def test_link_with_positive_item9_shows_crisis_resources(world: Any, client: Any, clock_frozen: Any) -> None:
    world.clinic.phone = "555-0100"
    world.clinic.save()
    _, token = _send(world)
    resp = client.post(
        reverse("measures:link", kwargs={"token": token}), {f"item_{i}": 1 for i in range(1, 10)}
    )
    page = client.get(resp["Location"]).content.decode()
    assert "988" in page and "555-0100" in page and "911" in page
    assert SafetyAlert.objects.filter(patient=world.patient).count() == 1


@pytest.mark.django_db
def test_link_refused_without_email(world: Any) -> None:
    patient = make_patient(world.clinic, care_team=[world.prescriber], email="")
    with pytest.raises(DomainError, match="no email address"):
        services.link_send(actor_for(world.prescriber, world.clinic), patient, instrument="PHQ-9")


# ---------------------------------------------------------------- portal


@pytest.mark.django_db
def test_portal_completion_and_crisis_page(world: Any, client: Any) -> None:
    client.force_login(world.patient_user)
    url = reverse("measures:my_take", kwargs={"instrument": "PHQ-9"})
    resp = client.post(url, {f"item_{i}": v for i, v in enumerate(PHQ_MILD_ITEM9, 1)})
    assert resp.status_code == 302
    page = client.get(resp["Location"]).content.decode()
    assert "988 Suicide &amp; Crisis Lifeline" in page and "please read this now" in page
    r = InstrumentResponse.objects.get()
    assert (r.source, r.entered_by) == ("portal", world.patient_user)
    missing = client.post(url, {"item_1": 1})
    assert missing.status_code == 400 and "Item 2 needs an answer." in missing.content.decode()
    assert InstrumentResponse.objects.count() == 1


# ---------------------------------------------------------------- acknowledgement, dashboard, chart


@pytest.mark.django_db
def test_acknowledge_alert(world: Any, client: Any, clock_frozen: Any) -> None:
    alert = submit(world, PHQ_MILD_ITEM9).safety_alert
    url = reverse("measures:acknowledge", kwargs={"patient_id": world.patient.pk, "alert_id": alert.pk})
    client.force_login(world.therapist)
    assert client.post(url, {"action": ""}).status_code == 400
    other = client.post(url, {"action": "other", "note": " "})
    assert other.status_code == 400 and "describe the action" in other.content.decode()
    assert client.post(url, {"action": "called_patient", "note": "Safe, plan reviewed"}).status_code == 302
    alert.refresh_from_db()
    assert (alert.action, alert.acknowledged_by, alert.is_open) == ("called_patient", world.therapist, False)
    client.force_login(world.prescriber)
    late = client.post(url, {"action": "saw_patient"})
    assert late.status_code == 409 and "already acknowledged" in late.content.decode()
    alert.refresh_from_db()
    assert alert.acknowledged_by == world.therapist


@pytest.mark.django_db
def test_dashboard_and_chart_show_alert_with_overdue(world: Any, client: Any, clock_frozen: Any) -> None:
    submit(world, PHQ_MILD_ITEM9)
    client.force_login(world.therapist)
    home = client.get(reverse("core:home")).content.decode()
    assert "Open safety alerts" in home and world.patient.display_name in home and "Overdue" not in home
    clock.advance(dt.timedelta(hours=25))
    home = client.get(reverse("core:home")).content.decode()
    assert "Overdue" in home
    chart = client.get(reverse("patients:chart", kwargs={"patient_id": world.patient.pk})).content.decode()
    assert "Urgent safety alert" in chart
    client.force_login(world.therapist_other)  # not on the care team
    assert world.patient.display_name not in client.get(reverse("core:home")).content.decode()


# ---------------------------------------------------------------- safety plan


@pytest.mark.django_db
def test_safety_plan_edit_conflict_and_portal(world: Any, client: Any) -> None:
    url = reverse("measures:safety_plan", kwargs={"patient_id": world.patient.pk})
    client.force_login(world.therapist)
    data = {"warning_signs": "Not sleeping", "coping_strategies": "Walk", "people_and_places": "",
            "professionals_and_crisis_lines": "988", "making_environment_safe": "", "version": 0}  # fmt: skip
    assert client.post(url, data).status_code == 302
    plan = SafetyPlan.objects.get()
    assert client.post(url, data | {"version": plan.version}).status_code == 302
    stale = client.post(url, data | {"version": plan.version, "warning_signs": "x"})
    assert stale.status_code == 409 and "Someone else changed this record" in stale.content.decode()
    client.force_login(world.patient_user)
    page = client.get(reverse("measures:my_safety_plan")).content.decode()
    assert "Not sleeping" in page
    client.force_login(world.other_patient_user)
    assert "Not sleeping" not in client.get(reverse("measures:my_safety_plan")).content.decode()


# ---------------------------------------------------------------- outcomes


@pytest.mark.django_db
def test_episode_outcomes_and_relapse(world: Any, clock_frozen: Any) -> None:
    start = clock.now() - dt.timedelta(days=60)
    for i, total in enumerate([20, 14, 10, 4, 12]):
        submit(world, phq(total), completed_at=start + dt.timedelta(days=7 * i))
    rows = list(InstrumentResponse.objects.order_by("completed_at"))
    assert [r.is_response for r in rows] == [None, False, True, True, False]
    assert [r.is_remission for r in rows] == [None, False, False, True, False]
    assert [r.is_relapse for r in rows] == [False, False, False, False, True]
    assert rows[3].reliable_change == "reliably_improved" and rows[1].reliable_change == "no_reliable_change"
    assert rows[2].percent_change == -50.0
    ep = Episode.objects.get()
    assert (ep.baseline_total, ep.latest_total, ep.followup_count) == (20, 12, 4)
    assert ep.responded and ep.relapsed and not ep.latest_remission


@pytest.mark.django_db
def test_new_episode_resets_baseline(world: Any, client: Any, clock_frozen: Any) -> None:
    submit(world, phq(20), completed_at=clock.now() - dt.timedelta(days=30))
    client.force_login(world.prescriber)
    client.post(reverse("measures:restart", kwargs={"patient_id": world.patient.pk, "instrument": "PHQ-9"}))
    r = submit(world, phq(8))
    assert r.is_baseline and Episode.objects.count() == 2


@pytest.mark.django_db
def test_clinic_outcomes_computed_in_sql(world: Any, clock_frozen: Any) -> None:
    start = clock.now() - dt.timedelta(days=60)
    series = [[20, 9], [18, 16], [16, 6, 12], [10]]  # responder, non-responder, relapser, baseline only
    for totals in series:
        patient = make_patient(world.clinic, care_team=[world.prescriber])
        for i, total in enumerate(totals):
            submit(world, phq(total), patient=patient, completed_at=start + dt.timedelta(days=7 * i))
    Episode.objects.filter(patient__legal_first_name__isnull=False).update(route="IV")
    InstrumentResponse.objects.filter(is_response=True).update(sessions_before=3)
    Episode.objects.filter(responded=True).update(sessions_to_response=3)
    data = selectors.clinic_outcomes(world.clinic)
    row = data["instrument"][0]
    assert row["instrument"] == "PHQ-9"
    assert (row["patients"], row["with_followup"], row["episodes"]) == (4, 3, 3)
    assert (row["responded"], row["remission"], row["relapsed"]) == (2, 0, 1)
    assert row["median_sessions"] == 3
    assert data["route"][0]["route"] == "IV"


@pytest.mark.django_db
def test_outcomes_break_down_by_real_plan_protocol_route_and_indication(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    """Baseline at intake (no plan yet); the plan is signed; the follow-up fills the episode's protocol,
    route and indication from the treatment app, so the dashboard groups by them."""
    from kapclinic.treatment.testing import make_dosing_ready

    iv = make_patient(world.clinic, care_team=[world.prescriber])
    esk = make_patient(world.clinic, care_team=[world.prescriber])
    start = clock.now() - dt.timedelta(days=40)
    for p in (iv, esk):
        submit(world, phq(20), patient=p, completed_at=start)
    assert set(Episode.objects.values_list("protocol", flat=True)) == {""}
    make_dosing_ready(iv, world.prescriber, "ketamine-iv-racemic")
    make_dosing_ready(esk, world.prescriber, "esketamine-in-trd")
    submit(world, phq(8), patient=iv, completed_at=start + dt.timedelta(days=21))
    submit(world, phq(18), patient=esk, completed_at=start + dt.timedelta(days=21))
    data = selectors.clinic_outcomes(world.clinic)
    routes = {r["route"]: r for r in data["route"]}
    assert routes["IV"]["responded"] == 1 and routes["IN"]["responded"] == 0
    assert {r["indication"] for r in data["indication"]} == {"F33.1"}
    assert len(data["protocol"]) == 2 and all(r["protocol"] for r in data["protocol"])
    client.force_login(world.prescriber)
    body = client.get(reverse("measures:outcomes")).content.decode()
    assert "By protocol" in body and "By route" in body and ">IV<" in body


@pytest.mark.django_db
def test_outcomes_page(world: Any, client: Any) -> None:
    submit(world, phq(20))
    client.force_login(world.therapist)
    assert "Clinic outcomes" in client.get(reverse("measures:outcomes")).content.decode()


@pytest.mark.django_db
def test_trajectory_page_has_chart_and_table(world: Any, client: Any, clock_frozen: Any) -> None:
    submit(world, phq(20), completed_at=clock.now() - dt.timedelta(days=14))
    submit(world, phq(9))
    client.force_login(world.nurse)
    html = client.get(reverse("measures:patient", kwargs={"patient_id": world.patient.pk})).content.decode()
    assert (
        'id="measure-charts"' in html and "chart.umd.min.js" in html and "chartjs-plugin-annotation" in html
    )
    assert "Moderately severe" in html and "Response" in html and "-55 %" in html


# ---------------------------------------------------------------- audit and query counts


@pytest.mark.django_db
def test_one_audit_event_per_request(world: Any, client: Any) -> None:
    submit(world, phq(10))
    client.force_login(world.prescriber)
    before = AuditEvent.objects.count()
    client.get(reverse("measures:patient", kwargs={"patient_id": world.patient.pk}))
    assert AuditEvent.objects.count() == before + 1
    url = reverse("measures:enter", kwargs={"patient_id": world.patient.pk, "instrument": "PHQ-9"})
    before = AuditEvent.objects.count()
    client.post(url, {f"item_{i}": 0 for i in range(1, 10)} | {"completed_on": "2026-01-01"})
    assert AuditEvent.objects.count() == before + 1
    before = AuditEvent.objects.count()
    client.post(url, {"item_1": 0, "completed_on": "2026-01-01"})  # refused
    assert AuditEvent.objects.count() == before + 1


@pytest.mark.django_db
@pytest.mark.parametrize("n", [1, 12])
def test_query_counts_do_not_grow(
    world: Any, client: Any, clock_frozen: Any, n: int, django_assert_max_num_queries: Any
) -> None:
    for i in range(n):
        patient = make_patient(
            world.clinic, care_team=[world.prescriber, world.therapist], pathway_status="active"
        )
        submit(world, PHQ_MILD_ITEM9, patient=patient)
        submit(world, phq(10 + i % 5), completed_at=clock.now() - dt.timedelta(days=i + 1))
    client.force_login(world.therapist)
    client.get(reverse("measures:index"))  # warm session/MFA caches
    with django_assert_max_num_queries(22):
        assert client.get(reverse("measures:index")).status_code == 200
    with django_assert_max_num_queries(22):
        assert client.get(reverse("core:home")).status_code == 200
    with django_assert_max_num_queries(22):
        assert (
            client.get(reverse("measures:patient", kwargs={"patient_id": world.patient.pk})).status_code
            == 200
        )
    with django_assert_max_num_queries(22):
        assert client.get(reverse("measures:outcomes")).status_code == 200


# ---------------------------------------------------------------- schedules (pure)

NOW = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def due(rule: ScheduleRule, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "now": NOW, "phase": "induction", "intake_at": NOW - 10 * DAY,
        "last_response_at": None, "last_dosing_at": None, "next_dosing_at": None,
    } | kw  # fmt: skip
    return next_due(rule, **args)


def test_schedule_baseline_due_then_overdue() -> None:
    d = due(DEFAULT_RULES["PHQ-9"], intake_at=NOW - DAY)
    assert (d.reason, d.due, d.overdue) == ("baseline", True, False)
    assert due(DEFAULT_RULES["PHQ-9"]).overdue is True


def test_schedule_before_dosing() -> None:
    rule = DEFAULT_RULES["PHQ-9"]
    d = due(rule, last_response_at=NOW - 8 * DAY, next_dosing_at=NOW + DAY)
    assert (d.reason, d.due, d.overdue) == ("before_dosing", True, False)
    assert due(rule, last_response_at=NOW - 8 * DAY, next_dosing_at=NOW + 5 * DAY).due is False
    assert (
        due(rule, last_response_at=NOW - 12 * 3600 * dt.timedelta(seconds=1), next_dosing_at=NOW + DAY)
        is None
    )
    assert due(rule, last_response_at=NOW - 8 * DAY, next_dosing_at=NOW - DAY).overdue is True


def test_schedule_cadence_restarts_at_dosing() -> None:
    rule = ScheduleRule("PCL-5", induction_every_days=30, maintenance_every_days=60)
    d = due(rule, last_response_at=NOW - 31 * DAY)
    assert (d.reason, d.due) == ("cadence", True)
    assert due(rule, last_response_at=NOW - 31 * DAY, last_dosing_at=NOW - 5 * DAY).due is False
    assert due(rule, phase="maintenance", last_response_at=NOW - 31 * DAY).due is False


@pytest.mark.django_db
def test_due_list(world: Any, clock_frozen: Any) -> None:
    world.patient.pathway_status = "active"
    world.patient.created_at = clock.now() - dt.timedelta(days=3)
    world.patient.save()
    rows = selectors.due_list(actor_for(world.therapist, world.clinic))
    assert {r.due.instrument for r in rows if r.patient_id == world.patient.pk} == {"PHQ-9", "GAD-7"}
    submit(world, phq(5))
    rows = selectors.due_list(actor_for(world.therapist, world.clinic))
    assert {r.due.instrument for r in rows if r.patient_id == world.patient.pk} == {"GAD-7"}


# ---------------------------------------------------------------- management command


def test_score_command_prints_one_json_object() -> None:
    out = io.StringIO()
    call_command("score", "PCL-5", *(["2"] * 20), stdout=out)
    data = json.loads(out.getvalue())
    assert set(data) == {
        "instrument",
        "version",
        "total",
        "severity",
        "subscales",
        "flags",
        "provisional_diagnosis",
    }
    assert data["subscales"] == {"B": 10, "C": 4, "D": 14, "E": 12}
    assert data["provisional_diagnosis"] == "provisional_ptsd"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["PHQ-9", "1", "2"], "PHQ-9 needs 9 or 10 answers"),
        (["GAD-7", "0", "0", "0", "0", "0", "0", "5"], "Item 7 answer 5 is out of range"),
        (["XYZ", "1"], "Unknown instrument"),
        (["GAD-7", "a"], "is not a whole number"),
    ],
)
def test_score_command_bad_input_exits_2(args: list[str], message: str) -> None:
    err = io.StringIO()
    with pytest.raises(SystemExit) as exc:
        call_command("score", *args, stdout=io.StringIO(), stderr=err)
    assert exc.value.code == 2
    assert message in err.getvalue()


@pytest.mark.django_db(transaction=True)
def test_reminders_send_one_link_per_due_instrument(world: Any) -> None:
    Patient = type(world.patient)
    Patient.objects.filter(pk=world.patient.pk).update(
        pathway_status="active", created_at=clock.now() - dt.timedelta(days=5)
    )
    mail.outbox.clear()
    out = io.StringIO()
    call_command("send_measure_reminders", stdout=out)
    assert "Sent 2 reminder link(s)" in out.getvalue()  # PHQ-9 and GAD-7 baselines
    assert {link.instrument for link in MeasureLink.objects.filter(patient=world.patient)} == {
        "PHQ-9",
        "GAD-7",
    }
    assert len([m for m in mail.outbox if world.patient.email in m.to]) == 2
    out = io.StringIO()
    call_command("send_measure_reminders", stdout=out)
    assert "Sent 0 reminder link(s)" in out.getvalue()  # links still open: no duplicates


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["prescriber", "therapist"])
def test_alerts_widget_lists_ten_with_the_rest_counted_in_the_same_query(
    role: str, world: Any, client: Any, clock_frozen: Any, django_assert_max_num_queries: Any
) -> None:
    """Clinic-wide (prescriber) and caseload (therapist) roles: ten rows with their links and raised
    time as the template filters printed them, "N more", and the home reads the same number of queries
    with one alert as with twelve. Another clinic's alert never shows."""
    from django.utils import formats, timezone

    from kapclinic.measures.models import SafetyAlert

    user = getattr(world, role)
    submit(world, PHQ_MILD_ITEM9, patient=world.other_clinic_patient)
    submit(world, PHQ_MILD_ITEM9)
    client.force_login(user)
    with CaptureQueriesContext(connection) as one:
        client.get(reverse("core:home"))
    for _i in range(11):
        clock.advance(dt.timedelta(minutes=7))
        submit(world, PHQ_MILD_ITEM9)
    with django_assert_max_num_queries(len(one.captured_queries)):
        body = client.get(reverse("core:home")).content.decode()
    shown = list(
        SafetyAlert.objects.filter(clinic=world.clinic, acknowledged_at__isnull=True).order_by(
            "-urgent", "raised_at", "id"
        )[:10]
    )
    assert body.count("Review and acknowledge") == 10
    assert "2 more open alerts" in body
    assert world.other_clinic_patient.display_name not in body
    for a in shown:
        ack = reverse("measures:acknowledge", kwargs={"patient_id": a.patient_id, "alert_id": a.pk})
        assert f'href="{ack}"' in body
        assert formats.date_format(timezone.localtime(a.raised_at), "M j, H:i") in body
    assert f'href="{reverse("measures:patient", kwargs={"patient_id": world.patient.pk})}"' in body


def test_trajectory_chart_times_are_the_clinic_wall_clock(world: Any, client: Any, clock_frozen: Any) -> None:
    """One clock (issue 18): the chart gets 23:30 on the clinic's 28 February, not 1 March in UTC."""
    from kapclinic.accounts.models import Clinic

    Clinic.objects.filter(pk=world.clinic.pk).update(time_zone="America/Los_Angeles")
    submit(world, phq(9), completed_at=dt.datetime(2026, 3, 1, 7, 30, tzinfo=dt.UTC))  # 23:30 on 28 Feb
    client.force_login(world.nurse)
    html = client.get(reverse("measures:patient", kwargs={"patient_id": world.patient.pk})).content.decode()
    assert '"2026-02-28T23:30:00"' in html and "2026-03-01T07:30" not in html
