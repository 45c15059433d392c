"""Issue 17: the staff bell. Each notification links to its thing, is read per person, and the count
costs the same number of queries however much there is."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from kapclinic.conversations import services as conversations
from kapclinic.conversations.models import ThreadKind
from kapclinic.messaging.models import MessageStatus, OutboundMessage
from kapclinic.notifications import sources
from kapclinic.testing.factories import actor_for, make_patient_user


def _patient_writes(world: Any, user: Any = None, patient: Any = None, subject: str = "Sleep") -> Any:
    user, patient = user or world.patient_user, patient or world.patient
    return conversations.thread_start(
        actor_for(user, world.clinic), patient, kind=ThreadKind.PATIENT, subject=subject, body="Hello"
    )


def test_bell_counts_a_new_message_links_to_it_and_is_read_per_person(world: Any, client: Any) -> None:
    thread = _patient_writes(world)
    client.force_login(world.therapist)
    badge = client.get(reverse("notifications:badge"), headers={"HX-Request": "true"}).content.decode()
    assert ">1<" in badge
    page = client.get(reverse("notifications:index")).content.decode()
    assert "New message: " in page and "Sleep" in page
    item = sources.messages(actor_for(world.therapist, world.clinic))[0]
    p = world.patient
    assert item.title == f"New message: {p.preferred_name or p.legal_first_name} {p.legal_last_name} · Sleep"
    key = item.key
    response = client.get(reverse("notifications:open", kwargs={"key": key}))
    assert response["Location"] == reverse(
        "conversations:thread", kwargs={"patient_id": world.patient.pk, "thread_id": thread.pk}
    )
    assert "badge" not in client.get(reverse("notifications:badge")).content.decode()
    # The prescriber has not read it; the therapist not on the care team never sees it.
    assert len(sources.unread(actor_for(world.prescriber, world.clinic))) == 1
    assert sources.unread(actor_for(world.therapist_other, world.clinic)) == []
    # A new message makes it new again.
    conversations.message_post(actor_for(world.patient_user, world.clinic), thread, body="One more")
    assert len(sources.unread(actor_for(world.therapist, world.clinic))) == 1


def test_failed_delivery_for_admins_and_mark_all_read(world: Any, client: Any) -> None:
    OutboundMessage.objects.create(
        clinic=world.clinic,
        kind="staff_invite",
        to_email="x@example.test",
        subject="Invitation",
        status=MessageStatus.FAILED,
        attempts=5,
    )
    assert len(sources.unread(actor_for(world.admin, world.clinic))) == 1
    assert sources.unread(actor_for(world.front_desk, world.clinic)) == []
    assert sources.unread(actor_for(world.other_clinic_staff, world.other_clinic)) == []
    client.force_login(world.admin)
    assert client.post(reverse("notifications:read_all")).status_code == 302
    assert sources.unread(actor_for(world.admin, world.clinic)) == []
    assert "Could not be delivered" in client.get(reverse("notifications:index")).content.decode()


def test_badge_costs_constant_queries(world: Any, client: Any) -> None:
    client.force_login(world.prescriber)
    _patient_writes(world)
    poll = {"HX-Trigger-Name": "poll"}
    client.get(reverse("notifications:badge"), headers=poll)  # the session's first request checks more
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("notifications:badge"), headers=poll)
    for i in range(12):
        user, patient = make_patient_user(world.clinic, care_team=[world.prescriber])
        _patient_writes(world, user, patient, subject=f"S{i}")
        OutboundMessage.objects.create(
            clinic=world.clinic,
            kind="staff_invite",
            to_email=f"x{i}@example.test",
            subject="Invitation",
            status=MessageStatus.FAILED,
            attempts=5,
        )
    with CaptureQueriesContext(connection) as many:
        body = client.get(reverse("notifications:badge"), headers=poll).content.decode()
    assert ">25<" in body  # 13 unread threads + 12 failed emails
    assert len(many) == len(few)


def test_the_poll_is_not_activity_for_the_idle_sign_out(world: Any, client: Any) -> None:
    from django.test import RequestFactory

    from kapclinic.accounts.middleware import counts_as_activity

    request = RequestFactory().get(reverse("notifications:badge"), headers={"HX-Trigger-Name": "poll"})
    assert counts_as_activity(request) is False
    client.force_login(world.nurse)
    home = client.get(reverse("core:home")).content.decode()
    assert 'hx-get="/notifications/badge/"' in home and '"HX-Trigger-Name": "poll"' in home
