"""Issue 17: text messages. A reminder goes by text to a consenting patient and not to one who sent
STOP; the real provider backend is exercised against a fake HTTP server on loopback; a number that is
not valid E.164 is refused with a sentence; texts carry no clinical detail; failures use the same retries
and undelivered list as email."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from django.urls import reverse

from kapclinic.messaging import services, sms
from kapclinic.messaging.models import Channel, MessageStatus, OutboundMessage, SmsPreference
from kapclinic.scheduling import services as scheduling
from kapclinic.scheduling.models import Reminder
from kapclinic.testing.factories import actor_for, make_patient_user

NUMBER = "+12025550142"  # 555-01xx numbers are reserved for fiction


class _FakeTwilio(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    answer = 201

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        _FakeTwilio.received.append({"path": self.path, "auth": self.headers.get("Authorization"), **form})
        self.send_response(_FakeTwilio.answer)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"sid": "SM1", "status": "queued"}).encode())

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def fake_twilio(settings: Any) -> Any:
    server = HTTPServer(("127.0.0.1", 0), _FakeTwilio)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _FakeTwilio.received, _FakeTwilio.answer = [], 201
    settings.SMS_BACKEND = "twilio"
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = "AC123", "secret-token"
    settings.TWILIO_FROM_NUMBER = "+12025550100"
    settings.SMS_API_BASE = f"http://127.0.0.1:{server.server_port}"
    yield _FakeTwilio
    server.shutdown()
    server.server_close()


def _consent(world: Any, patient: Any, number: str = NUMBER) -> SmsPreference:
    return services.sms_preference_update(
        actor_for(world.front_desk, world.clinic),
        patient,
        phone=number,
        wants_sms=True,
        consent=True,
        stopped=False,
    )


def _reminder_for(world: Any, patient: Any, clock: Any) -> Reminder:
    appt = scheduling.appointment_book(
        actor_for(world.front_desk, world.clinic),
        patient,
        kind="integration",
        starts_at=clock.now() + dt.timedelta(hours=30),
        minutes=50,
        staff=world.prescriber,
    )
    return Reminder.objects.get(appointment=appt)


def test_reminder_goes_by_text_to_a_consenting_patient_not_to_one_who_sent_stop(
    world: Any, fake_twilio: Any, clock_frozen: Any, client: Any
) -> None:
    _consent(world, world.patient)
    _other_user, other = make_patient_user(world.clinic, care_team=[world.prescriber])
    _consent(world, other, "+12025550143")
    # The other patient replies STOP through the provider's signed webhook.
    url = reverse("messaging:sms_inbound")
    params = {"From": "+12025550143", "Body": "stop"}
    signature = sms.twilio_signature("secret-token", "http://testserver" + url, params)
    assert client.post(url, params, headers={"X-Twilio-Signature": "forged"}).status_code == 403
    from django.conf import settings

    settings.SITE_URL = "http://testserver"
    assert client.post(url, params, headers={"X-Twilio-Signature": signature}).status_code == 200
    other_pref = SmsPreference.objects.get(patient=other)
    assert other_pref.stopped_at is not None and other_pref.stop_source == "reply" and not other_pref.may_text

    for patient in (world.patient, other):
        reminder = _reminder_for(world, patient, clock_frozen)
        clock_frozen.advance(dt.timedelta(hours=7))
        scheduling.reminder_deliver(reminder.pk)
    texts = OutboundMessage.objects.filter(channel=Channel.SMS)
    assert [t.to_phone for t in texts] == [NUMBER]
    for mid in services.due_message_ids():
        services.deliver(mid)
    sent = texts.get()
    assert sent.status == MessageStatus.SENT
    [call] = fake_twilio.received
    assert (
        call["To"] == NUMBER
        and call["From"] == "+12025550100"
        and call["path"].endswith("/AC123/Messages.json")
    )
    assert call["auth"].startswith("Basic ")
    body = call["Body"]
    assert "Reply STOP" in body and world.clinic.name in body
    for clinical in ("integration", "Integration", world.patient.legal_last_name, "dosing"):
        assert clinical not in body


def test_a_provider_failure_is_retried_then_listed_like_email(
    world: Any, fake_twilio: Any, clock_frozen: Any
) -> None:
    _consent(world, world.patient)
    fake_twilio.answer = 500
    message = services.queue_sms(kind="appointment_reminder", patient=world.patient, body="x. Reply STOP")
    assert message is not None
    assert services.deliver(message.pk) == "retrying"
    message.refresh_from_db()
    assert message.last_error_class == "SmsError" and message.attempts == 1
    for _ in range(5):
        clock_frozen.advance(dt.timedelta(hours=5))
        services.deliver(message.pk)
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED


def test_invalid_number_refused_with_a_sentence_nothing_stored(world: Any, client: Any) -> None:
    client.force_login(world.front_desk)
    url = reverse("messaging:sms", kwargs={"patient_id": world.patient.pk})
    for bad in ("555-0102", "+1 555", "call me", "+999123456789"):
        response = client.post(url, {"phone": bad, "wants_sms": "on", "consent": "on"})
        assert response.status_code == 400 and "international form" in response.content.decode()
    assert not SmsPreference.objects.exists()
    response = client.post(url, {"phone": "+1 (202) 555-0142", "wants_sms": "on", "consent": "on"})
    assert response.status_code == 302
    pref = SmsPreference.objects.get()
    assert pref.phone_e164 == NUMBER and pref.consent_at is not None and pref.may_text
    # Texts without consent: refused.
    response = client.post(url, {"phone": NUMBER, "wants_sms": "on"})
    assert response.status_code == 400 and "consent" in response.content.decode()


def test_console_backend_prints_and_the_config_refuses_a_plain_http_provider() -> None:
    sms.ConsoleSender.outbox.clear()
    sms.ConsoleSender().send(NUMBER, "hello")
    assert sms.ConsoleSender.outbox == [(NUMBER, "hello")]
    assert sms.config_problems("twilio", "AC1", "t", "+12025550100", "http://api.example.org")
    assert not sms.config_problems("twilio", "AC1", "t", "+12025550100", "https://api.twilio.com")
    assert sms.config_problems("twilio", "", "", "", "https://api.twilio.com")
    assert sms.e164("+44 20 7946 0958") == "+442079460958" and sms.e164("020 7946 0958") is None
