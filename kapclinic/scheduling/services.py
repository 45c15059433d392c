"""Every write of the scheduling app: booking, rescheduling, cancelling, feeds and reminders.

Over 600 lines: booking (the overlap check under row locks) is most of it; feeds and reminders are
small sections below.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from kapclinic.accounts.models import CLINICAL_ROLES, Membership, User
from kapclinic.audit.services import field_changes, record_event
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.concurrency import save_versioned
from kapclinic.core.errors import DomainError
from kapclinic.core.tokens import token_hash
from kapclinic.messaging.retry import error_class
from kapclinic.messaging.services import send_email
from kapclinic.patients.models import Patient, TimelineCategory
from kapclinic.patients.services import add_timeline_event
from kapclinic.policy import Action, can
from kapclinic.scheduling import rules, telehealth
from kapclinic.scheduling.models import (
    ACTIVE_STATUSES,
    Appointment,
    CalendarFeed,
    Kind,
    Modality,
    Reminder,
    ReminderStatus,
    Resource,
    ResourceKind,
    ScheduleSettings,
    Status,
    place_of_service_for,
)
from kapclinic.treatment import selectors as treatment_selectors

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


# ---------------------------------------------------------------- settings and rules


def schedule_settings(clinic: Any) -> ScheduleSettings:
    found = ScheduleSettings.objects.filter(clinic=clinic).first()
    return found or ScheduleSettings(clinic=clinic)


def kind_rules(clinic: Any) -> dict[str, rules.KindRule]:
    cfg = schedule_settings(clinic)
    kinds = dict(rules.DEFAULT_KINDS)
    base = kinds[rules.DOSING]
    kinds[rules.DOSING] = rules.KindRule(
        rules.DOSING,
        base.label,
        cfg.dosing_default_minutes,
        cfg.dosing_min_minutes,
        cfg.dosing_max_minutes,
        base.source,
    )
    return rules.with_default_minutes(kinds, cfg.kind_minutes or {})


# ---------------------------------------------------------------- dosing readiness (treatment app)


def dosing_readiness(patient: Patient) -> tuple[bool, list[str]]:
    """(ok, reasons): signed treatment plan, current consent and a current eligibility decision, from
    the treatment app (kapclinic.treatment.selectors.dosing_readiness); each reason is a sentence."""
    return treatment_selectors.dosing_readiness(patient)


# ---------------------------------------------------------------- booking


def _local(when: dt.datetime) -> str:
    return timezone.localtime(when).strftime("%a %d %b %Y %H:%M")


def _check_booking(
    clinic: Any,
    *,
    ref: int,
    patient: Patient,
    kind: str,
    starts_at: dt.datetime,
    minutes: int,
    staff: User,
    resource: Resource | None,
    modality: str,
) -> None:
    errors: dict[str, list[str]] = {}
    general: list[str] = []
    kinds = kind_rules(clinic)
    if kind not in kinds:
        errors.setdefault("kind", []).append("Choose the kind of appointment.")
        raise DomainError([], errors)
    problem = rules.duration_problem(kinds[kind], minutes)
    if problem:
        errors.setdefault("minutes", []).append(problem)
    if modality not in Modality.values:
        errors.setdefault("modality", []).append("Choose in person or video.")
    staff_role = (
        Membership.objects.filter(user=staff, clinic=clinic, is_active=True, role__in=CLINICAL_ROLES)
        .values_list("role", flat=True)
        .first()
    )
    if staff_role is None:
        errors.setdefault("staff", []).append("The staff member must be a clinician of this clinic.")
    else:
        problem = clinician_problem(clinic, staff, role=str(staff_role), patient=patient)
        if problem:
            errors.setdefault("staff", []).append(problem)
    if resource is not None and (resource.clinic_id != clinic.pk or not resource.is_active):
        errors.setdefault("resource", []).append("Choose a room or chair of this clinic.")
    if kind == rules.DOSING and modality == Modality.IN_PERSON and resource is None:
        errors.setdefault("resource", []).append("An in-person dosing appointment needs a chair or a room.")
    if modality == Modality.VIDEO and resource is not None:
        errors.setdefault("resource", []).append("A video appointment does not take a room or chair.")
    if errors:
        raise DomainError(general, errors)
    ends_at = starts_at + dt.timedelta(minutes=minutes)
    _lock_rows(patient, staff, resource)
    errors.update(_overlap_errors(clinic, ref, patient, starts_at, ends_at, staff, resource))
    if kind == rules.DOSING:
        ok, reasons = dosing_readiness(patient)
        if not ok:
            general.append(
                "A dosing appointment cannot be booked yet: " + " ".join(reasons or ["not ready."])
            )
    if errors or general:
        raise DomainError(general, errors)


def _lock_rows(patient: Patient, staff: User, resource: Resource | None) -> None:
    """Lock the patient's, the clinician's and the room's rows (always in this order, so two bookings
    cannot deadlock) until the booking commits: two bookings that share any of them wait for each other,
    so the second one's overlap check sees the first. (On SQLite, which serialises writers, this is a
    no-op.) On PostgreSQL the exclusion constraints of migration 0002 back this up."""
    Patient.objects.select_for_update().filter(pk=patient.pk).values_list("pk", flat=True).first()
    User.objects.select_for_update().filter(pk=staff.pk).values_list("pk", flat=True).first()
    if resource is not None:
        Resource.objects.select_for_update().filter(pk=resource.pk).values_list("pk", flat=True).first()


def _overlap_errors(
    clinic: Any,
    ref: int,
    patient: Patient,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    staff: User,
    resource: Resource | None,
) -> dict[str, list[str]]:
    """The sentences for every active appointment this slot would overlap (per form field)."""
    errors: dict[str, list[str]] = {}
    near = Appointment.objects.filter(
        clinic=clinic,
        status__in=ACTIVE_STATUSES,
        starts_at__lt=ends_at,
        ends_at__gt=starts_at,
    ).exclude(pk=ref)
    booked = [
        rules.Slot(a.pk, a.starts_at, a.ends_at, a.staff_id, a.resource_id, a.patient_id)
        for a in near.filter(
            models_q_any(
                staff_id=staff.pk, resource_id=resource.pk if resource else None, patient_id=patient.pk
            )
        )
    ]
    found = rules.conflicts(
        rules.Slot(ref, starts_at, ends_at, staff.pk, resource.pk if resource else None, patient.pk), booked
    )
    for c in found:
        span = f"{_local(c.other_start)} to {timezone.localtime(c.other_end):%H:%M}"
        if c.what == "staff":
            errors.setdefault("staff", []).append(f"{staff} is already booked from {span}.")
        elif c.what == "resource":
            errors.setdefault("resource", []).append(f"{resource} is already booked from {span}.")
        else:
            errors.setdefault("starts_at", []).append(f"The patient already has an appointment from {span}.")
    return errors


#: PostgreSQL exclusion constraints (scheduling migration 0002) -> the form field their refusal belongs to.
OVERLAP_CONSTRAINTS = {
    "appt_no_staff_overlap": "staff",
    "appt_no_resource_overlap": "resource",
    "appt_no_patient_overlap": "starts_at",
}


def _overlap_constraint(exc: IntegrityError) -> str | None:
    """The name of the overlap constraint `exc` violated, or None for any other integrity error."""
    diag = getattr(exc.__cause__, "diag", None)
    name = getattr(diag, "constraint_name", None) or ""
    if name in OVERLAP_CONSTRAINTS:
        return str(name)
    return next((n for n in OVERLAP_CONSTRAINTS if n in str(exc)), None)


def _write_slot(
    write: Callable[[], _T],
    clinic: Any,
    ref: int,
    patient: Patient,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    staff: User,
    resource: Resource | None,
) -> _T:
    """Run ``write()`` (the INSERT or UPDATE of the slot) in a savepoint. When the database refuses it as
    an overlap (a booking that committed after our check), answer with the same sentences as the check:
    the check is run again, and now sees the other appointment. Never a 500."""
    try:
        with transaction.atomic():
            return write()
    except IntegrityError as exc:
        constraint = _overlap_constraint(exc)
        if constraint is None:
            raise
        errors = _overlap_errors(clinic, ref, patient, starts_at, ends_at, staff, resource)
        if not errors:  # the other booking is not visible to us (should not happen): say what clashed
            what = {
                "staff": f"{staff} is already booked at that time.",
                "resource": f"{resource} is already booked at that time.",
                "starts_at": "The patient already has an appointment at that time.",
            }
            field = OVERLAP_CONSTRAINTS[constraint]
            errors = {field: [what[field]]}
        raise DomainError([], errors) from None
    except OperationalError as exc:
        # Two bookings checked against each other's uncommitted rows: PostgreSQL breaks the deadlock by
        # failing one; that one is refused like an overlap (the check, run again, names what clashed).
        if type(exc.__cause__).__name__ != "DeadlockDetected":
            raise
        errors = _overlap_errors(clinic, ref, patient, starts_at, ends_at, staff, resource) or {
            "starts_at": ["Another booking for that time was being saved at the same moment; try again."]
        }
        raise DomainError([], errors) from None


#: What the appointment's clinician must be allowed for this patient: see them by name on the calendar
#: and open the appointment (the same policy answers the calendars and scheduling:detail use).
CLINICIAN_NEEDS = (Action.VIEW_DEMOGRAPHICS, Action.SCHEDULE)


def clinician_problem(clinic: Any, staff: User, *, role: str, patient: Patient) -> str | None:
    """Why ``staff`` cannot be this patient's clinician, or None.

    A clinician whose role covers only a caseload (a therapist) must already be on the patient's care
    team: otherwise the policy hides the patient from them (a busy block on their calendar, 403 on the
    appointment page). Booking refuses rather than adding them to the care team: joining a care team
    opens the whole chart and is a decision for those who manage care teams, on the chart."""
    clinician = Actor(user=staff, clinic=clinic, role=role, request_id="booking-check")
    if all(can(clinician, action, patient) for action in CLINICIAN_NEEDS):
        return None
    return (
        f"{staff} is not on {patient.display_name}'s care team, so they could not see this appointment. "
        "Add them to the care team first (on the patient's chart), or choose another clinician."
    )


def models_q_any(**values: Any) -> Any:
    from django.db.models import Q

    q = Q()
    for name, value in values.items():
        if value is not None:
            q |= Q(**{name: value})
    return q


@transaction.atomic
def appointment_book(
    actor: Actor,
    patient: Patient,
    *,
    kind: str,
    starts_at: dt.datetime,
    minutes: int,
    staff: User,
    resource: Resource | None = None,
    modality: str = Modality.IN_PERSON,
    admin_note: str = "",
) -> Appointment:
    assert actor.clinic is not None and patient.clinic_id == actor.clinic.pk
    _check_booking(
        actor.clinic,
        ref=0,
        patient=patient,
        kind=kind,
        starts_at=starts_at,
        minutes=minutes,
        staff=staff,
        resource=resource,
        modality=modality,
    )
    clinic = actor.clinic
    ends_at = starts_at + dt.timedelta(minutes=minutes)
    appt = _write_slot(
        lambda: Appointment.objects.create(
            clinic=clinic,
            patient=patient,
            kind=kind,
            starts_at=starts_at,
            ends_at=ends_at,
            staff=staff,
            resource=resource,
            modality=modality,
            place_of_service=place_of_service_for(modality),
            admin_note=admin_note.strip(),
            created_by=actor.require_user(),
        ),
        clinic, 0, patient, starts_at, ends_at, staff, resource,
    )  # fmt: skip
    record_event(actor, "create", patient=patient, obj=appt, detail=f"kind={kind}")
    add_timeline_event(
        patient,
        kind="appointment.booked",
        title=f"{appt.get_kind_display()} booked for {_local(starts_at)}",
        category=TimelineCategory.ADMIN,
        actor=actor,
        ref=appt,
    )
    _schedule_reminder(appt)
    return appt


@transaction.atomic
def appointment_reschedule(
    actor: Actor,
    appt: Appointment,
    *,
    expected_version: int,
    starts_at: dt.datetime,
    minutes: int,
    staff: User,
    resource: Resource | None,
    modality: str,
    admin_note: str = "",
) -> Appointment:
    if appt.status != Status.BOOKED:
        raise DomainError(
            f"Only booked appointments can be changed; this one is {appt.get_status_display().lower()}."
        )
    _check_booking(
        appt.clinic,
        ref=appt.pk,
        patient=appt.patient,
        kind=appt.kind,
        starts_at=starts_at,
        minutes=minutes,
        staff=staff,
        resource=resource,
        modality=modality,
    )
    moved = starts_at != appt.starts_at
    fields = ("starts_at", "ends_at", "staff_id", "resource_id", "modality", "admin_note")
    before = {name: getattr(appt, name) for name in fields}
    appt.starts_at = starts_at
    appt.ends_at = starts_at + dt.timedelta(minutes=minutes)
    appt.staff = staff
    appt.resource = resource
    appt.modality = modality
    appt.place_of_service = place_of_service_for(modality)
    appt.admin_note = admin_note.strip()
    _write_slot(
        lambda: save_versioned(
            appt,
            expected_version,
            ["starts_at", "ends_at", "staff", "resource", "modality", "place_of_service", "admin_note"],
        ),
        appt.clinic, appt.pk, appt.patient, appt.starts_at, appt.ends_at, staff, resource,
    )  # fmt: skip
    record_event(
        actor,
        "update",
        patient=appt.patient,
        obj=appt,
        detail="rescheduled" if moved else "changed",
        name="appointment.reschedule" if moved else "appointment.update",
        data={"changes": field_changes(before, {name: getattr(appt, name) for name in fields})},
    )
    if moved:
        add_timeline_event(
            appt.patient,
            kind="appointment.moved",
            title=f"{appt.get_kind_display()} moved to {_local(starts_at)}",
            category=TimelineCategory.ADMIN,
            actor=actor,
            ref=appt,
        )
        appt.reminders.filter(status__in=[ReminderStatus.PENDING, ReminderStatus.RETRYING]).update(
            status=ReminderStatus.CANCELLED, last_error="Appointment moved; a new reminder was scheduled."
        )
        _schedule_reminder(appt)
    return appt


def live_session_problem(appt: Appointment, doing: str) -> str | None:
    """A sentence when a dosing session (not aborted) was started from ``appt``, so ``doing`` (cancel it,
    mark it missed) would contradict the session record; else None. One query (issue 18)."""
    from kapclinic.sessions.models import SessionState

    states = set(appt.dosing_sessions.exclude(state=SessionState.ABORTED).values_list("state", flat=True))
    if not states:
        return None
    if states <= {SessionState.DISCHARGED}:
        return (
            f"This appointment's dosing session took place (the patient was discharged); you cannot {doing}."
        )
    return (
        f"A dosing session is in progress for this appointment, so you cannot {doing}. "
        "If the session must stop, a clinician aborts it on the session page."
    )


@transaction.atomic
def appointment_cancel(actor: Actor, appt: Appointment, *, expected_version: int, reason: str) -> Appointment:
    if appt.status != Status.BOOKED:
        raise DomainError(
            f"This appointment is already {appt.get_status_display().lower()}; it cannot be cancelled."
        )
    problem = live_session_problem(appt, "cancel it")
    if problem:
        raise DomainError(problem)
    if not reason.strip():
        raise DomainError([], {"reason": ["Give a reason for cancelling (it is kept with the appointment)."]})
    appt.status = Status.CANCELLED
    appt.cancelled_at = clock.now()
    appt.cancelled_by = actor.user
    appt.cancel_reason = reason.strip()[:200]
    save_versioned(appt, expected_version, ["status", "cancelled_at", "cancelled_by", "cancel_reason"])
    appt.reminders.filter(status__in=[ReminderStatus.PENDING, ReminderStatus.RETRYING]).update(
        status=ReminderStatus.CANCELLED
    )
    record_event(actor, "update", patient=appt.patient, obj=appt, detail="cancelled")
    add_timeline_event(
        appt.patient,
        kind="appointment.cancelled",
        title=f"{appt.get_kind_display()} on {_local(appt.starts_at)} cancelled",
        category=TimelineCategory.ADMIN,
        actor=actor,
        ref=appt,
    )
    return appt


@transaction.atomic
def appointment_set_status(
    actor: Actor, appt: Appointment, *, expected_version: int, status: str
) -> Appointment:
    if status not in (Status.COMPLETED, Status.NO_SHOW):
        raise DomainError("Mark an appointment as completed or did-not-attend.")
    if appt.status != Status.BOOKED:
        raise DomainError(f"This appointment is already {appt.get_status_display().lower()}.")
    if appt.starts_at > clock.now():
        raise DomainError("An appointment that has not started yet cannot be marked as completed or missed.")
    if status == Status.NO_SHOW:
        problem = live_session_problem(appt, "mark it as did-not-attend")
        if problem:
            raise DomainError(problem)
        if appt.checked_in_at is not None:
            raise DomainError(
                f"The patient was checked in at {timezone.localtime(appt.checked_in_at):%H:%M}, so they "
                "attended; it cannot be marked as did-not-attend."
            )
    appt.status = status
    save_versioned(appt, expected_version, ["status"])
    record_event(actor, "update", patient=appt.patient, obj=appt, detail=f"status={status}")
    return appt


@transaction.atomic
def appointment_check_in(actor: Actor, appt: Appointment, *, expected_version: int) -> Appointment:
    """The front desk marks the patient's arrival (issue 18). Only on the appointment's day, only for a
    booked appointment, once."""
    if appt.status != Status.BOOKED:
        raise DomainError(
            f"This appointment is {appt.get_status_display().lower()}; the patient cannot be checked in."
        )
    if appt.checked_in_at is not None:
        raise DomainError(
            f"The patient was already checked in at {timezone.localtime(appt.checked_in_at):%H:%M}."
        )
    day = timezone.localtime(appt.starts_at).date()
    if day != clock.today():
        raise DomainError(
            f"A patient is checked in on the day of the appointment ({day:%a %d %b %Y}), not before or after."
        )
    appt.checked_in_at = clock.now()
    appt.checked_in_by = actor.user
    save_versioned(appt, expected_version, ["checked_in_at", "checked_in_by"])
    record_event(actor, "update", patient=appt.patient, obj=appt, detail="checked in")
    add_timeline_event(
        appt.patient,
        kind="appointment.checked_in",
        title=f"Arrived for {appt.get_kind_display().lower()} ({_local(appt.starts_at)})",
        category=TimelineCategory.ADMIN,
        actor=actor,
        ref=appt,
    )
    return appt


@transaction.atomic
def resource_create(actor: Actor, *, name: str, kind: str) -> Resource:
    assert actor.clinic is not None
    name = name.strip()
    if not name:
        raise DomainError([], {"name": ["Give the room or chair a name."]})
    if kind not in ResourceKind.values:
        raise DomainError([], {"kind": ["Choose room or chair."]})
    if Resource.objects.filter(clinic=actor.clinic, name__iexact=name).exists():
        raise DomainError([], {"name": [f"There is already a room or chair called {name}."]})
    resource = Resource.objects.create(
        clinic=actor.clinic,
        name=name,
        kind=kind,
        position=Resource.objects.filter(clinic=actor.clinic).count(),
    )
    record_event(actor, "admin", obj=resource, detail=f"resource {kind}")
    return resource


# ---------------------------------------------------------------- calendar feeds


@transaction.atomic
def feed_reset(actor: Actor, *, patient: Patient | None = None) -> str:
    """Create or replace the caller's feed token (staff: their own; patient: theirs). Returns the token."""
    assert actor.clinic is not None and actor.user is not None
    token = secrets.token_urlsafe(32)
    if patient is not None:
        feed, created = CalendarFeed.objects.get_or_create(
            patient=patient, defaults={"clinic": actor.clinic, "token_hash": token_hash(token)}
        )
    else:
        feed, created = CalendarFeed.objects.get_or_create(
            user=actor.user, clinic=actor.clinic, defaults={"token_hash": token_hash(token)}
        )
    if not created:
        feed.token_hash = token_hash(token)
        feed.last_used_at = None
        feed.save(update_fields=["token_hash", "last_used_at"])
    record_event(
        actor, "update", patient=patient, obj=feed, detail="feed created" if created else "feed reset"
    )
    return token


