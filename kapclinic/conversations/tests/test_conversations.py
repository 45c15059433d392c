"""Issue 17: secure messages between a patient and the care team (policy, audit, safety, unread counts,
emails without the text, filing to the chart, FHIR export)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from kapclinic.audit.models import AuditEvent
from kapclinic.conversations import selectors, services
from kapclinic.conversations.models import MAX_MESSAGE_CHARS, Message, Thread, ThreadKind, ThreadStatus
from kapclinic.messaging import services as messaging_services
from kapclinic.messaging.models import MessageKind, OutboundMessage
from kapclinic.testing.factories import actor_for, make_patient_user

SECRET = "I have been feeling much lower since Tuesday"


def _patient_sends(client: Any, world: Any, body: str = SECRET, subject: str = "Since the session") -> Any:
    client.force_login(world.patient_user)
    return client.post(reverse("conversations:my"), {"subject": subject, "body": body})


def test_patient_sends_sees_safety_notice_and_care_team_gets_email_without_the_text(
    world: Any, client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(world.patient_user)
    page = client.get(reverse("conversations:my"))
    html = page.content.decode()
    assert "not monitored in real time" in html and "988" in html and "48 hours" in html
    with django_capture_on_commit_callbacks(execute=False):
        response = _patient_sends(client, world)
    thread = Thread.objects.get()
    assert response.status_code == 302 and thread.awaiting_since is not None
    assert thread.kind == ThreadKind.PATIENT and thread.patient == world.patient
    mails = OutboundMessage.objects.filter(kind=MessageKind.SECURE_MESSAGE)
    assert {m.to_user for m in mails} == {world.prescriber, world.therapist}
    for m in mails:
        body = messaging_services._decrypt(m.body_encrypted)
        assert SECRET not in body and "Since the session" not in body
        assert world.patient.legal_last_name not in body + m.subject
        assert "new secure message" in body
    # The thread page repeats the notice and the crisis resources.
    page = client.get(reverse("conversations:my_thread", kwargs={"thread_id": thread.pk}))
    html = page.content.decode()
    assert SECRET in html and "not monitored in real time" in html and "tel:988" in html
    assert AuditEvent.objects.filter(
        action="create", patient=world.patient, object_type="conversations.thread"
    )


def test_messages_are_escaped_and_size_limited(world: Any, client: Any) -> None:
    response = _patient_sends(client, world, body="<script>alert(1)</script>")
    thread = Thread.objects.get()
    page = client.get(reverse("conversations:my_thread", kwargs={"thread_id": thread.pk}))
    assert "<script>alert(1)</script>" not in page.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.content.decode()
    assert response.status_code == 302
    too_long = _patient_sends(client, world, body="x" * (MAX_MESSAGE_CHARS + 1), subject="Long")
    assert (
        too_long.status_code == 400 and f"at most {MAX_MESSAGE_CHARS} characters" in too_long.content.decode()
    )
    assert Thread.objects.count() == 1 and Message.objects.count() == 1


def test_a_patient_never_reads_another_patients_thread_nor_a_staff_thread(world: Any, client: Any) -> None:
    _patient_sends(client, world)
    thread = Thread.objects.get()
    staff_thread = services.thread_start(
        actor_for(world.prescriber, world.clinic),
        world.patient,
        kind=ThreadKind.STAFF,
        subject="Plan",
        body="Discuss dose",
    )
    client.force_login(world.other_patient_user)
    assert client.get(reverse("conversations:my_thread", kwargs={"thread_id": thread.pk})).status_code == 404
    assert SECRET not in client.get(reverse("conversations:my")).content.decode()
    client.force_login(world.patient_user)
    url = reverse("conversations:my_thread", kwargs={"thread_id": staff_thread.pk})
    assert client.get(url).status_code == 404
    assert "Plan" not in client.get(reverse("conversations:my")).content.decode()
    # Another clinic's staff: the patient does not exist (404); front desk: refused (403, audited).
    kwargs = {"patient_id": world.patient.pk, "thread_id": thread.pk}
    client.force_login(world.other_clinic_staff)
    assert client.get(reverse("conversations:thread", kwargs=kwargs)).status_code == 404
    assert SECRET not in client.get(reverse("conversations:inbox")).content.decode()
    client.force_login(world.front_desk)
    assert client.get(reverse("conversations:thread", kwargs=kwargs)).status_code == 403
    client.force_login(world.therapist_other)
    assert client.get(reverse("conversations:thread", kwargs=kwargs)).status_code == 403
    assert SECRET not in client.get(reverse("conversations:inbox")).content.decode()


def test_therapist_answers_assigns_marks_done_and_files_to_chart(world: Any, client: Any) -> None:
    _patient_sends(client, world)
    thread = Thread.objects.get()
    kwargs = {"patient_id": world.patient.pk, "thread_id": thread.pk}
    client.force_login(world.therapist)
    inbox = client.get(reverse("conversations:inbox")).content.decode()
    assert "Since the session" in inbox and "Unread" in inbox
    assert (
        client.post(
            reverse("conversations:thread", kwargs=kwargs), {"body": "Thank you, let's talk"}
        ).status_code
        == 302
    )
    thread.refresh_from_db()
    assert thread.awaiting_since is None
    notice = OutboundMessage.objects.filter(kind=MessageKind.SECURE_MESSAGE, to_email=world.patient.email)
    assert notice.count() == (1 if world.patient.email else 0)
    response = client.post(
        reverse("conversations:assign", kwargs=kwargs), {"assigned_to": world.therapist.pk}
    )
    assert response.status_code == 302
    thread.refresh_from_db()
    assert thread.assigned_to == world.therapist
    # A therapist not on the care team cannot be assigned.
    client.post(reverse("conversations:assign", kwargs=kwargs), {"assigned_to": world.therapist_other.pk})
    thread.refresh_from_db()
    assert thread.assigned_to == world.therapist
    first = thread.messages.order_by("id")[0]
    response = client.post(reverse("conversations:file", kwargs={**kwargs, "message_id": first.pk}))
    first.refresh_from_db()
    assert first.note is not None and SECRET in first.note.sections[0]["text"]
    assert response["Location"] == reverse(
        "notes:detail", kwargs={"patient_id": world.patient.pk, "note_id": first.note_id}
    )
    again = client.post(reverse("conversations:file", kwargs={**kwargs, "message_id": first.pk}), follow=True)
    assert "already filed" in again.content.decode()
    client.post(reverse("conversations:done", kwargs=kwargs), {"action": "done"})
    thread.refresh_from_db()
    assert thread.status == ThreadStatus.DONE
    # A new patient message reopens it.
    client.force_login(world.patient_user)
    client.post(
        reverse("conversations:my_thread", kwargs={"thread_id": thread.pk}), {"body": "One more thing"}
    )
    thread.refresh_from_db()
    assert thread.status == ThreadStatus.OPEN and thread.awaiting_since is not None
    page = client.get(reverse("conversations:my_thread", kwargs={"thread_id": thread.pk})).content.decode()
    assert "Thank you, let&#x27;s talk" in page


def test_unread_count_costs_constant_queries(world: Any, client: Any) -> None:
    actor = actor_for(world.prescriber, world.clinic)
    patient_actor = actor_for(world.patient_user, world.clinic)
    services.thread_start(patient_actor, world.patient, kind=ThreadKind.PATIENT, subject="A", body="a")
    assert selectors.unread_count(actor) == 1
    with CaptureQueriesContext(connection) as one:
        selectors.unread_count(actor)
    for i in range(15):
        _user, patient = make_patient_user(world.clinic, care_team=[world.prescriber])
        services.thread_start(
            actor_for(_user, world.clinic), patient, kind=ThreadKind.PATIENT, subject=f"S{i}", body="b"
        )
    with CaptureQueriesContext(connection) as many:
        count = selectors.unread_count(actor)
    assert count == 16 and len(many) == len(one) == 1
    thread = Thread.objects.filter(subject="A").get()
    services.mark_read(world.prescriber, thread)
    assert selectors.unread_count(actor) == 15
    assert selectors.unread_count(patient_actor) == 0


def test_unread_count_and_inbox_cost_the_same_queries_whatever_the_messages_and_read_marks(
    world: Any, client: Any
) -> None:
    """Issue 17: "the unread count costs a constant number of queries": long threads, many readers and
    read marks older or newer than the last message change the answer, never the number of queries."""
    actor = actor_for(world.prescriber, world.clinic)
    patient_actor = actor_for(world.patient_user, world.clinic)
    first = services.thread_start(
        patient_actor, world.patient, kind=ThreadKind.PATIENT, subject="A", body="a"
    )
    client.force_login(world.prescriber)
    client.get(reverse("conversations:inbox"))
    with CaptureQueriesContext(connection) as one:
        assert selectors.unread_count(actor) == 1
    with CaptureQueriesContext(connection) as page_one:
        client.get(reverse("conversations:inbox"))
    services.mark_read(world.prescriber, first)
    threads = []
    for i in range(6):
        _user, patient = make_patient_user(world.clinic, care_team=[world.prescriber, world.therapist])
        pa = actor_for(_user, world.clinic)
        t = services.thread_start(pa, patient, kind=ThreadKind.PATIENT, subject=f"S{i}", body="b")
        for k in range(5):
            services.message_post(actor_for(world.therapist, world.clinic), t, body=f"reply {k}")
            services.message_post(pa, t, body=f"more {k}")
        services.mark_read(world.therapist, t)
        threads.append(t)
    services.mark_read(world.prescriber, threads[0])  # read: up to date
    services.message_post(actor_for(world.prescriber, world.clinic), threads[1], body="mine, last")
    with CaptureQueriesContext(connection) as many:
        count = selectors.unread_count(actor)
    with CaptureQueriesContext(connection) as page_many:
        body = client.get(reverse("conversations:inbox")).content.decode()
    assert count == 4  # threads 2-5: the read one and the one the prescriber wrote last are not unread
    assert len(many) == len(one) == 1
    assert len(page_many) == len(page_one)
    assert "S5" in body
    assert selectors.unread_count(actor_for(world.therapist, world.clinic)) >= 1  # thread 1: a newer message


def test_dashboard_lists_patient_messages_older_than_the_reply_time(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    services.settings_update(actor_for(world.admin, world.clinic), hours=24)
    _patient_sends(client, world)
    client.force_login(world.therapist)
    assert "waiting longer than" not in client.get(reverse("core:home")).content.decode()
    clock_frozen.advance(dt.timedelta(hours=25))
    home = client.get(reverse("core:home")).content.decode()
    assert "1 patient message waiting longer than 24 hours" in home and "Since the session" in home
    client.force_login(world.therapist_other)
    assert "Since the session" not in client.get(reverse("core:home")).content.decode()
    client.force_login(world.patient_user)
    assert "24 hours" in client.get(reverse("conversations:my")).content.decode()


def test_reply_time_setting_refuses_nonsense(world: Any, client: Any) -> None:
    client.force_login(world.admin)
    response = client.post(reverse("conversations:settings"), {"reply_hours": "0"})
    assert response.status_code == 400
    assert services.reply_hours(world.clinic) == 48
    assert client.post(reverse("conversations:settings"), {"reply_hours": "72"}).status_code == 302
    assert services.reply_hours(world.clinic) == 72


def test_messages_are_in_the_fhir_export(world: Any, client: Any) -> None:
    from kapclinic.interop.fhir import build_bundle

    _patient_sends(client, world)
    services.thread_start(
        actor_for(world.prescriber, world.clinic),
        world.patient,
        kind=ThreadKind.STAFF,
        subject="Plan",
        body="Discuss dose",
    )
    bundle = build_bundle(world.patient)
    comms = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Communication"]
    assert {c["payload"][0]["contentString"] for c in comms} == {SECRET, "Discuss dose"}
    assert comms[0]["subject"] == {"reference": f"Patient/p{world.patient.pk}"}


@pytest.mark.parametrize("role", ["prescriber", "therapist"])
def test_chart_panel_links_the_patients_messages(world: Any, client: Any, role: str) -> None:
    _patient_sends(client, world)
    client.force_login(getattr(world, role))
    chart = client.get(reverse("patients:chart", kwargs={"patient_id": world.patient.pk})).content.decode()
    assert (
        "Since the session" in chart
        and reverse("conversations:patient", kwargs={"patient_id": world.patient.pk}) in chart
    )


def test_a_refused_message_stores_nothing_and_is_audited_once_as_a_view(world: Any, client: Any) -> None:
    """The four send forms (patient and staff, new thread and reply) answer 400 and record one view:
    of the patient's messages for a new thread, of the thread for a reply."""
    _patient_sends(client, world)
    thread = Thread.objects.get()
    too_long = "x" * (MAX_MESSAGE_CHARS + 1)
    client.force_login(world.patient_user)
    answers = [
        client.post(reverse("conversations:my"), {"subject": "S", "body": too_long}),
        client.post(reverse("conversations:my_thread", kwargs={"thread_id": thread.pk}), {"body": ""}),
    ]
    client.force_login(world.prescriber)
    answers += [
        client.post(
            reverse("conversations:patient", kwargs={"patient_id": world.patient.pk}),
            {"kind": ThreadKind.STAFF, "subject": "S", "body": too_long},
        ),
        client.post(
            reverse("conversations:thread", kwargs={"patient_id": world.patient.pk, "thread_id": thread.pk}),
            {"body": too_long},
        ),
    ]
    assert [a.status_code for a in answers] == [400, 400, 400, 400]
    assert Thread.objects.count() == 1 and Message.objects.count() == 1
    refused = AuditEvent.objects.filter(detail="message refused").order_by("pk")
    assert {(e.action, e.patient_id) for e in refused} == {("view", world.patient.pk)}
    on_thread = ("conversations.thread", str(thread.pk))
    assert [(e.object_type, e.object_id) for e in refused] == [
        ("messages", ""),
        on_thread,
        ("messages", ""),
        on_thread,
    ]
