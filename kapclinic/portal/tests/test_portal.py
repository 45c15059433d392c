from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.urls import reverse

from kapclinic.core import clock
from kapclinic.core.errors import DomainError
from kapclinic.portal import services
from kapclinic.portal.models import JournalEntry
from kapclinic.scheduling.models import Appointment
from kapclinic.testing.factories import actor_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def dosing(world: Any, clock_frozen: Any) -> Appointment:
    start = clock.now() + dt.timedelta(days=2)
    return Appointment.objects.create(
        clinic=world.clinic, patient=world.patient, kind="dosing", starts_at=start,
        ends_at=start + dt.timedelta(minutes=180), staff=world.therapist, created_by=world.front_desk,
    )  # fmt: skip


def me(world: Any) -> Any:
    return actor_for(world.patient_user, world.clinic)


def test_home_shows_appointment_with_preparation_and_crisis_notice(
    world: Any, client: Any, dosing: Any
) -> None:
    from kapclinic.treatment.testing import make_dosing_ready

    client.force_login(world.patient_user)
    body = client.get(reverse("portal:index")).content.decode()
    assert "Your clinician will tell you how to prepare" in body  # no signed plan yet: no fasting times
    assert "Do not eat" not in body and "take you home" in body
    # An IM plan: the clinic's fasting times, and nothing about a nasal spray (issue 18)
    make_dosing_ready(world.patient, world.prescriber, "ketamine-im-racemic")
    body = client.get(reverse("portal:index")).content.decode()
    assert "Dosing session with" in body
    assert "Do not eat for 2 hours" in body and "take you home" in body
    assert "nasal" not in body.lower()
    assert "Not monitored in real time" in body and "988" in body
    assert "Write your intention for your dosing session" in body


def test_home_prompts_and_recent_entries(world: Any, client: Any, dosing: Any) -> None:
    """The home lists the three newest entries (link, kind, day, shared or private) and prompts for
    the intention before the next dosing session and the reflection after the last, until written."""
    from django.template import Context, Template

    start = clock.now() - dt.timedelta(days=3)
    past = Appointment.objects.create(
        clinic=world.clinic, patient=world.patient, kind="dosing", starts_at=start,
        ends_at=start + dt.timedelta(minutes=120), staff=world.therapist, created_by=world.front_desk,
        status="completed",
    )  # fmt: skip
    client.force_login(world.patient_user)
    index = reverse("portal:index")
    body = client.get(index).content.decode()
    day = Template('{{ a.starts_at|date:"l j F" }}')
    assert f"Write your intention for your dosing session on {day.render(Context({'a': dosing}))}" in body
    assert f"How was your session on {day.render(Context({'a': past}))}? Write a reflection" in body
    assert f"appointment={past.pk}#new-entry" in body and f"appointment={dosing.pk}#new-entry" in body
    entries = [
        services.entry_create(me(world), world.patient, kind="checkin", text="", mood=4, share=True),
        services.entry_create(
            me(world), world.patient, kind="reflection", text="Calmer", appointment=past, share=False
        ),
        services.entry_create(
            me(world), world.patient, kind="intention", text="Curious", appointment=dosing, share=True
        ),
        services.entry_create(me(world), world.patient, kind="checkin", text="", mood=3),
    ]
    body = client.get(index).content.decode()
    assert "Write your intention" not in body and "Write a reflection" not in body
    newest = JournalEntry.objects.filter(pk__in=[e.pk for e in entries]).order_by("-created_at", "-id")[:3]
    before = Template(
        "{% for e in rows %}<li><a href=\"{% url 'portal:entry' e.pk %}\">{{ e.get_kind_display }}</a> · "
        '{{ e.created_at|date:"j M" }} {% if e.is_shared %}<span class="badge ok">Shared</span>{% else %}'
        '<span class="badge">Private</span>{% endif %}</li>{% endfor %}'
    ).render(Context({"rows": newest}))
    assert before in body and body.count('<span class="badge ok">Shared</span>') == 1


def test_intention_requires_a_session_and_text(world: Any, dosing: Any) -> None:
    with pytest.raises(DomainError) as err:
        services.entry_create(me(world), world.patient, kind="intention", text="   ")
    assert "dosing session" in err.value.field_errors["appointment"][0]
    assert "empty intention" in err.value.field_errors["text"][0]


