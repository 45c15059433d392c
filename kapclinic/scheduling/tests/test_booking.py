from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core import mail

from kapclinic.audit.models import AuditEvent
from kapclinic.core import clock
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.scheduling import services
from kapclinic.scheduling.models import Appointment, Reminder, ReminderStatus, Status
from kapclinic.scheduling.tests.conftest import at
from kapclinic.testing.factories import actor_for, make_patient
from kapclinic.treatment.testing import make_dosing_ready, sign_consent, sign_eligible, sign_plan

pytestmark = pytest.mark.django_db


def book(world: Any, *, patient: Any = None, staff: Any = None, **kw: Any) -> Any:
    actor = actor_for(world.front_desk, world.clinic)
    kw.setdefault("kind", "integration")
    kw.setdefault("starts_at", at(15))
    kw.setdefault("minutes", 60)
    return services.appointment_book(actor, patient or world.patient, staff=staff or world.therapist, **kw)


def reschedule(actor: Any, appt: Any, version: int, starts_at: dt.datetime, staff: Any) -> Any:
    """An in-person, one-hour appointment moved to ``starts_at`` with ``staff``, no room."""
    return services.appointment_reschedule(
        actor, appt, expected_version=version, starts_at=starts_at, minutes=60, staff=staff, resource=None,
        modality="in_person",
    )  # fmt: skip


def test_booking_writes_audit_timeline_and_a_reminder(world: Any, clock_frozen: Any) -> None:
    appt = book(world)
    assert appt.ends_at - appt.starts_at == dt.timedelta(minutes=60)
    assert AuditEvent.objects.filter(action="create", object_id=str(appt.pk)).count() == 1
    reminder = appt.reminders.get()
    assert reminder.send_at == at(15) - dt.timedelta(hours=24)
    assert reminder.status == ReminderStatus.PENDING


def test_staff_double_booking_refused_back_to_back_allowed(world: Any, clock_frozen: Any) -> None:
    book(world, starts_at=at(15), minutes=60)
    other = make_patient(world.clinic, care_team=[world.therapist])
    with pytest.raises(DomainError) as err:
        book(world, patient=other, starts_at=at(15, 59), minutes=60)
    assert "already booked" in err.value.field_errors["staff"][0]
    book(world, patient=other, starts_at=at(16), minutes=60)  # back-to-back
    book(world, patient=other, starts_at=at(14), minutes=60)  # ends when the first starts


def test_chair_double_booking_refused_across_clinicians(
    world: Any, clock_frozen: Any, chair: Any, ready: Any
) -> None:
    book(world, kind="dosing", starts_at=at(9), minutes=180, resource=chair, staff=world.nurse)
    other = make_patient(world.clinic)
    make_dosing_ready(other, world.prescriber)
    with pytest.raises(DomainError) as err:
        book(
            world,
            patient=other,
            kind="dosing",
            starts_at=at(11, 59),
            minutes=120,
            resource=chair,
            staff=world.prescriber,
        )
    assert "Chair 1 is already booked" in err.value.field_errors["resource"][0]
    book(
        world,
        patient=other,
        kind="dosing",
        starts_at=at(12),
        minutes=120,
        resource=chair,
        staff=world.prescriber,
    )


def test_patient_cannot_be_in_two_places(world: Any, clock_frozen: Any) -> None:
    book(world, starts_at=at(15))
    with pytest.raises(DomainError) as err:
        book(world, staff=world.prescriber, kind="follow_up", starts_at=at(15, 30), minutes=30)
    assert "patient already has an appointment" in err.value.field_errors["starts_at"][0]


def test_cancelled_appointment_frees_the_slot(world: Any, clock_frozen: Any) -> None:
    appt = book(world)
    desk = actor_for(world.front_desk, world.clinic)
    services.appointment_cancel(desk, appt, expected_version=appt.version, reason="Patient unwell")
    book(world)


def test_dosing_refused_without_readiness_with_a_sentence(world: Any, clock_frozen: Any, chair: Any) -> None:
    with pytest.raises(DomainError) as err:
        book(world, kind="dosing", minutes=180, resource=chair)
    assert "signed treatment plan" in " ".join(err.value.messages)


def test_dosing_refused_with_reasons_from_treatment(world: Any, clock_frozen: Any, chair: Any) -> None:
    """The real kapclinic.treatment.selectors.dosing_readiness answers, item by item."""
    from kapclinic.treatment.selectors import dosing_readiness

    sign_eligible(world.patient, world.prescriber)
    sign_consent(world.patient, witness=world.prescriber)
    assert dosing_readiness(world.patient) == (False, ["There is no signed treatment plan."])
    with pytest.raises(DomainError) as err:
        book(world, kind="dosing", minutes=180, resource=chair, staff=world.nurse)
    assert err.value.messages == [
        "A dosing appointment cannot be booked yet: There is no signed treatment plan."
    ]
    assert not Appointment.objects.filter(kind="dosing").exists()
    sign_plan(world.patient, world.prescriber)
    assert services.dosing_readiness(world.patient) == (True, [])
    appt = book(world, kind="dosing", minutes=180, resource=chair, staff=world.nurse)
    assert appt.kind == "dosing" and appt.status == Status.BOOKED


