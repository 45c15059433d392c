"""Reads of the notes app; constant query counts."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from kapclinic.accounts.models import CLINICAL_ROLES, User
from kapclinic.core.actor import Actor
from kapclinic.notes.models import Note, NoteStatus, ProcessNote
from kapclinic.policy import Action, visible_patients


def patient_notes(patient: Any) -> QuerySet[Note]:
    return (
        Note.objects.filter(patient=patient)
        .select_related("author", "signed_by", "dosing_appointment")
        .annotate(n_addenda=Count("addenda"))
        .order_by("-service_date", "-created_at", "-id")
    )


def my_notes(actor: Actor, *, drafts_only: bool = False) -> QuerySet[Note]:
    qs = Note.objects.filter(
        clinic=actor.clinic,
        author=actor.user,
        patient__in=visible_patients(actor, Action.VIEW_CLINICAL).values("pk"),
    ).select_related("patient")
    if drafts_only:
        qs = qs.filter(status=NoteStatus.DRAFT)
    return qs.order_by("status", "-updated_at", "-id")


def thread_notes(patient: Any, appointment: Any) -> QuerySet[Note]:
    return (
        Note.objects.filter(patient=patient, dosing_appointment=appointment)
        .select_related("author", "signed_by")
        .prefetch_related("addenda__author")
        .order_by("created_at", "id")
    )


def readable_process_notes(user: Any, patient: Any) -> QuerySet[ProcessNote]:
    """Process notes of this patient that `user` wrote or that were shared with them."""
    return (
        ProcessNote.objects.filter(patient=patient)
        .filter(Q(author=user) | Q(shares__user=user))
        .select_related("author", "dosing_session")
        .prefetch_related("shares__user")
        .distinct()
        .order_by("-created_at", "-id")
    )


def colleagues(clinic: Any, exclude: Any) -> list[User]:
    return list(
        User.objects.filter(
            memberships__clinic=clinic, memberships__is_active=True, memberships__role__in=CLINICAL_ROLES
        )
        .exclude(pk=exclude.pk)
        .order_by("full_name")
    )


def draft_count(actor: Actor) -> int:
    return Note.objects.filter(clinic=actor.clinic, author=actor.user, status=NoteStatus.DRAFT).count()
