"""Issue 17: the front desk records a patient's mobile number and consent to texts on the chart; a
reminder then goes out by text to that patient (console backend) and not to one who sent STOP."""

from __future__ import annotations

import datetime as dt
from typing import Any

from playwright.sync_api import expect

from kapclinic.core import clock
from kapclinic.messaging import services as messaging
from kapclinic.messaging.models import Channel, OutboundMessage, SmsPreference
from kapclinic.messaging.sms import ConsoleSender
from kapclinic.scheduling import services as scheduling
from kapclinic.scheduling.models import Reminder
from kapclinic.testing.factories import actor_for, make_clinic, make_patient, make_staff


def test_consent_to_texts_then_reminder_by_text_and_none_after_stop(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    clinic = make_clinic("Harbor")
    desk = make_staff(clinic, "front_desk", name="Fran Desk", email="fran@p.test")
    therapist = make_staff(clinic, "therapist", name="Theo Therapist", email="theo@p.test")
    robin = make_patient(clinic, care_team=[therapist], legal_first_name="Robin")
    sam = make_patient(clinic, care_team=[therapist], legal_first_name="Sam")
    SmsPreference.objects.create(
        patient=sam,
        phone_e164="+12025550143",
        wants_sms=True,
        consent_at=clock.now(),
        stopped_at=clock.now(),
        stop_source="reply",
    )

    login(page, "fran@p.test")
    page.goto(f"{server}/patients/{robin.pk}/")
    page.get_by_role("link", name="Text-message preference").click()
    page.get_by_label("Mobile number").fill("202 555 0142")
    page.get_by_label("Send appointment reminders and questionnaire links by text too").check()
    page.get_by_label("The patient consents to receiving texts").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("Mobile number: write it in international form")
    assert not SmsPreference.objects.filter(patient=robin).exists()
    page.get_by_label("Mobile number").fill("+1 202 555 0142")
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Text-message preference saved.")).to_be_visible()
    expect(page.get_by_text("+12025550142")).to_be_visible()
    axe_check(page, "sms-preference")
    shot(page, "sms-1-preference")

    ConsoleSender.outbox.clear()
    for hours, patient in ((2, robin), (4, sam)):
        appt = scheduling.appointment_book(
            actor_for(desk, clinic),
            patient,
            kind="integration",
            starts_at=clock.now() + dt.timedelta(hours=hours),
            minutes=50,
            staff=therapist,
        )
        scheduling.reminder_deliver(Reminder.objects.get(appointment=appt).pk)
    for mid in messaging.due_message_ids():
        messaging.deliver(mid)
    assert [to for to, _body in ConsoleSender.outbox] == ["+12025550142"]
    assert OutboundMessage.objects.filter(channel=Channel.SMS).count() == 1