def test_dosing_refused_without_consent_names_it(world: Any, clock_frozen: Any, chair: Any) -> None:
    sign_eligible(world.patient, world.prescriber)
    with pytest.raises(DomainError) as err:
        book(world, kind="dosing", minutes=180, resource=chair, staff=world.nurse)
    message = err.value.messages[0]
    assert "consent" in message.lower() and "signed treatment plan" in message


def test_dosing_length_and_chair_rules(world: Any, clock_frozen: Any, chair: Any, ready: Any) -> None:
    with pytest.raises(DomainError) as err:
        book(world, kind="dosing", minutes=90, resource=chair)
    assert "between 120 and 180" in err.value.field_errors["minutes"][0]
    with pytest.raises(DomainError) as err:
        book(world, kind="dosing", minutes=180)
    assert "needs a chair" in err.value.field_errors["resource"][0]
    with pytest.raises(DomainError) as err:
        book(world, kind="integration", modality="video", resource=chair)
    assert "video appointment" in err.value.field_errors["resource"][0]


def test_front_desk_cannot_be_the_clinician(world: Any, clock_frozen: Any) -> None:
    with pytest.raises(DomainError) as err:
        book(world, staff=world.front_desk)
    assert "clinician" in err.value.field_errors["staff"][0]


def test_reschedule_checks_conflicts_and_versions(world: Any, clock_frozen: Any) -> None:
    actor = actor_for(world.front_desk, world.clinic)
    first = book(world, starts_at=at(9))
    second = book(world, starts_at=at(11))
    with pytest.raises(DomainError):
        reschedule(actor, second, second.version, at(9, 30), world.therapist)
    reschedule(actor, second, second.version, at(10), world.therapist)
    assert second.reminders.filter(status=ReminderStatus.CANCELLED).count() == 1
    assert second.reminders.filter(status=ReminderStatus.PENDING).count() == 1
    with pytest.raises(ConflictError):
        reschedule(actor, second, 1, at(12), world.therapist)
    assert first.status == Status.BOOKED


def test_reminder_sent_only_when_due_with_preparation(
    world: Any, clock_frozen: Any, chair: Any, ready: Any
) -> None:
    appt = book(world, kind="dosing", starts_at=at(16, day=4), minutes=180, resource=chair, staff=world.nurse)
    reminder = appt.reminders.get()
    assert services.reminder_deliver(reminder.pk) == "not-due"
    assert mail.outbox == []
    clock.advance(dt.timedelta(days=1, hours=2))
    assert services.reminder_deliver(reminder.pk) == "sent"
    assert len(mail.outbox) == 1
    body = mail.outbox[0].body
    assert "Do not eat for 2 hours" in body and "take you home" in body and "988" in body
    assert services.reminder_deliver(reminder.pk) == "sent"  # idempotent: not sent twice
    assert len(mail.outbox) == 1


def test_reminder_for_cancelled_appointment_is_not_sent(world: Any, clock_frozen: Any) -> None:
    appt = book(world)
    reminder = appt.reminders.get()
    desk = actor_for(world.front_desk, world.clinic)
    services.appointment_cancel(desk, appt, expected_version=appt.version, reason="Moved away")
    clock.advance(dt.timedelta(days=2))
    assert services.reminder_deliver(reminder.pk) == "cancelled"
    assert mail.outbox == []
    reminder.refresh_from_db()
    reminder.status = ReminderStatus.FAILED
    reminder.save()
    with pytest.raises(DomainError, match="no longer booked"):
        services.reminder_retry(actor_for(world.front_desk, world.clinic), reminder)


def test_failed_send_is_retried_then_visible_as_failed(world: Any, clock_frozen: Any, settings: Any) -> None:
    from kapclinic.testing.mail import DOWN

    appt = book(world)
    reminder = appt.reminders.get()
    clock.advance(dt.timedelta(hours=2))
    working_backend, settings.EMAIL_BACKEND = settings.EMAIL_BACKEND, DOWN
    assert services.reminder_deliver(reminder.pk) == "retrying"
    reminder.refresh_from_db()
    assert reminder.attempts == 1 and reminder.status == ReminderStatus.RETRYING
    assert reminder.last_error == "SMTPServerDisconnected"  # the error class, never its text
    assert services.reminder_deliver(reminder.pk) == "not-due"  # waits for the back-off
    for _ in range(Reminder.MAX_ATTEMPTS - 1):
        clock.advance(dt.timedelta(hours=5))
        services.reminder_deliver(reminder.pk)
    reminder.refresh_from_db()
    assert reminder.status == ReminderStatus.FAILED and reminder.attempts == Reminder.MAX_ATTEMPTS
    # staff retries once the mail server is back
    settings.EMAIL_BACKEND = working_backend
    services.reminder_retry(actor_for(world.front_desk, world.clinic), reminder)
    assert services.reminder_deliver(reminder.pk) == "sent"
    assert len(mail.outbox) == 1


