"""What needs a staff member, read from the things themselves: one bounded query per source and one for
the person's read marks, so the bell costs the same number of queries at 20 patients or 20,000.

| source                    | who                                       | key                       |
|---------------------------|-------------------------------------------|---------------------------|
| open safety alerts        | clinicians who may open the patient       | alert:<id>                |
| unread message threads    | clinicians who may open the patient       | thread:<id>:<last msg ts> |
| own draft notes past due  | their author (NOTE_SIGN_DUE_DAYS)         | note:<id>                 |
| dose orders not yet given | prescribers, nurses                       | dose:<id>                 |
| open count discrepancies  | admins, prescribers, nurses (inventory)   | discrepancy:<id>          |
| failed deliveries         | admins, prescribers (/messages/)          | delivery:<id>             |
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse

from kapclinic.accounts.models import Role
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.policy import ALL, CASELOAD, Action, scope

#: The most items one source contributes (the bell is a pointer, the pages are the lists).
PER_SOURCE = 20


@dataclass(frozen=True)
class Item:
    key: str
    kind: str
    title: str
    url: str
    when: dt.datetime


def visible_patient_q(actor: Actor, field: str = "patient_id") -> Q | None:
    """A filter on `field` (a patient id column) to the patients the actor may open clinically."""
    sc = scope(actor, Action.VIEW_CLINICAL)
    if sc == ALL:
        return Q()
    if sc == CASELOAD and actor.user is not None:
        from kapclinic.patients.models import CareTeamMember

        return Q(Exists(CareTeamMember.objects.filter(patient_id=OuterRef(field), user_id=actor.user.pk)))
    return None


#: The columns `_name` reads, through a row's `patient` relation.
_NAME_FIELDS = ("patient__legal_first_name", "patient__preferred_name", "patient__legal_last_name")


def _name(first: str, preferred: str, last: str) -> str:
    return f"{preferred or first} {last}"


def safety_alerts(actor: Actor) -> list[Item]:
    from kapclinic.measures.models import SafetyAlert

    where = visible_patient_q(actor)
    if where is None:
        return []
    rows = (
        SafetyAlert.objects.filter(where, clinic=actor.clinic, acknowledged_at__isnull=True)
        .order_by("-raised_at")
        .values_list("pk", "patient_id", "urgent", "raised_at", *_NAME_FIELDS)[:PER_SOURCE]
    )
    return [
        Item(
            f"alert:{pk}",
            "Safety alert",
            f"{'Urgent safety' if urgent else 'Safety'} alert: {_name(f, p, la)}",
            reverse("measures:acknowledge", kwargs={"patient_id": pid, "alert_id": pk}),
            raised,
        )
        for pk, pid, urgent, raised, f, p, la in rows
    ]


def messages(actor: Actor) -> list[Item]:
    from kapclinic.conversations import selectors

    if actor.user is None or actor.role == Role.PATIENT:
        return []
    rows = (
        selectors.visible_threads(actor)
        .filter(selectors._unread_q(actor.user.pk), status="open")
        .order_by("-last_message_at")
        .values_list("pk", "patient_id", "subject", "last_message_at", *_NAME_FIELDS)[:PER_SOURCE]
    )
    return [
        Item(
            f"thread:{pk}:{int(last.timestamp() * 1_000_000)}",
            "Message",
            f"New message: {_name(f, p, la)} · {subject}",
            reverse("conversations:thread", kwargs={"patient_id": pid, "thread_id": pk}),
            last,
        )
        for pk, pid, subject, last, f, p, la in rows
    ]


def notes_past_due(actor: Actor) -> list[Item]:
    from kapclinic.notes.models import Note, NoteStatus

    if actor.role not in (Role.PRESCRIBER, Role.THERAPIST, Role.NURSE):
        return []
    due = clock.today() - dt.timedelta(days=int(getattr(settings, "NOTE_SIGN_DUE_DAYS", 1)))
    rows = (
        Note.objects.filter(
            clinic=actor.clinic, author=actor.user, status=NoteStatus.DRAFT, service_date__lt=due
        )
        .order_by("service_date")
        .values_list("pk", "patient_id", "title", "created_at", *_NAME_FIELDS)[:PER_SOURCE]
    )
    return [
        Item(
            f"note:{pk}",
            "Unsigned note",
            f"Unsigned note past due: {title}, {_name(f, p, la)}",
            reverse("notes:detail", kwargs={"patient_id": pid, "note_id": pk}),
            created,
        )
        for pk, pid, title, created, f, p, la in rows
    ]


def dose_orders(actor: Actor) -> list[Item]:
    from kapclinic.sessions.models import Administration, SessionState

    if actor.role not in (Role.PRESCRIBER, Role.NURSE):
        return []
    rows = (
        Administration.objects.filter(session__clinic=actor.clinic, administered_at__isnull=True)
        .exclude(session__state__in=[SessionState.DISCHARGED, SessionState.ABORTED])
        .order_by("-ordered_at")
        .values_list(
            "pk",
            "session_id",
            "session__patient_id",
            "ordered_at",
            "double_checked_at",
            *(f"session__{f}" for f in _NAME_FIELDS),
        )[:PER_SOURCE]
    )
    return [
        Item(
            f"dose:{pk}",
            "Dose order",
            f"Dose order waiting{'' if checked else ' (double-check)'}: {_name(f, p, la)}",
            reverse("sessions:detail", kwargs={"patient_id": pid, "session_id": sid}),
            ordered,
        )
        for pk, sid, pid, ordered, checked, f, p, la in rows
    ]


def discrepancies(actor: Actor) -> list[Item]:
    from kapclinic.inventory.models import Discrepancy

    if actor.role not in (Role.ADMIN, Role.PRESCRIBER, Role.NURSE):
        return []
    rows = (
        Discrepancy.objects.filter(registration__clinic=actor.clinic, resolved_at__isnull=True)
        .order_by("-opened_at")
        .values_list("pk", "opened_at", "container__product__name")[:PER_SOURCE]
    )
    return [
        Item(
            f"discrepancy:{pk}",
            "Count discrepancy",
            f"Count discrepancy: {product}",
            reverse("inventory:discrepancy", kwargs={"discrepancy_id": pk}),
            opened,
        )
        for pk, opened, product in rows
    ]


def failed_deliveries(actor: Actor) -> list[Item]:
    from kapclinic.messaging.models import MessageStatus, OutboundMessage

    if actor.role not in (Role.ADMIN, Role.PRESCRIBER):
        return []
    rows = (
        OutboundMessage.objects.filter(clinic=actor.clinic, status=MessageStatus.FAILED)
        .order_by("-created_at")
        .values_list("pk", "kind", "last_attempt_at", "created_at")[:PER_SOURCE]
    )
    from kapclinic.messaging.models import MessageKind

    labels = dict(MessageKind.choices)
    return [
        Item(
            f"delivery:{pk}",
            "Failed delivery",
            f"Could not be delivered: {labels.get(kind, kind)}",
            reverse("messaging:index"),
            last or created,
        )
        for pk, kind, last, created in rows
    ]


SOURCES: tuple[Callable[[Actor], list[Item]], ...] = (
    safety_alerts,
    messages,
    dose_orders,
    notes_past_due,
    discrepancies,
    failed_deliveries,
)


def items(actor: Actor) -> list[Item]:
    found: list[Item] = []
    for source in SOURCES:
        found.extend(source(actor))
    return sorted(found, key=lambda i: i.when, reverse=True)


def with_read(actor: Actor, found: list[Item]) -> list[tuple[Item, bool]]:
    from kapclinic.notifications.models import NotificationRead

    if not found or actor.user is None:
        return [(i, False) for i in found]
    read = set(
        NotificationRead.objects.filter(user=actor.user, key__in=[i.key for i in found]).values_list(
            "key", flat=True
        )
    )
    return [(i, i.key in read) for i in found]


def unread(actor: Actor) -> list[Item]:
    return [i for i, seen in with_read(actor, items(actor)) if not seen]


def find(actor: Actor, key: str) -> Item | None:
    return next((i for i in items(actor) if i.key == key), None)
