"""Every write of the notes app: drafts, signing, addenda, clinic templates, process notes."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from kapclinic.accounts.models import CLINICAL_ROLES, Membership, User
from kapclinic.audit.services import record_event
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.concurrency import ConflictError, save_versioned
from kapclinic.core.errors import DomainError
from kapclinic.notes import crypto
from kapclinic.notes.models import (
    Addendum,
    ClinicNoteTemplate,
    ClinicNoteTemplateVersion,
    HiddenBuiltinTemplate,
    Note,
    NoteKind,
    NoteStatus,
    ProcessNote,
    ProcessNoteRevision,
    ProcessNoteShare,
)
from kapclinic.notes.templates_data import INTEGRATION, available_templates, builtin_templates
from kapclinic.patients.models import Patient
from kapclinic.patients.services import add_timeline_event
from kapclinic.policy import Action, ClinicAction, can, clinic_can

if TYPE_CHECKING:
    from kapclinic.sessions.models import DosingSession


def _note_link(note: Note) -> dict[str, Any]:
    """The timeline link to a note: its URL name and kwargs (add_timeline_event's url_name/url_kwargs)."""
    return {"url_name": "notes:detail", "url_kwargs": {"patient_id": note.patient_id, "note_id": note.pk}}


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
        raise DomainError(field_errors={"template": ["Choose one of the clinic's note templates."]})
    if dosing_appointment is not None and (
        dosing_appointment.patient_id != patient.pk or dosing_appointment.kind != "dosing"
    ):
        raise DomainError(
            field_errors={"dosing_appointment": ["Choose one of this patient's dosing sessions."]}
        )
    if tpl.kind == INTEGRATION and dosing_appointment is None:
        raise DomainError(
            field_errors={
                "dosing_appointment": [
                    "An integration note must name the dosing session it integrates; choose it from the list."
                ]
            }
        )
    template_version = None
    if tpl.clinic_template_id is not None:
        template_version = ClinicNoteTemplateVersion.objects.get(
            template_id=tpl.clinic_template_id, number=tpl.number
        )
    now = clock.now()
    note = Note.objects.create(
        clinic=actor.clinic,
        patient=patient,
        kind=tpl.kind if tpl.kind in NoteKind.values else NoteKind.CUSTOM,
        template_key=tpl.key,
        template_version=tpl.version,
        clinic_template_version=template_version,
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
    when = timezone.localtime(note.signed_at).strftime("%Y-%m-%d %H:%M") if note.signed_at else "earlier"
    return (
        f"This note was signed on {when} and can no longer be changed; add an addendum to correct or "
        "extend it."
    )


def _apply(note: Note, texts: dict[str, str]) -> list[dict[str, str]]:
    sections = []
    for section in note.sections:
        text = texts.get(section["key"], section.get("text", ""))
        if len(text) > 20000:
            too_long = f"{section['label']} is too long (at most 20000 characters)."
            raise DomainError(field_errors={section["key"]: [too_long]})
        sections.append({**section, "text": text})
    return sections


def _check_editable(actor: Actor, note: Note) -> None:
    if note.status == NoteStatus.SIGNED:
        raise DomainError(_locked_message(note))
    if note.author_id != actor.user_id:
        raise DomainError("Only the author can edit a draft note.")


def _base_version(note: Note, expected_version: int, editor: str) -> int:
    """The stored version this save or signature may replace, or ConflictError.

    `expected_version` is the version the author's page last knew. When the note has moved on since, it
    is still this page's own save (not somebody else's change) if the newest draft was written by the same
    editing session (`editor`, the random token of one opened editor page): a page only ever learns
    versions from its own saves, and the server accepts a save of one page only while that page wrote the
    draft last (or knows its version), so every version since `expected_version` was written by this page.
    Its requests are sent one at a time (hx-sync on the form), each with the whole form, so what it sends
    now equals or supersedes what it sent before: typically the autosave still in flight when the author
    pressed "Sign note". A save from any other page (another tab, another device) with an old version is
    refused as before."""
    if note.version == expected_version:
        return expected_version
    if editor and note.draft_editor == editor and 0 < expected_version < note.version:
        return note.version
    raise ConflictError()


@transaction.atomic
def note_save_draft(
    actor: Actor, note: Note, *, expected_version: int, texts: dict[str, str], editor: str = ""
) -> Note:
    """Save section texts of a draft (autosave and the Save button). Signed notes refuse.

    `editor` identifies the editing session (the page) that saves; see `_base_version`."""
    note = Note.objects.select_for_update().get(pk=note.pk)
    _check_editable(actor, note)
    base = _base_version(note, expected_version, editor)
    before = {s["key"]: s.get("text", "") for s in note.sections}
    note.sections = _apply(note, texts)
    changed = [s["key"] for s in note.sections if s["text"] != before.get(s["key"])]
    note.updated_at = clock.now()
    note.draft_editor = editor[:40]
    save_versioned(note, base, ["sections", "updated_at", "draft_editor"])
    # Which sections changed, never their text.
    record_event(
        actor,
        "update",
        patient=note.patient,
        obj=note,
        detail=f"draft sections={len(changed)}",
        name="note.draft_save",
        data={"sections_changed": changed},
    )
    return note


@transaction.atomic
def note_sign(
    actor: Actor,
    note: Note,
    *,
    expected_version: int,
    texts: dict[str, str] | None = None,
    editor: str = "",
) -> Note:
    """Sign (lock) a draft, first applying `texts` when the signing form carried the latest edits.

    A version moved on only by this same editing session's own autosave is not a conflict (see
    `_base_version`). One "sign" audit event either way."""
    note = Note.objects.select_for_update().select_related("patient").get(pk=note.pk)
    _check_editable(actor, note)
    expected_version = _base_version(note, expected_version, editor)
    if texts is not None:
        note.sections = _apply(note, texts)
    if not note.filled:
        raise DomainError("A note needs some text before it can be signed; fill in at least one section.")
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
        **_note_link(note),
    )
    return note


@transaction.atomic
def addendum_add(actor: Actor, note: Note, *, text: str) -> Addendum:
    note = Note.objects.select_for_update().select_related("patient").get(pk=note.pk)
    if note.status != NoteStatus.SIGNED:
        raise DomainError("Addenda are for signed notes; edit the draft instead.")
    if not can(actor, Action.EDIT_CLINICAL, note.patient):
        raise DomainError("Your role does not allow adding to this patient's notes.")
    text = text.strip()
    if not text:
        raise DomainError(field_errors={"text": ["Write the addendum text."]})
    if len(text) > 20000:
        raise DomainError(field_errors={"text": ["The addendum is too long (at most 20000 characters)."]})
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
        **_note_link(note),
    )
    return addendum


