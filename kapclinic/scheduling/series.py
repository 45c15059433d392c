"""Booking a treatment plan's proposed appointments (issue 18): a preview with each line's conflicts, then
"book all that are free", each line in its own transaction through services.appointment_book.

Nothing here checks a booking itself: the preview runs the real booking service inside a transaction
that is rolled back (so it sees the same conflicts, readiness and care-team rules, and the series' own
lines against each other), and the booking calls the same service for real.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from kapclinic.accounts.models import User
from kapclinic.core.actor import Actor
from kapclinic.core.errors import DomainError
from kapclinic.patients.models import Patient
from kapclinic.scheduling import rules, services
from kapclinic.scheduling.models import ACTIVE_STATUSES, Appointment, Modality, Resource
from kapclinic.treatment.models import PlanStatus, ProposedAppointment, TreatmentPlan


@dataclass
class LineRequest:
    """What to book for one proposed appointment."""

    proposal: ProposedAppointment
    starts_at: dt.datetime
    staff: User
    resource: Resource | None
    minutes: int | None = None
    modality: str = Modality.IN_PERSON

    @property
    def kind(self) -> str:
        return rules.KIND_FOR_PROPOSAL[self.proposal.kind]


@dataclass
class LineResult:
    proposal: ProposedAppointment
    appointment: Appointment | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def booked(self) -> bool:
        return self.appointment is not None


def check_plan(plan: TreatmentPlan) -> None:
    if plan.status != PlanStatus.SIGNED:
        raise DomainError(
            "Only a signed plan's appointments can be booked; "
            f"this plan is {plan.get_status_display().lower()}."
        )


def booked_by_proposal(plan: TreatmentPlan) -> dict[int, Appointment]:
    """The booking (booked or completed) that fulfils each proposed appointment of ``plan``. One query."""
    out: dict[int, Appointment] = {}
    for a in (
        Appointment.objects.filter(proposal__plan=plan, status__in=ACTIVE_STATUSES)
        .select_related("staff", "resource")
        .order_by("starts_at", "id")
    ):
        assert a.proposal_id is not None
        out.setdefault(a.proposal_id, a)
    return out


def suggestions(plan: TreatmentPlan, first: dt.date) -> dict[int, dt.date]:
    """Suggested date per proposal id (rules.suggest_series_dates on the plan's spacing)."""
    proposals = list(plan.proposals.all())
    by_seq = rules.suggest_series_dates(
        ((p.sequence, p.kind, p.week) for p in proposals), first, float(plan.sessions_per_week)
    )
    return {p.pk: by_seq[p.sequence] for p in proposals}


def _problems(exc: DomainError) -> list[str]:
    return list(exc.messages) + [e for errs in exc.field_errors.values() for e in errs]


def _book(actor: Actor, patient: Patient, line: LineRequest) -> Appointment:
    minutes = line.minutes or services.kind_rules(actor.clinic)[line.kind].default_minutes
    return services.appointment_book(
        actor,
        patient,
        kind=line.kind,
        starts_at=line.starts_at,
        minutes=minutes,
        staff=line.staff,
        resource=line.resource,
        modality=line.modality,
    )


class _DryRun(Exception):
    pass


def preview(actor: Actor, patient: Patient, lines: list[LineRequest]) -> dict[int, list[str]]:
    """Each line's problems (empty: it would be booked), per proposal id, without booking anything.

    The lines are booked in order inside one transaction that is then rolled back, so a line that clashes
    with an earlier line of the same series is reported too; nothing (appointment, audit event,
    reminder) outlives the preview."""
    out: dict[int, list[str]] = {}
    try:
        with transaction.atomic():
            for line in lines:
                try:
                    with transaction.atomic():
                        _book(actor, patient, line)
                except DomainError as exc:
                    out[line.proposal.pk] = _problems(exc)
                else:
                    out[line.proposal.pk] = []
            raise _DryRun
    except _DryRun:
        pass
    return out


def book_series(
    actor: Actor, patient: Patient, plan: TreatmentPlan, lines: list[LineRequest]
) -> list[LineResult]:
    """Book every line that is free, each in its own transaction, and link each booking to its line.

    A line already booked (by someone else meanwhile) is not booked again: its row is locked first."""
    check_plan(plan)
    results: list[LineResult] = []
    for line in lines:
        result = LineResult(line.proposal)
        try:
            with transaction.atomic():
                proposal = ProposedAppointment.objects.select_for_update().get(pk=line.proposal.pk, plan=plan)
                existing = (
                    Appointment.objects.filter(proposal=proposal, status__in=ACTIVE_STATUSES)
                    .order_by("starts_at")
                    .first()
                )
                if existing is not None:
                    when = timezone.localtime(existing.starts_at)
                    result.problems = [f"Already booked for {when:%a %d %b %Y %H:%M}."]
                    result.appointment = None
                else:
                    appt = _book(actor, patient, line)
                    appt.proposal = proposal
                    appt.save(update_fields=["proposal"])
                    proposal.booked_ref = str(appt.pk)
                    proposal.save(update_fields=["booked_ref"])
                    result.appointment = appt
        except DomainError as exc:
            result.problems = _problems(exc)
        results.append(result)
    return results


def open_lines(plan: TreatmentPlan) -> list[ProposedAppointment]:
    """The plan's proposed appointments with no booking yet, in sequence order."""
    booked = booked_by_proposal(plan)
    return [p for p in plan.proposals.all() if p.pk not in booked]


def proposal_kind_label(proposal: Any) -> str:
    return rules.DEFAULT_KINDS[rules.KIND_FOR_PROPOSAL[proposal.kind]].label


def book_weekly(
    actor: Actor, patient: Patient, *, first: dt.datetime, repeat: int, **booking: Any
) -> tuple[list[Appointment], list[str]]:
    """``repeat`` appointments a week apart from ``first`` at the same local wall-clock time (also across a
    daylight-saving change), each booked on its own through services.appointment_book (``booking``: its
    other arguments). Returns (booked, one sentence per refused date)."""
    booked: list[Appointment] = []
    refused: list[str] = []
    for i in range(repeat):
        starts = first + dt.timedelta(weeks=i)  # aware arithmetic keeps the wall-clock time
        try:
            booked.append(services.appointment_book(actor, patient, starts_at=starts, **booking))
        except DomainError as exc:
            when = f"{timezone.localtime(starts):%a %d %b %Y %H:%M}"
            refused.append(f"{when}: not booked. " + " ".join(_problems(exc)))
    return booked, refused