@transaction.atomic
def feed_set_details(actor: Actor, patient: Patient, *, show_details: bool) -> CalendarFeed | None:
    feed = CalendarFeed.objects.filter(patient=patient).first()
    if feed is None:
        return None
    feed.show_details = show_details
    feed.save(update_fields=["show_details"])
    record_event(actor, "update", patient=patient, obj=feed, detail=f"details={int(show_details)}")
    return feed


def feed_resolve(token: str) -> CalendarFeed | None:
    if not token or len(token) > 100:
        return None
    return (
        CalendarFeed.objects.select_related("clinic", "patient", "user")
        .filter(token_hash=token_hash(token))
        .first()
    )


# ---------------------------------------------------------------- reminders


def _schedule_reminder(appt: Appointment) -> Reminder | None:
    now = clock.now()
    if appt.starts_at <= now:
        return None
    hours = schedule_settings(appt.clinic).reminder_hours_before
    send_at = max(now, appt.starts_at - dt.timedelta(hours=hours))
    reminder = Reminder.objects.create(clinic=appt.clinic, appointment=appt, send_at=send_at)
    transaction.on_commit(lambda: enqueue_reminder(reminder.pk, send_at))
    return reminder


def enqueue_reminder(reminder_id: int, run_after: dt.datetime | None = None) -> None:
    """Hand the reminder to the task runner; never sends in the web request itself."""
    from kapclinic.scheduling.tasks import send_reminder

    task = send_reminder
    if run_after is not None and run_after > timezone.now() and task.get_backend().supports_defer:
        task = task.using(run_after=run_after)
    try:
        task.enqueue(reminder_id)
    except Exception:  # the reminder row stays pending; `send_due_reminders` picks it up later
        logger.exception("could not queue reminder %s", reminder_id)