def test_patient_without_email_is_skipped(world: Any, clock_frozen: Any) -> None:
    world.patient.email = ""
    world.patient.save()
    appt = book(world)
    clock.advance(dt.timedelta(hours=2))
    assert services.reminder_deliver(appt.reminders.get().pk) == "skipped"


def test_measure_hook_returns_next_dosing(world: Any, clock_frozen: Any, chair: Any, ready: Any) -> None:
    from kapclinic.scheduling.selectors import measure_next_dosing

    book(world, kind="dosing", starts_at=at(16, day=5), minutes=180, resource=chair)
    book(world, kind="dosing", starts_at=at(9, day=4), minutes=180, resource=chair, staff=world.nurse)
    assert measure_next_dosing([world.patient.pk, world.other_patient.pk]) == {world.patient.pk: at(9, day=4)}


def test_booking_queues_the_task_after_commit_and_the_task_sends_when_due(
    world: Any, clock_frozen: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from kapclinic.scheduling.tasks import send_reminder

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        appt = book(world)
    assert len(callbacks) == 1  # queued once the booking committed, never sent inside the request
    reminder = appt.reminders.get()
    assert reminder.status == ReminderStatus.PENDING and mail.outbox == []
    clock.advance(dt.timedelta(hours=2))
    result = send_reminder.enqueue(reminder.pk)
    assert result.return_value == "sent"
    assert len(mail.outbox) == 1


def test_send_due_reminders_command(world: Any, clock_frozen: Any) -> None:
    from django.core.management import call_command

    book(world)
    clock.advance(dt.timedelta(hours=2))
    call_command("send_due_reminders")
    assert len(mail.outbox) == 1


# ---------------------------------------------------------------- the clinician sees the patient


def test_therapist_off_the_care_team_cannot_be_booked_as_clinician(world: Any, clock_frozen: Any) -> None:
    """world.other_patient is not on world.therapist's caseload: the policy would hide the patient from
    them (busy block, 403 on the appointment page), so the booking is refused with the fix named."""
    with pytest.raises(DomainError) as err:
        book(world, patient=world.other_patient, staff=world.therapist)
    assert err.value.field_errors["staff"] == [
        f"{world.therapist} is not on {world.other_patient.display_name}'s care team, so they could not "
        "see this appointment. Add them to the care team first (on the patient's chart), or choose "
        "another clinician."
    ]
    assert not Appointment.objects.exists()
    assert not AuditEvent.objects.filter(action="create").exists()
    # Clinic-wide roles may be booked for any patient of the clinic.
    assert book(world, patient=world.other_patient, staff=world.prescriber).staff == world.prescriber
    # Once on the care team (the patients app's service), the same booking goes through.
    from kapclinic.patients.services import care_team_add

    care_team_add(
        actor_for(world.front_desk, world.clinic), world.other_patient, user=world.therapist, role="therapist"
    )
    appt = book(world, patient=world.other_patient, staff=world.therapist, starts_at=at(11))
    assert appt.staff == world.therapist


def test_rescheduling_to_a_therapist_off_the_care_team_is_refused(world: Any, clock_frozen: Any) -> None:
    appt = book(world, staff=world.prescriber)  # world.patient: world.therapist is on the team
    actor = actor_for(world.front_desk, world.clinic)
    with pytest.raises(DomainError) as err:
        reschedule(actor, appt, appt.version, at(15), world.therapist_other)
    assert "Add them to the care team first" in err.value.field_errors["staff"][0]
    appt.refresh_from_db()
    assert appt.staff == world.prescriber and appt.version == 1


def test_therapist_removed_from_the_care_team_keeps_the_booking_but_cannot_be_kept_on_a_change(
    world: Any, clock_frozen: Any
) -> None:
    """An appointment booked while the therapist was on the team stays (it is shown to them as busy);
    changing it needs the care team fixed or another clinician."""
    from kapclinic.patients.models import CareTeamMember
    from kapclinic.patients.services import care_team_remove

    appt = book(world)
    actor = actor_for(world.front_desk, world.clinic)
    member = CareTeamMember.objects.get(patient=world.patient, user=world.therapist)
    care_team_remove(actor, world.patient, member=member)
    appt.refresh_from_db()
    with pytest.raises(DomainError) as err:
        reschedule(actor, appt, appt.version, at(16), world.therapist)
    assert "not on" in err.value.field_errors["staff"][0]
    reschedule(actor, appt, appt.version, at(16), world.prescriber)
