"""Reads of secure messaging. Unread counts are one query whatever the number of threads."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery

from kapclinic.accounts.models import Role
from kapclinic.conversations.models import ReadMark, Thread, ThreadKind, ThreadStatus
from kapclinic.core.actor import Actor
from kapclinic.policy import ALL, CASELOAD, SELF, Action, scope


def visible_threads(actor: Actor) -> QuerySet[Thread]:
    """The threads `actor` may read: staff with view_clinical (the whole clinic for prescribers and
    nurses, the caseload for therapists); a patient only the patient threads of their own record."""
    if actor.user is None or actor.clinic is None:
        return Thread.objects.none()
    qs = Thread.objects.filter(clinic=actor.clinic)
    if actor.role == Role.PATIENT:
        if scope(actor, Action.SELF_SERVICE) != SELF:
            return Thread.objects.none()
        return qs.filter(kind=ThreadKind.PATIENT, patient__user_id=actor.user.pk)
    sc = scope(actor, Action.VIEW_CLINICAL)
    if sc == ALL:
        return qs
    if sc == CASELOAD:
        from kapclinic.patients.models import CareTeamMember

        # IN (the caseload's patients), not EXISTS per thread: the count then probes the caseload's
        # threads by patient instead of testing every open thread of the clinic (docs/benchmarks.md).
        return qs.filter(
            patient_id__in=CareTeamMember.objects.filter(user_id=actor.user.pk).values("patient_id")
        )
    return Thread.objects.none()


def _unread_q(user_id: int) -> Q:
    """Unread by `user_id`: someone else wrote last, and no read mark of theirs reaches the last message
    (one index probe of readmark_unique per thread)."""
    seen = ReadMark.objects.filter(
        thread_id=OuterRef("pk"), user_id=user_id, read_at__gte=OuterRef("last_message_at")
    )
    return Q(~Q(last_message_by_id=user_id) | Q(last_message_by__isnull=True)) & ~Q(Exists(seen))


def with_unread(qs: QuerySet[Thread], user_id: int) -> QuerySet[Thread]:
    mark = ReadMark.objects.filter(thread_id=OuterRef("pk"), user_id=user_id).values("read_at")[:1]
    return qs.annotate(my_read_at=Subquery(mark))


def unread_count(actor: Actor) -> int:
    """Threads with a message this person has not read (one query)."""
    if actor.user is None:
        return 0
    qs = visible_threads(actor)
    if actor.role != Role.PATIENT:
        qs = qs.filter(status=ThreadStatus.OPEN)
    return qs.filter(_unread_q(actor.user.pk)).count()


def is_unread(thread: Any, user_id: int) -> bool:
    read_at = getattr(thread, "my_read_at", None)
    if thread.last_message_by_id == user_id:
        return False
    return read_at is None or thread.last_message_at > read_at


def inbox(actor: Actor, show: str) -> QuerySet[Thread]:
    assert actor.user is not None
    qs = visible_threads(actor).select_related("patient", "assigned_to")
    qs = qs.only(
        "pk",
        "subject",
        "kind",
        "status",
        "last_message_at",
        "last_message_by_id",
        "awaiting_since",
        "patient__id",
        "patient__legal_first_name",
        "patient__legal_last_name",
        "patient__preferred_name",
        "patient__mrn",
        "patient__clinic_id",
        "assigned_to__id",
        "assigned_to__full_name",
    )
    if show == "mine":
        qs = qs.filter(assigned_to=actor.user, status=ThreadStatus.OPEN)
    elif show == "unassigned":
        qs = qs.filter(assigned_to__isnull=True, status=ThreadStatus.OPEN)
    elif show == "waiting":
        qs = qs.filter(awaiting_since__isnull=False, status=ThreadStatus.OPEN)
    elif show == "done":
        qs = qs.filter(status=ThreadStatus.DONE)
    else:
        qs = qs.filter(status=ThreadStatus.OPEN)
    return with_unread(qs, actor.user.pk).order_by("-last_message_at", "-id")


def overdue(actor: Actor, hours: int, now: dt.datetime) -> QuerySet[Thread]:
    """Open patient threads whose patient has waited longer than the clinic's reply time."""
    return (
        visible_threads(actor)
        .filter(
            kind=ThreadKind.PATIENT,
            status=ThreadStatus.OPEN,
            awaiting_since__lt=now - dt.timedelta(hours=hours),
        )
        .select_related("patient")
        .order_by("awaiting_since")
    )


def overdue_for_widget(actor: Actor, now: dt.datetime, limit: int) -> tuple[list[Thread], int, bool]:
    """(threads waiting longer than the reply time, oldest first; the reply time; more than `limit`?)
    in one query: the clinic's reply time rides along as a subquery, the comparison is made here."""
    from kapclinic.conversations.models import DEFAULT_REPLY_HOURS, ConversationSettings

    setting = ConversationSettings.objects.filter(clinic_id=OuterRef("clinic_id")).values("reply_hours")[:1]
    rows: list[Thread] = list(
        visible_threads(actor)
        .filter(
            kind=ThreadKind.PATIENT, status=ThreadStatus.OPEN, awaiting_since__lt=now - dt.timedelta(hours=1)
        )
        .annotate(reply_hours=Subquery(setting))
        .select_related("patient")
        .only(
            "pk",
            "subject",
            "awaiting_since",
            "patient__id",
            "patient__legal_first_name",
            "patient__legal_last_name",
            "patient__preferred_name",
        )
        .order_by("awaiting_since", "pk")[: limit + 1]
    )
    hours = DEFAULT_REPLY_HOURS
    if rows:
        hours = getattr(rows[0], "reply_hours", None) or DEFAULT_REPLY_HOURS
    late = [
        t for t in rows if t.awaiting_since is not None and t.awaiting_since < now - dt.timedelta(hours=hours)
    ]
    return late[:limit], hours, len(late) > limit