def test_entries_are_private_until_shared_and_withdrawal_keeps_the_entry(
    world: Any, client: Any, dosing: Any
) -> None:
    entry = services.entry_create(
        me(world), world.patient, kind="intention", text="Meet fear with curiosity", appointment=dosing
    )
    client.force_login(world.therapist)
    thread = reverse("notes:thread", args=[world.patient.pk, dosing.pk])
    assert "Meet fear with curiosity" not in client.get(thread).content.decode()
    client.force_login(world.patient_user)
    client.post(reverse("portal:entry_share", args=[entry.pk]), {"action": "share"})
    client.force_login(world.therapist)
    assert "Meet fear with curiosity" in client.get(thread).content.decode()
    client.force_login(world.patient_user)
    r = client.post(reverse("portal:entry_share", args=[entry.pk]), {"action": "withdraw"}, follow=True)
    assert "Sharing withdrawn" in r.content.decode()
    client.force_login(world.therapist)
    assert "Meet fear with curiosity" not in client.get(thread).content.decode()
    entry.refresh_from_db()
    assert entry.text == "Meet fear with curiosity" and entry.share_withdrawn_at is not None
    # withdrawing twice is refused with a sentence; nothing changes
    with pytest.raises(DomainError, match="not shared"):
        services.entry_share(me(world), entry, share=False)


def test_other_patient_cannot_touch_my_entry(world: Any, client: Any) -> None:
    entry = services.entry_create(me(world), world.patient, kind="checkin", text="", mood=4)
    client.force_login(world.other_patient_user)
    assert client.get(reverse("portal:entry", args=[entry.pk])).status_code == 404
    assert client.post(reverse("portal:entry_share", args=[entry.pk]), {"action": "share"}).status_code == 404
    entry.refresh_from_db()
    assert entry.shared_at is None


def test_cannot_attach_to_someone_elses_session(world: Any, client: Any, clock_frozen: Any) -> None:
    start = clock.now() + dt.timedelta(days=1)
    theirs = Appointment.objects.create(
        clinic=world.clinic, patient=world.other_patient, kind="dosing", starts_at=start,
        ends_at=start + dt.timedelta(minutes=180), staff=world.nurse, created_by=world.nurse,
    )  # fmt: skip
    with pytest.raises(DomainError, match="your own dosing sessions"):
        services.entry_create(me(world), world.patient, kind="reflection", text="x", appointment=theirs)
    client.force_login(world.patient_user)
    r = client.post(reverse("portal:journal"), {"kind": "reflection", "appointment": theirs.pk, "text": "x"})
    assert r.status_code == 400
    assert not JournalEntry.objects.exists()


def test_journal_post_and_bad_input(world: Any, client: Any, dosing: Any) -> None:
    client.force_login(world.patient_user)
    r = client.post(reverse("portal:journal"), {"kind": "checkin", "mood": "", "text": ""})
    assert r.status_code == 400 and "Choose how you feel" in r.content.decode()
    r = client.post(
        reverse("portal:journal"),
        {"kind": "intention", "appointment": dosing.pk, "text": "Rest", "share": "on"},
    )
    assert r.status_code == 302
    assert JournalEntry.objects.get().is_shared


def test_who_opened_my_record_shows_roles_not_names(world: Any, client: Any) -> None:
    client.force_login(world.therapist)
    client.get(reverse("patients:chart", args=[world.patient.pk]))
    client.force_login(world.patient_user)
    body = client.get(reverse("portal:access_log")).content.decode()
    assert "Therapist" in body
    assert world.therapist.full_name not in body


@pytest.mark.parametrize("n", [1, 15])
def test_portal_pages_constant_queries(
    n: int, world: Any, client: Any, dosing: Any, django_assert_max_num_queries: Any
) -> None:
    for i in range(n):
        services.entry_create(
            me(world), world.patient, kind="checkin", text=f"day {i}", mood=3, share=i % 2 == 0
        )
    client.force_login(world.therapist)
    for _ in range(n):
        client.get(reverse("patients:chart", args=[world.patient.pk]))
    client.force_login(world.patient_user)
    for name in ("portal:index", "portal:journal", "portal:access_log"):
        with django_assert_max_num_queries(30):
            assert client.get(reverse(name)).status_code == 200


def test_patient_calendar_feed_and_opt_in(world: Any, client: Any, dosing: Any) -> None:
    import re

    import icalendar

    client.force_login(world.patient_user)
    body = client.post(reverse("portal:calendar"), {"action": "reset"}).content.decode()
    found = re.search(r'value="(http[^"]+\.ics)"', body)
    assert found is not None, "the calendar page shows the feed URL"
    url = found.group(1)
    path = url.split("testserver")[-1]
    client.logout()
    event = next(iter(icalendar.Calendar.from_ical(client.get(path).content).walk("VEVENT")))
    assert str(event["summary"]) == f"Appointment at {world.clinic.name}"
    client.force_login(world.patient_user)
    client.post(reverse("portal:calendar"), {"action": "details", "show_details": "on"})
    client.logout()
    event = next(iter(icalendar.Calendar.from_ical(client.get(path).content).walk("VEVENT")))
    assert "Dosing session" in str(event["summary"])
    assert "take you home" in str(event["description"])