def reminder_email(appt: Appointment) -> tuple[str, str]:
    clinic = appt.clinic
    subject = f"Reminder: your appointment at {clinic.name} on {_local(appt.starts_at)}"
    lines = [
        f"This is a reminder of your {appt.get_kind_display().lower()} at {clinic.name}.",
        f"When: {_local(appt.starts_at)} ({appt.minutes} minutes)",
        "Where: video call. Join from your portal (the link opens shortly before the start): "
        f"{telehealth.patient_join_url(appt)}"
        if appt.modality == Modality.VIDEO
        else f"Where: {clinic.address or clinic.name}",
    ]
    if appt.preparation:
        lines += ["", "How to prepare:"] + [f"- {line}" for line in appt.preparation]
    lines += [
        "",
        f"To change or cancel, call {clinic.phone or 'the clinic'}.",
        "If you are in crisis, call or text 988 (Suicide & Crisis Lifeline) "
        f"or call {clinic.emergency_number}.",
        f"Sign in to your portal for details: {settings.SITE_URL}/portal/",
    ]
    return subject, "\n".join(lines)


def _queue_sms_reminder(appt: Appointment, reminder: Reminder) -> None:
    """A text too, when the patient chose texts and consented and sent no STOP: through the outbound
    queue (its retries and undelivered list). The clinic's name, the time and the portal; nothing
    clinical (not even the appointment's kind)."""
    from kapclinic.messaging.models import MessageKind
    from kapclinic.messaging.services import queue_sms
    from kapclinic.messaging.sms import reminder_text

    with timezone.override(appt.clinic.zone):
        when = _local(appt.starts_at)
    body = reminder_text(appt.clinic.name, when, f"{settings.SITE_URL}/portal/")
    queue_sms(kind=MessageKind.APPOINTMENT_REMINDER, patient=appt.patient, body=body, related=reminder)


