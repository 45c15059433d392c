"""A dosing session is started from its dosing appointment (DosingSession.appointment): the nurse's
"start session" on the chair board, the appointment page and the sessions list; scheduling and notes
follow the link instead of matching sessions to appointments by time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse

from kapclinic.audit.models import AuditEvent
from kapclinic.clinical.session_state import Event
from kapclinic.core import clock
from kapclinic.core.errors import DomainError
from kapclinic.notes import services as note_services
from kapclinic.scheduling.models import Appointment, Resource
from kapclinic.sessions import services
from kapclinic.sessions.models import DosingSession
from kapclinic.testing.factories import actor_for, make_patient
from kapclinic.treatment.testing import make_dosing_ready

pytestmark = pytest.mark.django_db


def dosing_appt(world: Any, *, patient: Any = None, hours: float = 1, **kw: Any) -> Appointment:
    """A dosing appointment (today, ``hours`` after the frozen 14:00 UTC) in a chair."""
    chair = Resource.objects.get_or_create(clinic=world.clinic, name="Chair 1", kind="chair")[0]
    start = clock.now() + dt.timedelta(hours=hours)
    return Appointment.objects.create(
        clinic=world.clinic, patient=patient or world.patient, kind=kw.pop("kind", "dosing"),
        starts_at=start, ends_at=start + dt.timedelta(minutes=kw.pop("minutes", 180)), staff=world.nurse,
        resource=chair, created_by=world.front_desk, **kw,
    )  # fmt: skip


def nurse(world: Any) -> Any:
    return actor_for(world.nurse, world.clinic)


def test_start_creates_a_linked_session_on_the_plan_protocol(world: Any, clock_frozen: Any) -> None:
    make_dosing_ready(world.patient, world.prescriber, "ketamine-iv-racemic")
    appt = dosing_appt(world)
    session, created = services.session_start_from_appointment(nurse(world), appt)
    assert created
    assert session.appointment_id == appt.pk and session.patient_id == world.patient.pk
    assert session.protocol_id == "ketamine-iv-racemic" and session.scheduled_for == appt.starts_at
    assert session.state == "scheduled" and session.created_by_id == world.nurse.pk
    # A second start (double click, a colleague on another tablet) opens the same session.
    again, created = services.session_start_from_appointment(nurse(world), appt)
    assert again.pk == session.pk and not created
    assert DosingSession.objects.count() == 1


def test_start_after_the_front_desk_check_in_is_already_checked_in(world: Any, clock_frozen: Any) -> None:
    """Issue 18: the front desk marked the arrival; the nurse's "Start session" then opens a session checked
    in at that time (no second "Check patient in"), and the day list and chair board keep showing the patient
    as checked in instead of going back to "Scheduled"."""
    from kapclinic.scheduling import selectors as scheduling_selectors
    from kapclinic.scheduling import services as scheduling_services
    from kapclinic.sessions.models import SessionTransition

    make_dosing_ready(world.patient, world.prescriber, "ketamine-iv-racemic")
    appt = dosing_appt(world)
    arrived = clock.now()
    scheduling_services.appointment_check_in(
        actor_for(world.front_desk, world.clinic), appt, expected_version=appt.version
    )
    clock.advance(dt.timedelta(minutes=7))  # the nurse starts the session a few minutes later
    session, created = services.session_start_from_appointment(nurse(world), appt)
    assert created and session.state == "checked_in" and session.checked_in_at == arrived
    step = SessionTransition.objects.get(session=session)
    assert (step.event, step.from_state, step.to_state, step.by_id) == (
        "check_in",
        "scheduled",
        "checked_in",
        world.nurse.pk,
    )
    assert step.reason == "Arrival recorded at the front desk at 09:00."
    assert AuditEvent.objects.filter(object_id=str(session.pk), detail="transition:check_in").count() == 1
    appt.refresh_from_db()
    for clinical in (True, False):
        assert scheduling_selectors.appointment_state(appt, session, clinical=clinical) == "Checked in"
    # The session page offers the pre-dose checks, not a second check-in.
    from django.test import Client

    client = Client()
    client.force_login(world.nurse)
    page = client.get(reverse("sessions:detail", args=[world.patient.pk, session.pk])).content.decode()
    assert "Check patient in" not in page and "Pre-dose safety checks" in page
    # Without a front-desk check-in the session starts scheduled, as before.
    other = make_patient(world.clinic, care_team=[world.prescriber])
    make_dosing_ready(other, world.prescriber, "ketamine-iv-racemic")
    later = dosing_appt(world, patient=other, hours=5)
    second, _ = services.session_start_from_appointment(nurse(world), later)
    assert second.state == "scheduled" and second.checked_in_at is None


def test_start_refusals_are_sentences_and_save_nothing(world: Any, clock_frozen: Any) -> None:
    appt = dosing_appt(world)
    with pytest.raises(DomainError, match="no signed treatment plan"):
        services.session_start_from_appointment(nurse(world), appt)
    make_dosing_ready(world.patient, world.prescriber)
    Appointment.objects.filter(pk=appt.pk).update(status="cancelled")
    with pytest.raises(DomainError, match="marked cancelled"):
        services.session_start_from_appointment(nurse(world), Appointment.objects.get(pk=appt.pk))
    integration = dosing_appt(world, hours=5, kind="integration", minutes=60)
    with pytest.raises(DomainError, match="started from a dosing appointment"):
        services.session_create(
            nurse(world),
            world.patient,
            protocol_key="esketamine-in-trd",
            scheduled_for=clock.now(),
            appointment=integration,
        )
    other = dosing_appt(world, patient=make_patient(world.clinic), hours=8)
    with pytest.raises(DomainError, match="not one of this patient's"):
        services.session_create(
            nurse(world),
            world.patient,
            protocol_key="esketamine-in-trd",
            scheduled_for=clock.now(),
            appointment=other,
        )
    assert not DosingSession.objects.exists()


def test_an_aborted_session_frees_the_appointment(world: Any, clock_frozen: Any) -> None:
    make_dosing_ready(world.patient, world.prescriber)
    appt = dosing_appt(world)
    first, _ = services.session_start_from_appointment(nurse(world), appt)
    with pytest.raises(DomainError, match="already has a dosing session"):
        services.session_create(
            nurse(world),
            world.patient,
            protocol_key="esketamine-in-trd",
            scheduled_for=clock.now(),
            appointment=appt,
        )
    services.session_transition(
        nurse(world), first, Event.ABORT, expected_version=first.version, reason="Patient unwell"
    )
    second, created = services.session_start_from_appointment(nurse(world), appt)
    assert created and second.pk != first.pk and second.appointment_id == appt.pk


def test_start_view_redirects_to_the_session_with_one_audit_event(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    make_dosing_ready(world.patient, world.prescriber)
    appt = dosing_appt(world)
    client.force_login(world.nurse)
    before = AuditEvent.objects.count()
    r = client.post(reverse("sessions:start", args=[appt.pk]))
    session = DosingSession.objects.get(appointment=appt)
    assert r.status_code == 302 and r["Location"] == reverse(
        "sessions:detail", kwargs={"patient_id": world.patient.pk, "session_id": session.pk}
    )
    assert AuditEvent.objects.count() == before + 1
    before = AuditEvent.objects.count()
    r = client.post(reverse("sessions:start", args=[appt.pk]))  # already started: the same session
    assert r["Location"].endswith(f"/{session.pk}/") and DosingSession.objects.count() == 1
    assert AuditEvent.objects.count() == before + 1
    page = client.get(r["Location"]).content.decode()
    assert reverse("scheduling:detail", args=[appt.pk]) in page


def test_start_view_refusal_returns_to_the_appointment_with_the_sentence(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    appt = dosing_appt(world)
    client.force_login(world.nurse)
    before = AuditEvent.objects.count()
    r = client.post(reverse("sessions:start", args=[appt.pk]), follow=True)
    assert r.redirect_chain[0][0] == reverse("scheduling:detail", args=[appt.pk])
    assert "no signed treatment plan" in r.content.decode()
    assert not DosingSession.objects.exists()
    assert AuditEvent.objects.filter(detail="session start refused").count() == 1
    assert AuditEvent.objects.count() >= before + 1


def test_only_monitoring_staff_start_sessions(world: Any, client: Any, clock_frozen: Any) -> None:
    make_dosing_ready(world.patient, world.prescriber)
    appt = dosing_appt(world)
    for user, status in ((world.therapist, 403), (world.front_desk, 403), (world.other_clinic_staff, 404)):
        client.force_login(user)
        assert client.post(reverse("sessions:start", args=[appt.pk])).status_code == status
    assert not DosingSession.objects.exists()


def test_chair_board_starts_and_opens_sessions_by_the_link(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    make_dosing_ready(world.patient, world.prescriber)
    appt = dosing_appt(world)
    # A session of the same patient at the same time that was NOT started from this appointment is not
    # taken for it (no matching by time any more).
    DosingSession.objects.create(
        clinic=world.clinic, patient=world.patient, protocol_id="esketamine-in-trd", protocol_version="1.0.0",
        scheduled_for=appt.starts_at, created_by=world.prescriber,
    )  # fmt: skip
    client.force_login(world.nurse)
    board = client.get(reverse("scheduling:chairs")).content.decode()
    assert reverse("sessions:start", args=[appt.pk]) in board and "Booked" in board
    client.post(reverse("sessions:start", args=[appt.pk]))
    session = DosingSession.objects.get(appointment=appt)
    board = client.get(reverse("scheduling:chairs")).content.decode()
    assert reverse("sessions:start", args=[appt.pk]) not in board
    assert reverse("sessions:detail", args=[world.patient.pk, session.pk]) in board
    assert "Scheduled" in board
    detail = client.get(reverse("scheduling:detail", args=[appt.pk])).content.decode()
    assert reverse("sessions:detail", args=[world.patient.pk, session.pk]) in detail
    # The front desk sees the phase but neither a start button nor a link into the clinical record.
    client.force_login(world.front_desk)
    board = client.get(reverse("scheduling:chairs")).content.decode()
    assert (
        "Scheduled" in board and reverse("sessions:detail", args=[world.patient.pk, session.pk]) not in board
    )
    detail = client.get(reverse("scheduling:detail", args=[appt.pk])).content.decode()
    assert reverse("sessions:start", args=[appt.pk]) not in detail


def test_appointment_page_and_sessions_list_offer_the_start(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    make_dosing_ready(world.patient, world.prescriber)
    appt = dosing_appt(world)
    client.force_login(world.nurse)
    start = reverse("sessions:start", args=[appt.pk])
    assert start in client.get(reverse("scheduling:detail", args=[appt.pk])).content.decode()
    assert start in client.get(reverse("sessions:index")).content.decode()
    assert start in client.get(reverse("sessions:new", args=[world.patient.pk])).content.decode()
    client.post(start)
    assert start not in client.get(reverse("sessions:index")).content.decode()
    assert start not in client.get(reverse("sessions:new", args=[world.patient.pk])).content.decode()


def test_integration_note_and_thread_follow_the_link(world: Any, client: Any, clock_frozen: Any) -> None:
    make_dosing_ready(world.patient, world.prescriber)
    appt = dosing_appt(world, hours=-4)
    therapist = actor_for(world.therapist, world.clinic)
    note = note_services.note_create(
        therapist, world.patient, template_key="integration", dosing_appointment=appt
    )
    thread = reverse("notes:thread", args=[world.patient.pk, appt.pk])
    client.force_login(world.therapist)
    assert "no dosing-session record linked yet" in client.get(thread).content.decode()
    session, _ = services.session_start_from_appointment(nurse(world), appt)
    session_url = reverse("sessions:detail", args=[world.patient.pk, session.pk])
    assert session_url in client.get(thread).content.decode()
    # The note written before the session was started finds it through the appointment.
    assert session_url in client.get(reverse("notes:edit", args=[world.patient.pk, note.pk])).content.decode()


@pytest.mark.parametrize("n", [1, 6])
def test_chair_board_queries_do_not_grow_with_sessions(
    n: int, world: Any, client: Any, clock_frozen: Any, django_assert_max_num_queries: Any
) -> None:
    for i in range(n):
        p = make_patient(world.clinic)
        make_dosing_ready(p, world.prescriber)
        appt = dosing_appt(world, patient=p, hours=-6 + 3 * i)
        if i % 2 == 0:
            services.session_start_from_appointment(nurse(world), appt)
    client.force_login(world.nurse)
    with django_assert_max_num_queries(20):
        r = client.get(reverse("scheduling:chairs"))
    assert r.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_migration_links_existing_sessions_only_when_unambiguous(world: Any) -> None:
    from django.db.migrations.executor import MigrationExecutor

    before = [
        ("kap_sessions", "0006_dosing_session_appointment"),
        ("notes", "0002_processnote_dosing_session"),
        # the appointment as it was then (before telehealth's place of service, which has no database default)
        ("scheduling", "0003_kinds_checkin_proposal"),
    ]
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        Session = old.get_model("kap_sessions", "DosingSession")
        Appt = old.get_model("scheduling", "Appointment")
        Note = old.get_model("notes", "Note")
        t = dt.datetime(2026, 2, 20, 9, 0, tzinfo=dt.UTC)

        def appt(patient: Any, start: dt.datetime, **kw: Any) -> Any:
            return Appt.objects.create(
                clinic_id=world.clinic.pk, patient_id=patient.pk, kind=kw.pop("kind", "dosing"),
                starts_at=start, ends_at=start + dt.timedelta(hours=3), staff_id=world.nurse.pk,
                created_by_id=world.nurse.pk, **kw,
            )  # fmt: skip

        def session(patient: Any, when: dt.datetime) -> Any:
            return Session.objects.create(
                clinic_id=world.clinic.pk, patient_id=patient.pk, protocol_id="esketamine-in-trd",
                protocol_version="1.0.0", scheduled_for=when, created_by_id=world.nurse.pk,
            )  # fmt: skip

        p1, p2, p3 = world.patient, world.other_patient, make_patient(world.clinic)
        exact_appt, exact = appt(p1, t), session(p1, t)
        off_by_an_hour = session(p1, t + dt.timedelta(days=1, hours=1))
        appt(p1, t + dt.timedelta(days=1))
        noted_appt = appt(p2, t + dt.timedelta(days=2))
        noted = session(p2, t + dt.timedelta(days=2, minutes=20))
        Note.objects.create(
            clinic_id=world.clinic.pk, patient_id=p2.pk, kind="integration", template_key="integration",
            template_version="1", title="Integration", service_date=t.date(), author_id=world.therapist.pk,
            dosing_appointment_id=noted_appt.pk, dosing_session_id=noted.pk,
        )  # fmt: skip
        appt(p3, t + dt.timedelta(days=3))
        twin_a, twin_b = session(p3, t + dt.timedelta(days=3)), session(p3, t + dt.timedelta(days=3))
    finally:
        MigrationExecutor(connection).migrate(leaves)
    linked = dict(DosingSession.objects.values_list("pk", "appointment_id"))
    assert linked[exact.pk] == exact_appt.pk
    assert linked[noted.pk] == noted_appt.pk
    assert linked[off_by_an_hour.pk] is None  # no guessing by time window
    assert linked[twin_a.pk] is None and linked[twin_b.pk] is None  # two live sessions, one appointment