def test_portal_home_queries_do_not_grow_with_appointments_and_entries(
    world: Any, client: Any, dosing: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def grow(n: int) -> None:
        taken = Appointment.objects.filter(patient=world.patient).count()  # never two at once
        for i in range(taken, taken + n):
            start = clock.now() + dt.timedelta(days=3 + i)
            Appointment.objects.create(
                clinic=world.clinic, patient=world.patient, kind="integration", starts_at=start,
                ends_at=start + dt.timedelta(minutes=60), staff=world.therapist, created_by=world.front_desk,
            )  # fmt: skip
            services.entry_create(me(world), world.patient, kind="checkin", text=f"day {i}", mood=3)

    def queries() -> int:
        client.get(reverse("portal:index"))  # warm-up
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("portal:index")).status_code == 200
        return len(ctx.captured_queries)

    client.force_login(world.patient_user)
    grow(1)
    one = queries()
    grow(20)
    assert queries() == one <= 30


@pytest.mark.parametrize("others", [0, 8])
def test_home_due_list_matches_the_measures_due_rules(
    others: int, world: Any, client: Any, dosing: Any, django_assert_max_num_queries: Any
) -> None:
    """The home passes the next dosing appointment it already listed to the measures due rules (or lets
    them read it when the listed appointments do not reach it): the same questionnaires are due as
    measures.selectors.due_for_patients gives, and the page reads neither the patient nor the next
    dosing appointment a second time."""
    from kapclinic.measures.selectors import due_for_patients
    from kapclinic.patients.models import Patient

    world.patient.pathway_status = "active"
    world.patient.created_at = clock.now() - dt.timedelta(days=3)
    world.patient.save()
    for i in range(others):  # earlier appointments push the dosing one off the listed eight
        start = clock.now() + dt.timedelta(hours=2 + i)
        Appointment.objects.create(
            clinic=world.clinic, patient=world.patient, kind="therapy", starts_at=start,
            ends_at=start + dt.timedelta(minutes=50), staff=world.therapist, created_by=world.front_desk,
        )  # fmt: skip
    expected = [r.due for r in due_for_patients(Patient.objects.filter(pk=world.patient.pk))]
    assert expected
    client.force_login(world.patient_user)
    # +1: the preparation lines read the signed plan's protocol for the dosing appointment (issue 18)
    with django_assert_max_num_queries(27 if others else 26):
        r = client.get(reverse("portal:index"))
    assert r.context["due"] == expected
    assert "Complete the PHQ-9" in r.content.decode()


def test_who_opened_my_record_in_plain_words_newest_first_no_process_notes(world: Any, client: Any) -> None:
    """Plain words for every event kind; process notes never mentioned; ordered by time, not by row id."""
    import datetime as dt

    from kapclinic.audit.services import record_event
    from kapclinic.core import clock
    from kapclinic.core.actor import Actor

    actor = Actor(world.therapist, world.clinic, "therapist", "req-1", "127.0.0.1")
    record_event(actor, "update", patient=world.patient, object_type="notes.processnote")
    record_event(actor, "create", patient=world.patient, object_type="measures.instrumentresponse")
    record_event(actor, "view", patient=world.patient, object_type="chart")
    record_event(actor, "view", patient=world.patient, object_type="some.unknown_thing")
    # An event stored later but dated earlier (as a seeded history is) sorts by its time.
    clock.freeze(dt.datetime(2020, 11, 11, 9, 0, tzinfo=dt.UTC))
    record_event(actor, "view", patient=world.patient, object_type="treatment_plan")
    clock.reset()
    client.force_login(world.patient_user)
    body = client.get(reverse("portal:access_log")).content.decode()
    assert "process" not in body.lower()
    assert "instrumentresponse" not in body and "unknown_thing" not in body
    assert "Added to your questionnaires" in body
    assert "Opened your chart" in body
    assert "Opened your record" in body
    assert body.index("Opened your chart") < body.index("Opened your treatment plan")


def test_saved_journal_entry_confirms_where_the_patient_lands(world: Any, client: Any) -> None:
    client.force_login(world.patient_user)
    r = client.post(reverse("portal:journal"), {"kind": "checkin", "text": "Calmer today", "mood": "3"})
    assert r.status_code == 302 and r["Location"].endswith("#saved")
    body = client.get(r["Location"].split("#")[0]).content.decode()
    landing = body.index('id="saved"')
    assert body.index("Saved. Only you can read it.") > landing  # printed beside the list, not at the top
    assert body.count("Saved. Only you can read it.") == 1


def test_portal_home_starts_with_a_short_summary(world: Any, client: Any) -> None:
    client.force_login(world.patient_user)
    body = client.get(reverse("portal:index")).content.decode()
    assert body.index("At a glance") < body.index("Upcoming appointments")
    assert "Next appointment:" in body and "To do:" in body