def _slug(label: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:30] or "section"
    key, n = base, 2
    while key in used:
        key, n = f"{base}_{n}", n + 1
    used.add(key)
    return key


def _template_content(
    clinic: Any, title: str, section_labels: list[str], *, exclude_pk: int | None = None
) -> tuple[str, list[dict[str, str]]]:
    """Check a template's title and section labels; return (title, sections with keys)."""
    title = title.strip()
    labels = [label.strip() for label in section_labels if label.strip()]
    if not title:
        raise DomainError(field_errors={"title": ["Give the template a title."]})
    if not labels:
        raise DomainError(field_errors={"sections": ["List at least one section, one per line."]})
    if len(labels) > 30:
        raise DomainError(field_errors={"sections": ["A template can have at most 30 sections."]})
    same_title = ClinicNoteTemplate.objects.filter(clinic=clinic, title__iexact=title[:120])
    if exclude_pk is not None:
        same_title = same_title.exclude(pk=exclude_pk)
    if same_title.exists():
        raise DomainError(field_errors={"title": [f"The clinic already has a template called {title}."]})
    used: set[str] = set()
    return title[:120], [{"key": _slug(label, used), "label": label[:200]} for label in labels]


@transaction.atomic
def template_create(actor: Actor, *, title: str, section_labels: list[str]) -> ClinicNoteTemplate:
    assert actor.clinic is not None
    title, sections = _template_content(actor.clinic, title, section_labels)
    now = clock.now()
    row = ClinicNoteTemplate.objects.create(
        clinic=actor.clinic,
        title=title,
        sections=sections,
        number=1,
        created_by=actor.require_user(),
        created_at=now,
        updated_at=now,
    )
    ClinicNoteTemplateVersion.objects.create(
        template=row,
        number=1,
        title=title,
        sections=sections,
        created_by=actor.require_user(),
        created_at=now,
    )
    record_event(actor, "admin", obj=row, detail=f"note template sections={len(sections)}")
    return row


def _locked_template(actor: Actor, template: ClinicNoteTemplate, expected_version: int) -> ClinicNoteTemplate:
    row = ClinicNoteTemplate.objects.select_for_update().filter(pk=template.pk, clinic=actor.clinic).first()
    if row is None:
        raise DomainError("This template belongs to another clinic.")
    if row.version != expected_version:
        raise ConflictError()
    return row


