"""Issue #3 end to end: emailed PHQ-9 link with item 9 positive -> crisis resources -> alert on the
therapist's dashboard -> acknowledged with an action -> the trajectory chart shows the new point."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.core import mail
from playwright.sync_api import expect

from kapclinic.core import clock
from kapclinic.measures import services
from kapclinic.measures.models import InstrumentResponse, SafetyAlert
from kapclinic.testing.factories import actor_for, make_clinic, make_patient, make_staff

ANSWERS = [2, 2, 1, 2, 1, 1, 1, 1, 2]  # total 13, item 9 "More than half the days" (urgent)


def _world() -> dict[str, Any]:
    clinic = make_clinic("Harbor", phone="(555) 010-2040")
    prescriber = make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="prescriber@m.test")
    therapist = make_staff(clinic, "therapist", name="Theo Therapist", email="therapist@m.test")
    patient = make_patient(
        clinic, care_team=[prescriber, therapist], legal_first_name="Robin", email="robin@example.test"
    )
    actor = actor_for(therapist, clinic)
    services.response_submit(
        actor,
        patient,
        instrument="PHQ-9",
        version=None,
        answers=[3, 3, 2, 2, 2, 2, 2, 2, 0],
        source="paper",
        entered_by=therapist,
        completed_at=clock.now() - dt.timedelta(days=14),
    )
    mail.outbox.clear()
    services.link_send(actor, patient, instrument="PHQ-9")
    return {"patient": patient, "clinic": clinic}


def test_emailed_phq9_item9_alert_acknowledged_and_charted(
    browser: Any, page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    w = _world()
    assert len(mail.outbox) == 1
    url = re.search(r"https?://\S+/measures/r/\S+/", mail.outbox[0].body)
    assert url is not None
    path = url.group(0).split("/measures/", 1)[1]

    # The patient (not signed in) opens the emailed link and answers.
    patient_ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    ppage = patient_ctx.new_page()
    ppage.goto(f"{server}/measures/{path}")
    expect(ppage.get_by_text("Little interest or pleasure in doing things")).to_be_visible()

    axe_check(ppage, "measures-link-form")
    for number, value in enumerate(ANSWERS, start=1):
        ppage.locator(f"input[name='item_{number}'][value='{value}']").check()
    shot(ppage, "measures-1-link-form-patient-phone")
    mail.outbox.clear()
    with ppage.expect_navigation():
        ppage.get_by_role("button", name="Send my answers").click()
    ppage.wait_for_load_state("networkidle")
    crisis = ppage.get_by_role(
        "region", name="If you are thinking about harming yourself, help is available now"
    )
    expect(crisis).to_be_visible()

    assert "988" in crisis.inner_text() and "(555) 010-2040" in crisis.inner_text()
    axe_check(ppage, "measures-crisis")
    shot(ppage, "measures-2-crisis-resources-patient-phone")
    # The link cannot be used twice.
    ppage.goto(f"{server}/measures/{path}")
    expect(ppage.get_by_role("heading", name="Already completed")).to_be_visible()

    patient_ctx.close()

    response = InstrumentResponse.objects.get(source="email_link")
    assert (response.total, response.item9, response.item9_urgent) == (13, 2, True)
    alert = SafetyAlert.objects.get(response=response)
    # one email per care-team member, sent by the worker (the immediate backend in tests) after commit
    assert sorted(m.to[0] for m in mail.outbox) == ["prescriber@m.test", "therapist@m.test"]

    # The therapist sees the alert on the dashboard and acknowledges it with an action.
    login(page, "therapist@m.test")
    widget = page.get_by_role("region", name="Open safety alerts", exact=True)
    expect(widget).to_be_visible()
    assert "Robin" in widget.inner_text() and "Urgent" in widget.inner_text()
    axe_check(page, "measures-dashboard-alert")
    shot(page, "measures-3-therapist-dashboard-alert")
    widget.get_by_role("link", name="Review and acknowledge").click()
    page.get_by_label("Action taken").select_option("called_patient")
    page.get_by_label("Note (required for “Other”)").fill("Called; safe tonight; safety plan reviewed.")
    axe_check(page, "measures-acknowledge")
    shot(page, "measures-4-acknowledge-form")
    with page.expect_navigation():
        page.get_by_role("button", name="Acknowledge with this action").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_text("Alert acknowledged and your action recorded.")).to_be_visible()

    alert.refresh_from_db()
    assert alert.action == "called_patient" and not alert.is_open

    # The trajectory chart shows the new point (baseline + the emailed response).
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('chart-1'))")
    points = page.evaluate(
        "() => Chart.getChart(document.getElementById('chart-1')).data.datasets[0].data.length"
    )
    assert points == 2
    table = page.get_by_role("table", name=re.compile("PHQ-9 scores against the baseline"))
    assert "13" in table.inner_text() and "Email" in table.inner_text()
    axe_check(page, "measures-trajectory")
    shot(page, "measures-5-trajectory-after-ack")
    assert w["patient"].pk


def test_outcomes_dashboard_and_safety_plan_in_portal(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    from kapclinic.testing.factories import make_patient_user

    clinic = make_clinic("Harbor")
    prescriber = make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="rx@m.test")
    actor = actor_for(prescriber, clinic)
    start = clock.now() - dt.timedelta(days=60)
    for totals in ([20, 14, 9], [18, 17], [16, 7, 13], [22, 10, 4]):
        patient = make_patient(clinic, care_team=[prescriber])
        for i, total in enumerate(totals):
            answers = [min(3, max(0, total - 3 * k)) for k in range(8)] + [0]
            services.response_submit(
                actor,
                patient,
                instrument="PHQ-9",
                version=None,
                answers=answers,
                source="paper",
                entered_by=prescriber,
                completed_at=start + dt.timedelta(days=7 * i),
            )
    user, me = make_patient_user(clinic, care_team=[prescriber])
    services.safety_plan_save(
        actor,
        me,
        data={"warning_signs": "Not sleeping", "coping_strategies": "Walk by the river"},
        expected_version=None,
    )
    login(page, "rx@m.test")
    page.goto(f"{server}/measures/outcomes/")
    table = page.get_by_role("table", name="By instrument")
    assert "PHQ-9" in table.inner_text() and "75 % (3/4)" in table.inner_text()
    axe_check(page, "measures-outcomes")
    shot(page, "measures-6-clinic-outcomes")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    login(page, user.email)
    page.goto(f"{server}/measures/my/safety-plan/")
    expect(page.get_by_text("Walk by the river")).to_be_visible()

    axe_check(page, "measures-portal-safety-plan")
    shot(page, "measures-7-portal-safety-plan")


def test_long_history_table_is_bounded_and_the_full_history_pages(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    """Issue #7: 20 weekly PHQ-9s; the measures page shows the baseline and the 12 latest with a row
    saying 7 are left out; that row leads to the full history, where all 20 are listed oldest first."""
    clinic = make_clinic("Harbor")
    prescriber = make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="prescriber@h.test")
    patient = make_patient(clinic, care_team=[prescriber], legal_first_name="Robin")
    actor = actor_for(prescriber, clinic)
    start = clock.now() - dt.timedelta(weeks=20)
    for week in range(20):
        total_per_item = 3 if week == 0 else (2 if week < 10 else 1)
        services.response_submit(
            actor,
            patient,
            instrument="PHQ-9",
            version=None,
            answers=[total_per_item] * 8 + [0],
            source="paper",
            entered_by=prescriber,
            completed_at=start + dt.timedelta(weeks=week),
        )
    login(page, "prescriber@h.test")
    page.goto(f"{server}/measures/patients/{patient.pk}/")
    table = page.locator("table", has=page.get_by_text("PHQ-9 scores against the baseline"))
    expect(table.locator("tbody tr")).to_have_count(14)  # baseline, the gap row, 12 latest
    gap = page.get_by_role("link", name="7 earlier responses not shown here: see the full PHQ-9 history")
    expect(gap).to_be_visible()
    axe_check(page, "measures-bounded-table")
    shot(page, "measures-3-bounded-change-table")
    with page.expect_navigation():
        gap.click()
    expect(page.get_by_role("heading", name=re.compile("Full PHQ-9 history"))).to_be_visible()
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(20)
    expect(rows.first).to_contain_text("Baseline")
    expect(rows.last).to_contain_text("8")  # the latest total: eight items at 1
    axe_check(page, "measures-full-history")
    shot(page, "measures-4-full-history")
