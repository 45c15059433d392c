"""Issues 12 and 18 in the browser: with the mail server down, the patient still sees the crisis resources;
the admin sees the undelivered emails; the dashboard says who was told and to whom the alert escalated."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from kapclinic.accounts.models import Clinic
from kapclinic.core import clock
from kapclinic.messaging import services
from kapclinic.messaging.retry import MAX_ATTEMPTS, retry_delay
from kapclinic.testing.factories import make_clinic, make_patient_user, make_staff
from kapclinic.testing.mail import DOWN

ANSWERS = [2, 2, 1, 2, 1, 1, 1, 1, 2]


def test_mail_down_crisis_resources_undelivered_list_and_who_was_told(
    browser: Any, page: Any, server: str, login: Any, axe_check: Any, shot: Any, settings: Any
) -> None:
    clinic = make_clinic("Harbor", phone="(555) 010-2040")
    rx = make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="rx@msg.test")
    on_call = make_staff(clinic, "prescriber", name="Dr. Olu Oncall", email="oncall@msg.test")
    therapist = make_staff(clinic, "therapist", name="Theo Therapist", email="theo@msg.test")
    make_staff(clinic, "admin", name="Ada Admin", email="admin@msg.test")
    Clinic.objects.filter(pk=clinic.pk).update(on_call_prescriber=on_call)
    user, _patient = make_patient_user(clinic, care_team=[rx, therapist], legal_first_name="Robin")
    settings.EMAIL_BACKEND = DOWN

    # The patient answers a PHQ-9 in the portal while the mail server is down.
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    ppage = ctx.new_page()
    login(ppage, user.email)
    ppage.goto(f"{server}/measures/my/take/PHQ-9/")
    for number, value in enumerate(ANSWERS, start=1):
        ppage.locator(f"input[name='item_{number}'][value='{value}']").check()
    with ppage.expect_navigation():
        ppage.get_by_role("button", name="Send my answers").click()
    crisis = ppage.get_by_role(
        "region", name="If you are thinking about harming yourself, help is available now"
    )
    expect(crisis).to_be_visible()
    assert "988" in crisis.inner_text()
    axe_check(ppage, "messages-portal-crisis-mail-down")
    shot(ppage, "messages-1-portal-crisis-with-mail-down")
    ctx.close()

    # The worker keeps trying; the fifth failure gives up and escalates to the on-call prescriber.
    for attempt in range(1, MAX_ATTEMPTS):
        clock.advance(retry_delay(attempt))
        for mid in services.due_message_ids():
            services.deliver(mid)

    login(page, "admin@msg.test")
    card = page.get_by_role("region", name="Undelivered emails")
    expect(card).to_be_visible()
    assert "2 emails could not be delivered" in card.inner_text()
    shot(page, "messages-2-admin-dashboard-undelivered")
    card.get_by_role("link", name="See undelivered emails").click()
    table = page.get_by_role("table", name="Outgoing email")
    expect(table).to_contain_text("Safety alert notification")
    expect(table).to_contain_text("SMTPServerDisconnected")
    axe_check(page, "messages-undelivered-list")
    shot(page, "messages-3-undelivered-list")

    tctx = browser.new_context(viewport={"width": 1280, "height": 900})
    tpage = tctx.new_page()
    login(tpage, "theo@msg.test")
    widget = tpage.get_by_role("region", name="Open safety alerts", exact=True)
    expect(widget).to_contain_text("Notified: Dr. Priya Prescriber, Theo Therapist")
    expect(widget).to_contain_text("escalated to Dr. Olu Oncall at")
    axe_check(tpage, "messages-dashboard-who-was-told")
    shot(tpage, "messages-4-dashboard-who-was-told")
    tctx.close()


def test_clinic_settings_safety_alert_section(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    clinic = make_clinic("Harbor")
    make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="rx2@msg.test")
    login(page, "rx2@msg.test")
    page.goto(f"{server}/sessions/settings/")
    section = page.get_by_role("region", name="Safety alerts: who is told")
    expect(section).to_contain_text("patients cannot be enrolled until one is")
    section.get_by_label("On-call prescriber").select_option(label="Dr. Priya Prescriber")
    section.get_by_label("Reason for the change").fill("Weekend rota")
    with page.expect_navigation():
        section.get_by_role("button", name="Save safety-alert settings").click()
    expect(page.get_by_text("1 safety-alert setting(s) changed.")).to_be_visible()
    expect(page.get_by_role("table", name="Recent changes to clinic settings")).to_contain_text(
        "alerts: on_call_prescriber"
    )
    axe_check(page, "settings-safety-alerts")
    shot(page, "messages-5-settings-safety-alerts")
