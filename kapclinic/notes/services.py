"""Every write of the notes app: drafts, signing, addenda, clinic templates, process notes."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from django.db import transaction

from kapclinic.accounts.models import CLINICAL_ROLES, Membership, User
from kapclinic.audit.services import record_event
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.concurrency import ConflictError, save_versioned
from kapclinic.notes import crypto
from kapclinic.notes.models import (
    Addendum,
    ClinicNoteTemplate,
    Note,
    NoteKind,
    NoteStatus,
    ProcessNote,
    ProcessNoteShare,
)
from kapclinic.notes.templates_data import INTEGRATION, available_templates
from kapclinic.patients.models import Patient
from kapclinic.patients.services import add_timeline_event
from kapclinic.policy import Action, can

if TYPE_CHECKING:
    from kapclinic.sessions.models import DosingSession


class NoteError(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(message)


def _note_url(note: Note) -> str:
    from django.urls import reverse

    return reverse("notes:detail", kwargs={"patient_id": note.patient_id, "note_id": note.pk})


@transaction.atomic
def note_create(
    actor: Actor,
    patient: Patient,
    *,
    template_key: str,
    service_date: dt.date | None = None,
    dosing_appointment: Any = None,
) -> Note:
    assert actor.clinic is not None and actor.user is not None
    templates = available_templates(actor.clinic)
    tpl = templates.get(template_key)
    if tpl is None:
        raise NoteError("Choose one of the clinic's note templates.", "template")
    if dosing_appointment is not None and (
        dosing_appointment.patient_id != patient.pk or dosing_appointment.kind != "dosing"
    ):
        raise NoteError("Choose one of this patient's dosing sessions.", "dosing_appointment")
    if tpl.kind == INTEGRATION and dosing_appointment is None:
        raise NoteError(
            "An integration note must name the dosing session it integrates; choose it from the list.",
            "dosing_appointment",
        )
    now = clock.now()
    note = Note.objects.create(
        clinic=actor.clinic,
        patient=patient,
        kind=tpl.kind if tpl.kind in NoteKind.values else NoteKind.CUSTOM,
        template_key=tpl.key,
        template_version=tpl.version,
        title=tpl.title,
        service_date=service_date or clock.today(),
        sections=[{"key": s.key, "label": s.label, "text": ""} for s in tpl.sections],
        author=actor.user,
        created_at=now,
        updated_at=now,
        dosing_appointment=dosing_appointment,
    )
    record_event(actor, "create", patient=patient, obj=note, detail=f"template={tpl.key}")
    return note


def _locked_message(note: Note) -> str:
    when = note.signed_at.strftime("%Y-%m-%d %H:%M") if note.signed_at else "earlier"
    return (
        f"This note was signed on {when} and can no longer be changed; add an addendum to correct or "
        "extend it."
    )


def _apply(note: Note, texts: dict[str, str]) -> list[dict[str, str]]:
    sections = []
    for section in note.sections:
        text = texts.get(section["key"], section.get("text", ""))
        if len(text) > 20000:
            raise NoteError(f"{section['label']} is too long (at most 20000 characters).", section["key"])
        sections.append({**section, "text": text})
    return sections


def _check_editable(actor: Actor, note: Note) -> None:
    if note.status == NoteStatus.SIGNED:
        raise NoteError(_locked_message(note))
    if note.author_id != actor.user_id:
        raise NoteError("Only the author can edit a draft note.")


@transaction.atomic
def note_save_draft(actor: Actor, note: Note, expected_version: int, texts: dict[str, str]) -> Note:
    """Save section texts of a draft (autosave and the Save button). Signed notes refuse."""
    note = Note.objects.select_for_update().get(pk=note.pk)
    _check_editable(actor, note)
    before = {s["key"]: s.get("text", "") for s in note.sections}
    note.sections = _apply(note, texts)
    changed = sum(1 for s in note.sections if s["text"] != before.get(s["key"]))
    note.updated_at = clock.now()
    save_versioned(note, expected_version, ["sections", "updated_at"])
    record_event(actor, "update", patient=note.patient, obj=note, detail=f"draft sections={changed}")
    return note


@transaction.atomic
def note_sign(actor: Actor, note: Note, expected_version: int, texts: dict[str, str] | None = None) -> Note:
    """Sign (lock) a draft, first applying `texts` when the signing form carried the latest edits.

    One "sign" audit event either way."""
    note = Note.objects.select_for_update().select_related("patient").get(pk=note.pk)
    _check_editable(actor, note)
    if note.version != expected_version:
        raise ConflictError()
    if texts is not None:
        note.sections = _apply(note, texts)
    if not note.filled:
        raise NoteError("A note needs some text before it can be signed; fill in at least one section.")
    now = clock.now()
    note.status = NoteStatus.SIGNED
    note.signed_at = now
    note.signed_by = actor.user
    note.updated_at = now
    save_versioned(note, expected_version, ["sections", "status", "signed_at", "signed_by", "updated_at"])
    record_event(actor, "sign", patient=note.patient, obj=note)
    add_timeline_event(
        note.patient,
        kind="notes.signed",
        title=f"{note.title} note signed",
        actor=actor,
        ref=note,
        url=_note_url(note),
    )
    return note


@transaction.atomic
def addendum_add(actor: Actor, note: Note, text: str) -> Addendum:
    note = Note.objects.select_for_update().select_related("patient").get(pk=note.pk)
    if note.status != NoteStatus.SIGNED:
        raise NoteError("Addenda are for signed notes; edit the draft instead.")
    if not can(actor, Action.EDIT_CLINICAL, note.patient):
        raise NoteError("Your role does not allow adding to this patient's notes.")
    text = text.strip()
    if not text:
        raise NoteError("Write the addendum text.", "text")
    if len(text) > 20000:
        raise NoteError("The addendum is too long (at most 20000 characters).", "text")
    addendum = Addendum.objects.create(
        note=note, author=actor.require_user(), text=text, created_at=clock.now()
    )
    record_event(actor, "create", patient=note.patient, obj=addendum, detail=f"addendum to note {note.pk}")
    add_timeline_event(
        note.patient,
        kind="notes.addendum",
        title=f"Addendum to {note.title} note",
        actor=actor,
        ref=addendum,
        url=_note_url(note),
    )
    return addendum


def _slug(label: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:30] or "section"
    key, n = base, 2
    while key in used:
        key, n = f"{base}_{n}", n + 1
    used.add(key)
    return key


@transaction.atomic
def template_create(actor: Actor, *, title: str, section_labels: list[str]) -> ClinicNoteTemplate:
    assert actor.clinic is not None
    title = title.strip()
    labels = [label.strip() for label in section_labels if label.strip()]
    if not title:
        raise NoteError("Give the template a title.", "title")
    if not labels:
        raise NoteError("List at least one section, one per line.", "sections")
    if len(labels) > 30:
        raise NoteError("A template can have at most 30 sections.", "sections")
    if ClinicNoteTemplate.objects.filter(clinic=actor.clinic, title__iexact=title).exists():
        raise NoteError(f"The clinic already has a template called {title}.", "title")
    used: set[str] = set()
    row = ClinicNoteTemplate.objects.create(
        clinic=actor.clinic,
        title=title[:120],
        sections=[{"key": _slug(label, used), "label": label[:200]} for label in labels],
        created_by=actor.require_user(),
    )
    record_event(actor, "admin", obj=row, detail=f"note template sections={len(labels)}")
    return row


# ---------------------------------------------------------------- process notes


def may_read_process_note(user: Any, note: ProcessNote) -> bool:
    if user is None:
        return False
    if note.author_id == user.pk:
        return True
    return any(share.user_id == user.pk for share in note.shares.all())


@transaction.atomic
def process_note_create(
    actor: Actor, patient: Patient, text: str, *, dosing_session: DosingSession | None = None
) -> ProcessNote:
    """Encrypt and store a psychotherapy process note; ``dosing_session`` links it to the session it was
    written in (the session page shows it to its readers, never on the monitoring record)."""
    if actor.clinic is None or actor.user is None:
        raise NoteError("A signed-in clinician is required.")
    if actor.role not in ("therapist", "prescriber"):
        raise NoteError("Psychotherapy process notes are written by therapists and prescribers.")
    if dosing_session is not None and dosing_session.patient_id != patient.pk:
        raise NoteError("That dosing session belongs to another patient.")
    text = text.strip()
    if not text:
        raise NoteError("Write the note.", "text")
    if len(text) > 50000:
        raise NoteError("The note is too long (at most 50000 characters).", "text")
    now = clock.now()
    note = ProcessNote.objects.create(
        clinic=actor.clinic, patient=patient, author=actor.user, ciphertext=crypto.encrypt(text),
        dosing_session=dosing_session, created_at=now, updated_at=now,
    )  # fmt: skip
    record_event(actor, "create", patient=patient, obj=note)
    return note


@transaction.atomic
def process_note_share(actor: Actor, note: ProcessNote, user: User, *, share: bool = True) -> None:
    if note.author_id != actor.user_id:
        raise NoteError("Only the author decides who may read a process note.")
    if share:
        member = Membership.objects.filter(user=user, clinic=note.clinic_id, is_active=True).first()
        if member is None or member.role not in CLINICAL_ROLES or user.pk == actor.user_id:
            raise NoteError("Share with a clinician of this clinic other than yourself.", "user")
        ProcessNoteShare.objects.get_or_create(note=note, user=user)
    else:
        ProcessNoteShare.objects.filter(note=note, user=user).delete()
    record_event(actor, "update", patient=note.patient, obj=note, detail="shared" if share else "unshared")


def process_note_text(note: ProcessNote) -> str:
    return crypto.decrypt(note.ciphertext)


def rotate_process_note_keys(*, batch: int = 200, dry_run: bool = False) -> tuple[int, int]:
    """Re-encrypt every process note with the first key of PROCESS_NOTE_KEYS.

    Each note is decrypted with any configured key, re-encrypted with the first key and verified to
    decrypt to the same text before it is saved, one transaction per batch. Returns (rotated, total).
    Raises InvalidToken (and changes nothing in that batch) when a note cannot be read with the
    configured keys, so no note is ever lost.
    """
    mf = crypto.fernet()
    rotated = total = 0
    last_id = 0
    while True:
        with transaction.atomic():
            rows = list(ProcessNote.objects.select_for_update().filter(pk__gt=last_id).order_by("pk")[:batch])
            if not rows:
                break
            for row in rows:
                total += 1
                plain = mf.decrypt(row.ciphertext.encode("ascii"))
                new = mf.rotate(row.ciphertext.encode("ascii"))
                if mf.decrypt(new) != plain:  # pragma: no cover - defensive
                    raise RuntimeError(f"Verification failed for process note {row.pk}; nothing saved.")
                if not dry_run:
                    ProcessNote.objects.filter(pk=row.pk).update(ciphertext=new.decode("ascii"))
                rotated += 1
            last_id = rows[-1].pk
    return rotated, total