def reminder_deliver(reminder_id: int) -> str:
    """Send one reminder if it is due. Returns what happened (a status code for the task result).

    A send that raises is recorded (attempts, error class) and retried with back-off up to
    Reminder.MAX_ATTEMPTS; after that the reminder shows as failed on the staff reminders page.
    """
    now = clock.now()
    with transaction.atomic():
        reminder = (
            Reminder.objects.select_for_update()
            .select_related("appointment__patient", "appointment__clinic", "clinic")
            .filter(pk=reminder_id)
            .first()
        )
        if reminder is None:
            return "missing"
        if reminder.status not in (ReminderStatus.PENDING, ReminderStatus.RETRYING):
            return reminder.status
        appt = reminder.appointment
        if appt.status != Status.BOOKED:
            reminder.status = ReminderStatus.CANCELLED
            reminder.save(update_fields=["status"])
            return "cancelled"
        if reminder.due_at > now:
            return "not-due"
        patient = appt.patient
        if reminder.attempts == 0:
            _queue_sms_reminder(appt, reminder)  # once, beside the first email attempt (issue 17)
        if not patient.email:
            reminder.status = ReminderStatus.SKIPPED
            reminder.save(update_fields=["status"])
            return "skipped"
        reminder.attempts += 1
        reminder.last_attempt_at = now
        with timezone.override(appt.clinic.zone):  # a worker has no request: the clinic's clock
            subject, body = reminder_email(appt)
        try:
            send_email(subject, body, to_email=patient.email)
        except Exception as exc:  # any transport failure: record and retry later
            reminder.last_error = error_class(exc)
            if reminder.attempts >= Reminder.MAX_ATTEMPTS:
                reminder.status = ReminderStatus.FAILED
                reminder.next_attempt_at = None
            else:
                reminder.status = ReminderStatus.RETRYING
                reminder.next_attempt_at = now + rules.retry_delay(reminder.attempts)
            reminder.save()
            if reminder.status == ReminderStatus.RETRYING:
                when = reminder.next_attempt_at
                rid = reminder.pk
                transaction.on_commit(lambda: enqueue_reminder(rid, when))
            return "retrying" if reminder.status == ReminderStatus.RETRYING else "failed"
        reminder.status = ReminderStatus.SENT
        reminder.sent_at = now
        reminder.next_attempt_at = None
        reminder.last_error = ""
        reminder.save()
        record_event(
            Actor.system(appt.clinic, "reminder"),
            "export",
            patient=patient,
            obj=reminder,
            detail="reminder email",
        )
        return "sent"


