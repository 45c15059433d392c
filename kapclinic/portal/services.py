"""Writes of the portal: the patient's journal (private until shared) and calendar preferences."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from kapclinic.audit.services import record_event
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.concurrency import save_versioned
from kapclinic.core.errors import DomainError
from kapclinic.patients.models import Patient
from kapclinic.patients.services import add_timeline_event
from kapclinic.portal.models import EntryKind, JournalEntry, Mood
from kapclinic.scheduling.models import Appointment, Kind, Status

MAX_TEXT = 10000


def _validate(
    patient: Patient, kind: str, text: str, mood: int | None, appointment: Appointment | None
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if kind not in EntryKind.values:
        errors["kind"] = ["Choose what kind of entry this is."]
        return errors
    if kind in (EntryKind.INTENTION, EntryKind.REFLECTION):
        if appointment is None:
            errors["appointment"] = ["Choose the dosing session this entry belongs to."]
        elif appointment.patient_id != patient.pk or appointment.kind != Kind.DOSING:
            errors["appointment"] = ["Choose one of your own dosing sessions."]
        elif appointment.status == Status.CANCELLED:
            errors["appointment"] = ["That dosing session was cancelled; choose another one."]
        if not text.strip():
            errors["text"] = ["Write a few words; an empty intention or reflection cannot be saved."]
    if kind == EntryKind.CHECKIN and mood is None and not text.strip():
        errors["mood"] = ["Choose how you feel, or write a few words."]
    if mood is not None and mood not in Mood.values:
        errors["mood"] = ["Choose one of the mood options."]
    if len(text) > MAX_TEXT:
        errors["text"] = [f"Entries can be at most {MAX_TEXT} characters long; this one has {len(text)}."]
    return errors


@transaction.atomic
def entry_create(
    actor: Actor,
    patient: Patient,
    *,
    kind: str,
    text: str,
    mood: int | None = None,
    appointment: Appointment | None = None,
    share: bool = False,
) -> JournalEntry:
    errors = _validate(patient, kind, text, mood, appointment)
    if errors:
        raise DomainError(field_errors=errors)
    now = clock.now()
    entry = JournalEntry.objects.create(
        patient=patient,
        kind=kind,
        text=text.strip(),
        mood=mood,
        appointment=appointment if kind != EntryKind.CHECKIN else None,
        created_at=now,
        updated_at=now,
        shared_at=now if share else None,
    )
    record_event(actor, "create", patient=patient, obj=entry, detail=f"journal {kind} shared={int(share)}")
    if share:
        _timeline_shared(actor, entry)
    return entry


@transaction.atomic
def entry_update(
    actor: Actor, entry: JournalEntry, *, expected_version: int, text: str, mood: int | None
) -> JournalEntry:
    errors = _validate(entry.patient, entry.kind, text, mood, entry.appointment)
    if errors:
        raise DomainError(field_errors=errors)
    entry.text = text.strip()
    entry.mood = mood
    entry.updated_at = clock.now()
    save_versioned(entry, expected_version, ["text", "mood", "updated_at"])
    record_event(actor, "update", patient=entry.patient, obj=entry, detail="journal edited")
    return entry


def _timeline_shared(actor: Actor, entry: JournalEntry) -> None:
    add_timeline_event(
        entry.patient,
        kind="journal.shared",
        title=f"Patient shared a journal entry ({entry.get_kind_display().lower()})",
        actor=actor,
        ref=entry,
    )


@transaction.atomic
def entry_share(actor: Actor, entry: JournalEntry, *, share: bool) -> JournalEntry:
    """Share with the care team, or withdraw sharing. The entry itself is never deleted."""
    entry = JournalEntry.objects.select_for_update().select_related("patient").get(pk=entry.pk)
    now = clock.now()
    if share:
        if entry.is_shared:
            raise DomainError(field_errors={"share": ["This entry is already shared with your care team."]})
        entry.shared_at = now
        entry.share_withdrawn_at = None
    else:
        if not entry.is_shared:
            raise DomainError(
                field_errors={"share": ["This entry is not shared, so there is nothing to withdraw."]}
            )
        entry.shared_at = None
        entry.share_withdrawn_at = now
    entry.save(update_fields=["shared_at", "share_withdrawn_at"])
    record_event(
        actor, "update", patient=entry.patient, obj=entry, detail="shared" if share else "share withdrawn"
    )
    if share:
        _timeline_shared(actor, entry)
    return entry


def upcoming_dosing(patient: Patient) -> list[Any]:
    return list(
        Appointment.objects.filter(patient=patient, kind=Kind.DOSING)
        .exclude(status=Status.CANCELLED)
        .order_by("-starts_at")[:20]
    )