@transaction.atomic
def template_update(
    actor: Actor,
    template: ClinicNoteTemplate,
    *,
    expected_version: int,
    title: str,
    section_labels: list[str],
) -> ClinicNoteTemplate:
    """Save an edit of a clinic template as its next version (``number`` + 1).

    The earlier versions stay as they were: notes written with them keep pointing at them and keep
    their own section snapshot. Refuses a stale ``expected_version`` (ConflictError) and an edit that
    changes nothing."""
    row = _locked_template(actor, template, expected_version)
    title, sections = _template_content(actor.clinic, title, section_labels, exclude_pk=row.pk)
    if title == row.title and sections == row.sections:
        raise DomainError(f"Nothing changed; the template stays at version {row.number}.")
    now = clock.now()
    row.title, row.sections, row.number, row.updated_at = title, sections, row.number + 1, now
    save_versioned(row, expected_version, ["title", "sections", "number", "updated_at"])
    ClinicNoteTemplateVersion.objects.create(
        template=row, number=row.number, title=title, sections=sections,
        created_by=actor.require_user(), created_at=now,
    )  # fmt: skip
    record_event(
        actor, "update", obj=row, detail=f"note template version={row.number} sections={len(sections)}"
    )
    return row


@transaction.atomic
def template_set_active(
    actor: Actor, template: ClinicNoteTemplate, *, expected_version: int, active: bool
) -> ClinicNoteTemplate:
    """Retire (``active=False``) or reinstate a clinic template. Retired templates are not offered for new
    notes; notes already written with them are unchanged."""
    row = _locked_template(actor, template, expected_version)
    if row.is_active == active:
        raise DomainError(
            "This template is already offered for new notes."
            if active
            else "This template is already retired."
        )
    row.is_active = active
    row.retired_at = None if active else clock.now()
    row.retired_by = None if active else actor.require_user()
    save_versioned(row, expected_version, ["is_active", "retired_at", "retired_by"])
    record_event(
        actor, "update", obj=row, detail="note template reinstated" if active else "note template retired"
    )
    return row


@transaction.atomic
def builtin_set_hidden(actor: Actor, key: str, *, hidden: bool) -> None:
    """Hide a built-in template from this clinic's new-note choices, or offer it again.

    Built-ins come from the data files and cannot be edited or retired by a clinic; hiding only affects
    which templates this clinic offers for new notes. Both directions are idempotent (hiding twice leaves
    it hidden), so two people doing the same thing at once cannot overwrite each other."""
    assert actor.clinic is not None
    if key not in builtin_templates():
        raise DomainError("There is no built-in template with that name.")
    if hidden and key == INTEGRATION:
        raise DomainError(
            "The integration template cannot be hidden: integration notes on dosing sessions are written "
            "with it."
        )
    if hidden:
        HiddenBuiltinTemplate.objects.get_or_create(
            clinic=actor.clinic, key=key, defaults={"hidden_by": actor.require_user()}
        )
    else:
        HiddenBuiltinTemplate.objects.filter(clinic=actor.clinic, key=key).delete()
    record_event(
        actor, "update", object_type="notes.builtin_template", object_id=key,
        detail="builtin template hidden" if hidden else "builtin template shown",
    )  # fmt: skip


# ---------------------------------------------------------------- process notes


def may_read_process_note(user: Any, note: ProcessNote) -> bool:
    if user is None:
        return False
    if note.author_id == user.pk:
        return True
    return any(share.user_id == user.pk for share in note.shares.all())


@transaction.atomic
def process_note_create(
    actor: Actor, patient: Patient, *, text: str, dosing_session: DosingSession | None = None
) -> ProcessNote:
    """Encrypt and store a psychotherapy process note; ``dosing_session`` links it to the session it was
    written in (the session page shows it to its readers, never on the monitoring record)."""
    if actor.clinic is None or actor.user is None:
        raise DomainError("A signed-in clinician is required.")
    if not clinic_can(actor, ClinicAction.PROCESS_NOTES):
        raise DomainError("Psychotherapy process notes are written by therapists and prescribers.")
    if dosing_session is not None and dosing_session.patient_id != patient.pk:
        raise DomainError("That dosing session belongs to another patient.")
    text = _clean_process_text(text)
    now = clock.now()
    note = ProcessNote.objects.create(
        clinic=actor.clinic, patient=patient, author=actor.user, ciphertext=crypto.encrypt(text),
        dosing_session=dosing_session, created_at=now, updated_at=now,
    )  # fmt: skip
    record_event(actor, "create", patient=patient, obj=note)
    return note


