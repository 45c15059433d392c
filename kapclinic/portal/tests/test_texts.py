"""Issue 17: the patient records their text-message choice and consent in the portal (the same
messaging.SmsPreference the reminders, STOP webhook and staff page use), and can withdraw it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.urls import reverse

from kapclinic.audit.models import AuditEvent
from kapclinic.core import clock
from kapclinic.messaging import services
from kapclinic.messaging.models import SmsPreference

pytestmark = pytest.mark.django_db

NUMBER = "+12025550142"  # 555-01xx numbers are reserved for fiction
URL = "portal:texts"


def _save(client: Any, **data: Any) -> Any:
    return client.post(reverse(URL), {"action": "save", **data})


def test_patient_consents_with_the_date_and_gets_texts(world: Any, client: Any, clock_frozen: Any) -> None:
    client.force_login(world.patient_user)
    page = client.get(reverse(URL))
    assert page.status_code == 200 and "The clinic does not text you" in page.content.decode()
    assert 'type="tel"' in page.content.decode()
    response = _save(client, phone="+1 202-555-0142", wants_sms="on", consent="on")
    assert response.status_code == 302
    pref = SmsPreference.objects.get(patient=world.patient)
    assert pref.phone_e164 == NUMBER and pref.wants_sms and pref.may_text
    assert pref.consent_at == clock.now() and pref.consent_recorded_by == world.patient_user
    assert AuditEvent.objects.filter(
        action="update", patient=world.patient, object_type="messaging.smspreference"
    ).exists()
    html = client.get(reverse(URL)).content.decode()
    assert "You get texts" in html and "given 2 March 2026 (by you)" in html
    # Staff see that the patient gave it.
    client.force_login(world.front_desk)
    staff = client.get(reverse("messaging:sms", kwargs={"patient_id": world.patient.pk})).content.decode()
    assert "by the patient in the portal" in staff


@pytest.mark.parametrize("phone", ["202 555 0142", "+1 555", "+44 12", "call me", "+1202555014299999"])
def test_a_number_that_is_not_e164_is_refused_with_a_sentence_nothing_stored(
    world: Any, client: Any, phone: str
) -> None:
    client.force_login(world.patient_user)
    response = _save(client, phone=phone, wants_sms="on", consent="on")
    assert response.status_code == 400
    assert "with + and your country code" in response.content.decode()
    assert not SmsPreference.objects.exists()


def test_texts_without_consent_are_refused(world: Any, client: Any) -> None:
    client.force_login(world.patient_user)
    response = _save(client, phone=NUMBER, wants_sms="on")
    assert response.status_code == 400 and "tick the box" in response.content.decode()
    assert not SmsPreference.objects.exists()


def test_withdrawal_stops_texts_keeps_the_consent_date_and_consent_can_be_given_again(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    client.force_login(world.patient_user)
    _save(client, phone=NUMBER, wants_sms="on", consent="on")
    given = clock.now()
    clock.advance(dt.timedelta(days=3))
    response = client.post(reverse(URL), {"action": "withdraw"})
    assert response.status_code == 302
    pref = SmsPreference.objects.get(patient=world.patient)
    assert not pref.may_text and pref.consent_at == given and pref.stopped_at == clock.now()
    assert pref.stop_source == services.STOP_PORTAL
    assert services.queue_sms(kind="appointment_reminder", patient=world.patient, body="x") is None
    html = client.get(reverse(URL)).content.decode()
    assert "you withdrew your consent here" in html and "The clinic does not text you" in html
    # Withdrawing twice: a sentence, nothing changes.
    again = client.post(reverse(URL), {"action": "withdraw"})
    assert again.status_code == 400 and "nothing to withdraw" in again.content.decode()
    # Agreeing again dates the new consent and ends the stop.
    clock.advance(dt.timedelta(days=1))
    _save(client, phone=NUMBER, wants_sms="on", consent="on")
    pref.refresh_from_db()
    assert pref.may_text and pref.consent_at == clock.now() and pref.stopped_at is None


def test_unticking_consent_withdraws_it(world: Any, client: Any) -> None:
    client.force_login(world.patient_user)
    _save(client, phone=NUMBER, wants_sms="on", consent="on")
    assert _save(client, phone=NUMBER).status_code == 302
    pref = SmsPreference.objects.get(patient=world.patient)
    assert not pref.may_text and pref.stopped_at is not None and pref.stop_source == services.STOP_PORTAL


def test_a_stop_by_text_reply_is_shown_to_the_patient(world: Any, client: Any) -> None:
    client.force_login(world.patient_user)
    _save(client, phone=NUMBER, wants_sms="on", consent="on")
    assert services.sms_inbound(NUMBER, "STOP") == 1
    html = client.get(reverse(URL)).content.decode()
    assert "you replied STOP to a text" in html and "The clinic does not text you" in html


def test_each_patient_sees_only_their_own_choice(world: Any, client: Any) -> None:
    client.force_login(world.patient_user)
    _save(client, phone=NUMBER, wants_sms="on", consent="on")
    client.force_login(world.other_patient_user)
    html = client.get(reverse(URL)).content.decode()
    assert NUMBER not in html and "The clinic does not text you" in html
    client.force_login(world.nurse)
    assert client.get(reverse(URL)).status_code == 403
