"""Issue 12 and 18: no safety message is lost; an alert always reaches someone, and the dashboard says who."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.urls import reverse

from kapclinic.core import clock
from kapclinic.measures.models import InstrumentResponse, SafetyAlert
from kapclinic.messaging import services
from kapclinic.messaging.models import MessageKind, MessageStatus, OutboundMessage
from kapclinic.messaging.retry import MAX_ATTEMPTS, retry_delay
from kapclinic.testing.factories import actor_for, make_patient_user, make_staff
from kapclinic.testing.mail import DOWN

PHQ_ITEM9 = [1, 1, 1, 1, 1, 1, 0, 0, 2]


def _portal_phq9(client: Any, user: Any) -> Any:
    client.force_login(user)
    url = reverse("measures:my_take", kwargs={"instrument": "PHQ-9"})
    return client.post(url, {f"item_{i}": v for i, v in enumerate(PHQ_ITEM9, 1)}, follow=True)


def _deliver_all_due() -> None:
    for mid in services.due_message_ids():
        services.deliver(mid)


@pytest.mark.django_db(transaction=True)
def test_smtp_down_portal_phq9_shows_crisis_resources_queues_retries_and_escalates(
    world: Any, client: Any, clock_frozen: Any, settings: Any
) -> None:
    settings.EMAIL_BACKEND = DOWN
    on_call = make_staff(world.clinic, "prescriber", name="Olu On-Call")
    type(world.clinic).objects.filter(pk=world.clinic.pk).update(on_call_prescriber=on_call)

    # The patient's submission answers with the crisis resources although the mail server is down
    # (before: the response and alert were committed, then the page answered 500).
    page = _portal_phq9(client, world.patient_user)
    assert page.status_code == 200
    html = page.content.decode()
    assert "988 Suicide &amp; Crisis Lifeline" in html and "please read this now" in html
    alert = SafetyAlert.objects.get(response=InstrumentResponse.objects.get())

    # One message per care-team member, tried once by the worker after commit, to be retried in 5 min.
    msgs = list(OutboundMessage.objects.filter(kind=MessageKind.SAFETY_ALERT).order_by("to_email"))
    assert {m.to_user for m in msgs} == {world.prescriber, world.therapist} and len(msgs) == 2
    for m in msgs:
        assert m.status == MessageStatus.RETRYING and m.attempts == 1
        assert m.last_error_class == "SMTPServerDisconnected"
        assert m.next_attempt_at == clock.now() + dt.timedelta(minutes=5)
        assert m.related_id == alert.pk and m.clinic_id == world.clinic.pk
    alert.refresh_from_db()
    assert alert.notified_via == "care_team" and alert.escalated_at is None

    # Not due before the back-off; then retried at 5, 15, 45, 135 minutes until the fifth attempt fails.
    assert services.deliver(msgs[0].pk) == "not-due"
    for attempt in range(1, MAX_ATTEMPTS):
        clock.advance(retry_delay(attempt))
        _deliver_all_due()
    for m in msgs:
        m.refresh_from_db()
        assert m.status == MessageStatus.FAILED and m.attempts == MAX_ATTEMPTS and m.next_attempt_at is None

    # The final failure escalated the alert to the on-call prescriber, once.
    alert.refresh_from_db()
    assert alert.escalated_to == on_call and alert.escalation_reason == "undelivered"
    escalation = OutboundMessage.objects.get(kind=MessageKind.SAFETY_ESCALATION)
    assert escalation.to_user == on_call and escalation.related_id == alert.pk

    # The admin sees the undelivered emails (dashboard card and list with Retry now).
    client.force_login(world.admin)
    home = client.get(reverse("core:home")).content.decode()
    assert "could not be delivered" in home
    listing = client.get(reverse("messaging:index")).content.decode()
    assert "Safety alert notification" in listing and "SMTPServerDisconnected" in listing
    assert "Retry now" in listing

    # The dashboard says who was told and to whom it escalated.
    client.force_login(world.nurse)
    home = client.get(reverse("core:home")).content.decode()
    told = sorted([world.prescriber.full_name, world.therapist.full_name])
    assert f"Notified: {', '.join(told)}" in home
    assert "escalated to Olu On-Call at" in home

    # Mail server back: the admin's retry sends it, and the body (it may hold a link) is not kept.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox.clear()
    assert client.post(reverse("messaging:retry", args=[msgs[0].pk])).status_code == 403  # nurses cannot
    client.force_login(world.admin)
    assert client.post(reverse("messaging:retry", args=[msgs[0].pk])).status_code == 302
    msgs[0].refresh_from_db()
    assert msgs[0].status == MessageStatus.SENT and msgs[0].body_encrypted == ""
    assert mail.outbox[0].to == [msgs[0].to_email]
    body = mail.outbox[0].body.lower()
    assert "phq" not in body and world.patient.legal_last_name.lower() not in body


@pytest.mark.django_db(transaction=True)
def test_patient_without_care_team_alerts_the_on_call_prescriber(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    user, patient = make_patient_user(world.clinic)  # no care team
    page = _portal_phq9(client, user)
    assert page.status_code == 200 and "988 Suicide" in page.content.decode()
    alert = SafetyAlert.objects.get(patient=patient)
    assert alert.notified_via == "on_call" and alert.notified_names == world.prescriber.full_name
    assert [m.to for m in mail.outbox] == [[world.prescriber.email]]
    assert "on-call prescriber" in mail.outbox[0].body
    client.force_login(world.nurse)
    home = client.get(reverse("core:home")).content.decode()
    assert f"Notified: {world.prescriber.full_name} (on-call prescriber: no care team)" in home


@pytest.mark.django_db(transaction=True)
def test_no_care_team_and_no_on_call_says_nobody_was_told(world: Any, client: Any) -> None:
    type(world.clinic).objects.filter(pk=world.clinic.pk).update(on_call_prescriber=None)
    user, patient = make_patient_user(world.clinic)
    assert _portal_phq9(client, user).status_code == 200
    alert = SafetyAlert.objects.get(patient=patient)
    assert alert.notified_via == "nobody" and not OutboundMessage.objects.exists()
    client.force_login(world.nurse)
    assert (
        "Nobody was emailed: no care team and no on-call prescriber"
        in client.get(reverse("core:home")).content.decode()
    )


def _paper_phq9(world: Any) -> SafetyAlert:
    from kapclinic.measures import services as measures

    response = measures.response_submit(
        actor_for(world.therapist, world.clinic),
        world.patient,
        instrument="PHQ-9",
        version=None,
        answers=PHQ_ITEM9,
        source="paper",
        entered_by=world.therapist,
    )
    return SafetyAlert.objects.get(response=response)


@pytest.mark.django_db
def test_unacknowledged_alert_escalates_after_the_clinic_time_once(world: Any, clock_frozen: Any) -> None:
    type(world.clinic).objects.filter(pk=world.clinic.pk).update(alert_escalation_hours=2)
    alert = _paper_phq9(world)
    out = io.StringIO()
    clock.advance(dt.timedelta(hours=1, minutes=59))
    call_command("escalate_safety_alerts", stdout=out)
    assert "Escalated 0" in out.getvalue()
    clock.advance(dt.timedelta(minutes=1))
    call_command("escalate_safety_alerts", stdout=out)
    call_command("escalate_safety_alerts", stdout=out)
    alert.refresh_from_db()
    assert alert.escalated_to == world.prescriber and alert.escalation_reason == "unacknowledged"
    assert alert.escalated_at == clock.now()
    assert OutboundMessage.objects.filter(kind=MessageKind.SAFETY_ESCALATION).count() == 1
    assert "Nobody acknowledged it within 2 hours" in services._decrypt(
        OutboundMessage.objects.get(kind=MessageKind.SAFETY_ESCALATION).body_encrypted
    )


@pytest.mark.django_db
def test_acknowledged_alert_never_escalates(world: Any, clock_frozen: Any) -> None:
    from kapclinic.measures import services as measures

    alert = _paper_phq9(world)
    measures.alert_acknowledge(
        actor_for(world.therapist, world.clinic), alert, action="called_patient", note="Safe"
    )
    clock.advance(dt.timedelta(days=2))
    assert measures.alert_check_escalation(alert.pk) == "not-due"
    call_command("escalate_safety_alerts", stdout=io.StringIO())
    alert.refresh_from_db()
    assert alert.escalated_at is None
    assert not OutboundMessage.objects.filter(kind=MessageKind.SAFETY_ESCALATION).exists()


@pytest.mark.django_db
def test_send_due_messages_requeues_what_the_worker_missed(world: Any, clock_frozen: Any) -> None:
    message = OutboundMessage.objects.create(
        clinic=world.clinic,
        kind=MessageKind.STAFF_INVITE,
        to_email="new@example.test",
        subject="Invitation",
        body_encrypted=services._encrypt("Hello"),
        next_attempt_at=clock.now(),
    )
    out = io.StringIO()
    call_command("send_due_messages", stdout=out)
    assert "Queued 1 due message(s)." in out.getvalue()
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT and mail.outbox[-1].to == ["new@example.test"]


@pytest.mark.django_db
def test_enrolment_is_refused_until_the_on_call_prescriber_is_set(world: Any, client: Any) -> None:
    from kapclinic.accounts.models import Clinic

    Clinic.objects.filter(pk=world.clinic.pk).update(on_call_prescriber=None)
    client.force_login(world.front_desk)
    data = {
        "legal_first_name": "Ana",
        "legal_last_name": "Synthetic",
        "date_of_birth": "1990-01-02",
        "sex_at_birth": "unknown",
    }
    refused = client.post(reverse("patients:new"), data)
    assert refused.status_code == 409
    assert "on-call prescriber" in refused.content.decode()
    # A prescriber names one on the clinic settings page; the change is recorded with a reason.
    client.force_login(world.prescriber)
    url = reverse("sessions:settings_alerts")
    no_reason = client.post(
        url, {"stamp": 0, "on_call_prescriber": world.prescriber.pk, "alert_escalation_hours": 4}
    )
    assert no_reason.status_code == 400 and "Reason is required" in no_reason.content.decode()
    bad_hours = client.post(
        url,
        {"stamp": 0, "on_call_prescriber": world.prescriber.pk, "alert_escalation_hours": 0, "reason": "x"},
    )
    assert bad_hours.status_code == 400 and "between 1 and 72 hours" in bad_hours.content.decode()
    ok = client.post(
        url,
        {"stamp": 0, "on_call_prescriber": world.prescriber.pk, "alert_escalation_hours": 3, "reason": "r"},
    )
    assert ok.status_code == 302
    clinic = Clinic.objects.get(pk=world.clinic.pk)
    assert clinic.on_call_prescriber == world.prescriber and clinic.alert_escalation_hours == 3
    # ... and it can be replaced, not removed
    from kapclinic.sessions.models import ClinicSettingChange

    stamp = ClinicSettingChange.objects.filter(clinic=clinic, area="alerts").latest("id").pk
    removed = client.post(
        url, {"stamp": stamp, "on_call_prescriber": "", "alert_escalation_hours": 3, "reason": "x"}
    )
    assert removed.status_code == 400 and "replaced but not removed" in removed.content.decode()
    client.force_login(world.front_desk)
    assert client.post(reverse("patients:new"), data).status_code == 302


@pytest.mark.django_db
def test_the_on_call_prescriber_cannot_be_deactivated(world: Any, client: Any) -> None:
    from kapclinic.accounts.models import Membership

    client.force_login(world.admin)
    membership = Membership.objects.get(user=world.prescriber, clinic=world.clinic)
    page = client.post(reverse("accounts:staff_toggle", args=[membership.pk]), follow=True)
    assert "on-call prescriber" in page.content.decode()
    membership.refresh_from_db()
    assert membership.is_active