@transaction.atomic
def process_note_share(actor: Actor, note: ProcessNote, *, user: User, share: bool = True) -> None:
    if note.author_id != actor.user_id:
        raise DomainError("Only the author decides who may read a process note.")
    if share:
        member = Membership.objects.filter(user=user, clinic=note.clinic_id, is_active=True).first()
        if member is None or member.role not in CLINICAL_ROLES or user.pk == actor.user_id:
            raise DomainError(
                field_errors={"user": ["Share with a clinician of this clinic other than yourself."]}
            )
        ProcessNoteShare.objects.get_or_create(note=note, user=user)
    else:
        ProcessNoteShare.objects.filter(note=note, user=user).delete()
    record_event(actor, "update", patient=note.patient, obj=note, detail="shared" if share else "unshared")


def process_note_text(note: ProcessNote | ProcessNoteRevision) -> str:
    return crypto.decrypt(note.ciphertext)


def _clean_process_text(text: str) -> str:
    text = text.strip()
    if not text:
        raise DomainError(field_errors={"text": ["Write the note."]})
    if len(text) > 50000:
        raise DomainError(field_errors={"text": ["The note is too long (at most 50000 characters)."]})
    return text


@transaction.atomic
def process_note_edit(actor: Actor, note: ProcessNote, *, expected_version: int, text: str) -> ProcessNote:
    """Replace the text of the author's own process note, keeping the text it replaces as an encrypted
    revision. Only the author may edit; a stale ``expected_version`` raises ConflictError and changes
    nothing. The audit event names the revision number, never the text."""
    note = ProcessNote.objects.select_for_update().select_related("patient").get(pk=note.pk)
    if actor.user is None or note.author_id != actor.user_id:
        raise DomainError("Only the author can edit a process note.")
    if not clinic_can(actor, ClinicAction.PROCESS_NOTES):
        raise DomainError("Psychotherapy process notes are written by therapists and prescribers.")
    if note.version != expected_version:
        raise ConflictError()
    text = _clean_process_text(text)
    if text == process_note_text(note):
        raise DomainError(field_errors={"text": ["Nothing changed; the note was not saved again."]})
    now = clock.now()
    number = note.revisions.count() + 1
    ProcessNoteRevision.objects.create(
        note=note, number=number, ciphertext=note.ciphertext,
        written_at=note.edited_at or note.created_at, replaced_at=now,
    )  # fmt: skip
    note.ciphertext = crypto.encrypt(text)
    note.edited_at = note.updated_at = now
    save_versioned(note, expected_version, ["ciphertext", "edited_at", "updated_at"])
    record_event(actor, "update", patient=note.patient, obj=note, detail=f"edited revisions={number}")
    return note


def rotate_process_note_keys(*, batch: int = 200, dry_run: bool = False) -> tuple[int, int]:
    """Re-encrypt every process note, and every earlier revision of one, with the first key of
    PROCESS_NOTE_KEYS.

    Each text is decrypted with any configured key, re-encrypted with the first key and verified to
    decrypt to the same text before it is saved, one transaction per batch. Returns (rotated, total),
    counting notes and revisions. Raises InvalidToken (and changes nothing in that batch) when a text
    cannot be read with the configured keys, so nothing is ever lost.
    """
    mf = crypto.fernet()
    rotated = total = 0
    models: tuple[Any, ...] = (ProcessNote, ProcessNoteRevision)
    for model in models:
        last_id = 0
        while True:
            with transaction.atomic():
                rows: list[Any] = list(
                    model.objects.select_for_update().filter(pk__gt=last_id).order_by("pk")[:batch]
                )
                if not rows:
                    break
                for row in rows:
                    total += 1
                    plain = mf.decrypt(row.ciphertext.encode("ascii"))
                    new = mf.rotate(row.ciphertext.encode("ascii"))
                    if mf.decrypt(new) != plain:  # pragma: no cover - defensive
                        raise RuntimeError(
                            f"Verification failed for {model.__name__} {row.pk}; nothing saved."
                        )
                    if not dry_run:
                        model.objects.filter(pk=row.pk).update(ciphertext=new.decode("ascii"))
                    rotated += 1
                last_id = rows[-1].pk
    return rotated, total