@transaction.atomic
def reminder_retry(actor: Actor, reminder: Reminder) -> Reminder:
    """Staff asks to try a failed reminder again now."""
    reminder = Reminder.objects.select_for_update().select_related("appointment").get(pk=reminder.pk)
    if reminder.appointment.status != Status.BOOKED:
        raise DomainError(
            "This reminder is for an appointment that is no longer booked "
            f"({reminder.appointment.get_status_display().lower()}); nothing was sent."
        )
    if reminder.status not in (ReminderStatus.FAILED, ReminderStatus.RETRYING):
        raise DomainError(
            f"Only failed reminders can be retried; this one is {reminder.get_status_display().lower()}."
        )
    reminder.status = ReminderStatus.RETRYING
    reminder.next_attempt_at = clock.now()
    if reminder.attempts >= Reminder.MAX_ATTEMPTS:
        reminder.attempts = Reminder.MAX_ATTEMPTS - 1  # one more try
    reminder.save()
    record_event(actor, "update", patient=reminder.appointment.patient, obj=reminder, detail="retry")
    rid = reminder.pk
    transaction.on_commit(lambda: enqueue_reminder(rid))
    return reminder


def due_reminder_ids(now: dt.datetime | None = None) -> list[int]:
    """Reminders whose time has come (used by the send_due_reminders command as a safety net)."""
    from django.db.models import Q

    now = now or clock.now()
    return list(
        Reminder.objects.filter(
            Q(status=ReminderStatus.PENDING, send_at__lte=now)
            | Q(status=ReminderStatus.RETRYING, next_attempt_at__lte=now)
        ).values_list("pk", flat=True)[:500]
    )


KIND_CHOICES = Kind.choices


@transaction.atomic
def kind_minutes_update(actor: Actor, minutes: dict[str, int | None]) -> ScheduleSettings:
    """An admin sets the clinic's default length per appointment kind (issue 18); None: the kind's usual
    length. Each value must lie in the kind's range (DomainError with a sentence per field)."""
    assert actor.clinic is not None
    kinds = kind_rules(actor.clinic)
    errors: dict[str, list[str]] = {}
    chosen: dict[str, int] = {}
    for key, value in minutes.items():
        if key not in kinds:
            errors.setdefault(key, []).append("Unknown kind of appointment.")
        elif value is not None:
            problem = rules.default_minutes_problem(kinds[key], value)
            if problem:
                errors.setdefault(key, []).append(problem)
            else:
                chosen[key] = value
    if errors:
        raise DomainError([], errors)
    cfg, _ = ScheduleSettings.objects.select_for_update().get_or_create(clinic=actor.clinic)
    cfg.kind_minutes = chosen
    cfg.save(update_fields=["kind_minutes"])
    record_event(actor, "admin", obj=cfg, detail=f"kind lengths n={len(chosen)}")
    return cfg
