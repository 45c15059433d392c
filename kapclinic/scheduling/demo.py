"""Demo schedule (synthetic): rooms and chairs, past and upcoming appointments that line up with the
sessions app's demo dosing sessions, reminders (one failed, to show the staff view). Idempotent.

Appointments are written directly rather than through appointment_book() so the demo does not depend
on other apps' readiness answers; every slot is still checked with the same conflict rule.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Q
from django.utils import timezone

from kapclinic.accounts.models import Membership, Role
from kapclinic.core import clock
from kapclinic.patients.models import CareTeamMember, CareTeamRole, PathwayStatus
from kapclinic.scheduling import rules
from kapclinic.scheduling.models import (
    ACTIVE_STATUSES,
    Appointment,
    Kind,
    Reminder,
    ReminderStatus,
    Resource,
    Status,
)


def _local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=timezone.get_current_timezone())


def _weekday(day: dt.date) -> dt.date:
    return day + dt.timedelta(days=(7 - day.weekday()) % 7) if day.weekday() >= 5 else day


def seed(ctx: Any) -> None:
    if Resource.objects.filter(clinic=ctx.clinic).exists():
        return
    rooms = {
        name: Resource.objects.create(clinic=ctx.clinic, name=name, kind=kind, position=i)
        for i, (name, kind) in enumerate(
            [
                ("Chair 1", "chair"),
                ("Chair 2", "chair"),
                ("Chair 3", "chair"),
                ("Integration room", "room"),
                ("Consult room", "room"),
            ]
        )
    }
    now = clock.now()
    today = timezone.localdate(now)
    booked: list[rules.Slot] = []
    made: list[Appointment] = []

    def add(
        patient: Any, kind: str, start: dt.datetime, minutes: int, staff: Any, room: str | None, **kw: Any
    ) -> None:
        end = start + dt.timedelta(minutes=minutes)
        resource = rooms[room] if room else None
        slot = rules.Slot(
            len(booked) + 1, start, end, staff.pk, resource.pk if resource else None, patient.pk
        )
        if rules.conflicts(slot, booked):
            return
        booked.append(slot)
        status = kw.pop("status", Status.COMPLETED if end <= now else Status.BOOKED)
        made.append(
            Appointment.objects.create(
                clinic=ctx.clinic, patient=patient, kind=kind, starts_at=start, ends_at=end, staff=staff,
                resource=resource, modality=kw.pop("modality", "in_person"), status=status,
                created_by=ctx.staff["frontdesk"], created_at=start - dt.timedelta(days=7), **kw,
            )
        )  # fmt: skip

    nurse, prescriber = ctx.staff["nurse"], ctx.staff["prescriber"]
    # Therapists see their caseload: each patient's appointments with a therapist are with the therapist
    # on that patient's care team (one query for all patients).
    own_therapist = {
        m.patient_id: m.user
        for m in CareTeamMember.objects.filter(
            patient__in=ctx.patients, role=CareTeamRole.THERAPIST
        ).select_related("user")
    }

    def therapist(patient: Any) -> Any:
        return own_therapist.get(patient.pk, prescriber)

    active = [
        p for p in ctx.patients if p.pathway_status in (PathwayStatus.ACTIVE, PathwayStatus.MAINTENANCE)
    ]
    # Past dosing sessions at the times the sessions demo uses (see kapclinic/sessions/demo.py).
    for i, patient in enumerate(active[:4]):
        start = now - dt.timedelta(days=(10 + i) if i % 2 == 0 else (3 + i), minutes=30)
        add(patient, "dosing", start, 180, nurse if i % 2 else therapist(patient), f"Chair {i % 3 + 1}")
        next_day = timezone.localdate(start) + dt.timedelta(days=1)
        add(patient, "integration", _local(next_day, 10 + i), 60, therapist(patient), "Integration room")
    # Today's dosing sessions (sessions demo: on the hour, one, two and three hours from now).
    top = now.replace(minute=0, second=0, microsecond=0)
    for i, patient in enumerate([ctx.demo_patient, *active[4:6]]):
        staff = (therapist(patient), prescriber, nurse)[i]
        add(patient, "dosing", top + dt.timedelta(hours=i + 1), 180, staff, f"Chair {i + 1}")
    demo = ctx.demo_patient
    mine = therapist(demo)
    add(demo, "preparation", _local(today - dt.timedelta(days=14), 11), 60, mine, "Integration room")
    add(demo, "integration", _local(today + dt.timedelta(days=1), 11), 60, mine, "Integration room")
    add(demo, "dosing", _local(today + dt.timedelta(days=5), 9), 180, mine, "Chair 2")
    add(demo, "follow_up", _local(today + dt.timedelta(days=9), 15), 30, prescriber, None, modality="video")
    # A busy week for the calendar views.
    assessment = [p for p in ctx.patients if p.pathway_status == PathwayStatus.ASSESSMENT]
    for i, patient in enumerate(assessment[:6]):
        day = _weekday(today + dt.timedelta(days=i % 5))
        add(
            patient,
            "preparation",
            _local(day, 14 + i % 3),
            60,
            therapist(patient),
            "Consult room",
        )
    for i, patient in enumerate(active[6:12]):
        day = _weekday(today + dt.timedelta(days=1 + i % 4))
        add(patient, "dosing", _local(day, 9 + (i % 2) * 4), 180, nurse, f"Chair {i % 3 + 1}")
        add(
            patient,
            "integration",
            _local(day + dt.timedelta(days=1), 16),
            60,
            therapist(patient),
            "Integration room",
        )
    # Reminders for everything still to come; one failed send shows on the staff reminders page.
    for appt in made:
        if appt.status == Status.BOOKED and appt.starts_at > now:
            Reminder.objects.create(
                clinic=ctx.clinic, appointment=appt, send_at=max(now, appt.starts_at - dt.timedelta(hours=24))
            )
    failed = (
        Reminder.objects.filter(clinic=ctx.clinic)
        .exclude(appointment__patient=demo)
        .order_by("send_at")
        .first()
    )
    if failed is not None:
        Reminder.objects.filter(pk=failed.pk).update(
            status=ReminderStatus.FAILED, attempts=Reminder.MAX_ATTEMPTS, last_attempt_at=now,
            last_error="SMTPRecipientsRefused: the mail server refused the recipient address",
        )  # fmt: skip


def record_past_dosing(ctx: Any, session: Any, now: dt.datetime) -> None:
    """The calendar's record of a demo dosing session that no booked appointment started (the sessions
    demo's earlier sessions): a completed dosing appointment from check-in (30 minutes before the first
    dose) for three hours, in a chair free then when there is one, linked to the session; and the
    integration session the day after (at 10:00 with the patient's therapist, in the integration room
    when free), unless the patient already has one that day. Demo history only: the sessions it mirrors
    were run by the demo's one nurse side by side, so each goes to
    whoever of the nurse and the prescriber is free then (PostgreSQL refuses a person in two
    appointments at once), and an integration to the therapist's first free hour.
    Linked to their plan lines afterwards by ``link_plan_lines``."""
    from kapclinic.sessions.models import DosingSession

    patient = session.patient
    assert session.first_dose_at is not None
    start = session.first_dose_at - dt.timedelta(minutes=30)

    def room(kind: str, begin: dt.datetime, end: dt.datetime) -> Resource | None:
        busy = Appointment.objects.filter(
            clinic=ctx.clinic, resource__isnull=False, starts_at__lt=end, ends_at__gt=begin
        ).exclude(status=Status.CANCELLED)
        return (
            Resource.objects.filter(clinic=ctx.clinic, kind=kind)
            .exclude(pk__in=busy.values("resource_id"))
            .order_by("position", "pk")
            .first()
        )

    def busy(who: Any, begin: dt.datetime, end: dt.datetime) -> bool:
        """Whether ``who`` already has an active appointment then (PostgreSQL's exclusion constraints
        refuse one person, or one patient, in two appointments at once)."""
        return (
            Appointment.objects.filter(starts_at__lt=end, ends_at__gt=begin, status__in=ACTIVE_STATUSES)
            .filter(Q(clinic=ctx.clinic, staff=who) | Q(patient=patient))
            .exists()
        )

    def book(kind: str, begin: dt.datetime, minutes: int, staff: Any, resource_kind: str) -> Appointment:
        end = begin + dt.timedelta(minutes=minutes)
        status = Status.COMPLETED if end <= now else Status.BOOKED
        return Appointment.objects.create(
            clinic=ctx.clinic, patient=patient, kind=kind, starts_at=begin, ends_at=end, staff=staff,
            resource=room(resource_kind, begin, end), status=status,
            created_by=ctx.staff["frontdesk"], created_at=begin - dt.timedelta(days=7),
        )  # fmt: skip

    # The demo's sessions were run side by side; the calendar gives each to a member of the clinical
    # staff free then (the nurse, else the prescriber, else one of the patient's care team).
    end = start + dt.timedelta(minutes=180)
    monitors = [
        ctx.staff["nurse"],
        ctx.staff["prescriber"],
        *(
            m.user
            for m in Membership.objects.filter(
                clinic=ctx.clinic, is_active=True, role__in=(Role.NURSE, Role.PRESCRIBER)
            ).select_related("user")
        ),
        # a therapist sits with their own patients only (their calendar shows their caseload)
        *(m.user for m in CareTeamMember.objects.filter(patient=patient).select_related("user")),
    ]
    free = next((who for who in monitors if not busy(who, start, end)), None)
    if free is None:
        return  # no one free to hold it: this old session keeps no calendar entry
    appt = book(Kind.DOSING, start, 180, free, "chair")
    DosingSession.objects.filter(pk=session.pk).update(appointment=appt)
    next_day = timezone.localdate(start) + dt.timedelta(days=1)
    day_start = _local(next_day, 0)
    if not Appointment.objects.filter(
        patient=patient,
        kind=Kind.INTEGRATION,
        starts_at__gte=day_start,
        starts_at__lt=day_start + dt.timedelta(days=1),
    ).exists():
        member = (
            CareTeamMember.objects.filter(patient=patient, role=CareTeamRole.THERAPIST)
            .select_related("user")
            .first()
        )
        therapist = member.user if member is not None else ctx.staff["prescriber"]
        for hour in range(10, 17):  # the first free hour of the therapist's day
            begin = _local(next_day, hour)
            if not busy(therapist, begin, begin + dt.timedelta(minutes=60)):
                book(Kind.INTEGRATION, begin, 60, therapist, "room")
                break


def link_plan_lines(clinic: Any) -> int:
    """Link the demo's booked and completed appointments to the signed plan lines they fulfil
    (``Appointment.proposal``, and the line's ``booked_ref`` as "Book the series" sets it), so the plan
    page shows as booked what the calendar has. Runs once the sessions demo has stored its sessions.

    A dosing appointment is the n-th dosing line when it is the patient's n-th dosing occasion (the
    sessions demo's earlier sessions, many without an appointment, count); an integration appointment
    takes the line of the dosing session it follows; preparation and reassessment lines go in order. An
    appointment past the plan's lines of its kind stays unlinked. Idempotent; returns how many it linked."""
    from kapclinic.sessions.models import DosingSession
    from kapclinic.treatment.models import TreatmentPlan

    linked = 0
    plans = TreatmentPlan.objects.filter(patient__clinic=clinic, status="signed").prefetch_related(
        "proposals"
    )
    for plan in plans:
        lines: dict[str, list[Any]] = {}
        for p in plan.proposals.all():
            lines.setdefault(rules.KIND_FOR_PROPOSAL[p.kind], []).append(p)
        taken = set(Appointment.objects.filter(proposal__plan=plan).values_list("proposal_id", flat=True))
        appts = list(
            Appointment.objects.filter(patient=plan.patient, status__in=ACTIVE_STATUSES).order_by(
                "starts_at", "pk"
            )
        )
        sessions = DosingSession.objects.filter(patient=plan.patient).exclude(state="aborted")
        # Every dosing occasion in time order: the sessions, and the dosing appointments without one.
        with_session = {s.appointment_id for s in sessions if s.appointment_id}
        occasions = sorted(
            [
                (s.scheduled_for, f"s{s.pk}" if s.appointment_id is None else f"a{s.appointment_id}")
                for s in sessions
            ]
            + [(a.starts_at, f"a{a.pk}") for a in appts if a.kind == Kind.DOSING and a.pk not in with_session]
        )
        ordinal = {key: n for n, (_at, key) in enumerate(occasions, start=1)}
        counts: dict[str, int] = {}
        for a in appts:
            if a.proposal_id is not None or a.kind not in lines:
                continue
            if a.kind == Kind.DOSING:
                n = ordinal[f"a{a.pk}"]
            elif a.kind == Kind.INTEGRATION:
                n = sum(1 for at, _key in occasions if at < a.starts_at)
            else:
                n = counts.get(a.kind, 0) + 1
            counts[a.kind] = n
            if not 1 <= n <= len(lines[a.kind]):
                continue
            line = lines[a.kind][n - 1]
            if line.pk in taken:
                continue
            taken.add(line.pk)
            Appointment.objects.filter(pk=a.pk).update(proposal=line)
            type(line).objects.filter(pk=line.pk).update(booked_ref=str(a.pk))
            linked += 1
    return linked
