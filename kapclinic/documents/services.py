"""Chart documents: upload (staff, or patient into the queue), file or reject, open for download.

Who may do what is the policy's (kapclinic.policy.document_action): an administrative document is
demographics, a clinical one is clinical data. Every read and write is audited in its transaction.
A file reaches the storage only after every check passed, and is removed again if the row cannot be
written, so a refusal or a failure never leaves a file behind.

Other apps keep files under the same rules through `check_upload`, `store_checked` and `open_stored`
(message attachments in conversations, the clinic's logo): one validation, one storage. Work that stores
files runs inside `removed_on_failure()`: every file `store_checked` wrote in it is deleted again when the
work fails after the file was written (the row, an audit event, a notification or the commit), so a
failure leaves no orphan in the storage. `manage.py documents verify` names any that is left anyway.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.db import transaction

from kapclinic.audit.services import record_event
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.errors import DomainError
from kapclinic.documents import validation
from kapclinic.documents.models import Category, Document, Source, Status, document_storage, new_storage_name
from kapclinic.policy import can, document_action

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upload:
    fh: IO[bytes]
    name: str
    size: int


def max_bytes() -> int:
    return int(settings.DOCUMENT_MAX_MB) * 1024 * 1024


def _sha256(fh: IO[bytes]) -> str:
    fh.seek(0)
    digest = hashlib.sha256()
    for chunk in iter(lambda: fh.read(1 << 16), b""):
        digest.update(chunk)
    fh.seek(0)
    return digest.hexdigest()


def check_upload(
    upload: Upload, *, allowed: frozenset[str] = validation.ALL_TYPES, limit: int | None = None
) -> tuple[validation.Checked, str]:
    """Every check a chart document passes (documents/validation.py), on `upload`; returns what it is
    and its SHA-256. `allowed` narrows the types (e.g. images only), `limit` the size (bytes; default
    settings.DOCUMENT_MAX_MB). Raises DomainError with one sentence; nothing is stored."""
    try:
        checked = validation.check(
            upload.fh, upload.name, upload.size, max_bytes=limit or max_bytes(), allowed=allowed
        )
    except DomainError as exc:
        raise DomainError(str(exc)) from None
    return checked, _sha256(upload.fh)


@contextmanager
def removed_on_failure() -> Iterator[list[str]]:
    """A piece of work that stores files: yields the list `store_checked(..., kept=)` adds each stored
    file's name to; if the block raises, every one of them is deleted from the storage before the error
    goes on. Put the block around the transaction (not inside it), so a failed commit is covered too.
    Django has no hook for the rollback of an enclosing transaction the caller opened, so a caller that
    wraps this work in its own `atomic` and then rolls back leaves the files: no view does that (no
    ATOMIC_REQUESTS), and `manage.py documents verify` names such orphans."""
    kept: list[str] = []
    try:
        yield kept
    except BaseException:
        _delete_all(kept)
        raise


def _delete_all(names: list[str]) -> None:
    storage = document_storage()
    for name in names:
        try:
            storage.delete(name)
        except Exception:  # keep deleting the others; `documents verify` names what is left
            log.warning("documents: could not remove stored file %s after a failure", name)  # a random name


def store_checked(
    row: Any, field: str, *, upload: Upload, checked: validation.Checked, kept: list[str] | None = None
) -> None:
    """Save a checked upload into `row`'s file field `field` (a FileField on the documents storage) under a
    random name, then the row; if the row cannot be written, the file is removed again. `kept` (from
    `removed_on_failure`) remembers the file, so a later failure of the same work removes it too."""
    upload.fh.seek(0)
    file = getattr(row, field)
    name = new_storage_name(validation.STORED_EXTENSION[checked.content_type])
    file.save(name, File(upload.fh), save=False)
    try:
        row.save()
    except BaseException:
        document_storage().delete(file.name)
        raise
    if kept is not None:
        kept.append(file.name)


def open_stored(name: str) -> IO[bytes]:
    """A file of the documents storage, opened for reading (the caller checked the policy and audits)."""
    if not name:
        raise DomainError("This file was not kept.")
    try:
        return document_storage().open(name, "rb")
    except FileNotFoundError:
        raise DomainError(
            "The file is missing from the document storage; restore it from the backup."
        ) from None


def _store(doc: Document, upload: Upload, checked: validation.Checked, kept: list[str]) -> None:
    store_checked(doc, "file", upload=upload, checked=checked, kept=kept)


def _new(patient: Any, actor: Actor, upload: Upload, **fields: Any) -> tuple[Document, validation.Checked]:
    checked, sha256 = check_upload(upload)
    assert actor.user is not None
    return Document(
        patient=patient,
        name=checked.name,
        content_type=checked.content_type,
        size=checked.size,
        sha256=sha256,
        uploaded_by=actor.user,
        **fields,
    ), checked


def upload(actor: Actor, patient: Any, *, upload: Upload, category: str, title: str) -> Document:
    """A staff member files a document straight into the chart."""
    if category not in Category.values:
        raise DomainError("Choose what kind of document this is.")
    if not can(actor, document_action(category, write=True), patient):
        raise DomainError("Your role cannot file this kind of document; choose an administrative category.")
    doc, checked = _new(
        patient,
        actor,
        upload,
        category=category,
        title=title.strip() or Category(category).label,
        status=Status.FILED,
        source=Source.STAFF,
    )
    doc.filed_by = actor.user
    doc.filed_at = clock.now()
    with removed_on_failure() as kept, transaction.atomic():
        _store(doc, upload, checked, kept)
        record_event(actor, "create", patient=patient, obj=doc, detail=f"{doc.category} {doc.content_type}")
    return doc


def portal_upload(actor: Actor, patient: Any, *, upload: Upload, category: str, note: str) -> Document:
    """The patient sends a document from the portal; it waits in the queue until staff file it."""
    if category not in Category.values:
        raise DomainError("Choose what kind of document this is.")
    doc, checked = _new(
        patient,
        actor,
        upload,
        category=category,
        title=Category(category).label,
        status=Status.PENDING,
        source=Source.PORTAL,
        note=note.strip(),
    )
    with removed_on_failure() as kept, transaction.atomic():
        _store(doc, upload, checked, kept)
        record_event(actor, "create", patient=patient, obj=doc, detail="portal upload")
    return doc


def may_view(actor: Actor, doc: Document) -> bool:
    return can(actor, document_action(doc.category), doc.patient)


def file_document(
    actor: Actor, doc: Document, *, expected_version: int, category: str, title: str
) -> Document:
    """File a patient's upload into the chart (the filer may correct its category)."""
    from kapclinic.core.concurrency import save_versioned

    if doc.status != Status.PENDING:
        raise DomainError("This upload has already been dealt with.")
    if category not in Category.values:
        raise DomainError("Choose what kind of document this is.")
    if not (may_view(actor, doc) and can(actor, document_action(category, write=True), doc.patient)):
        raise DomainError(
            "Your role cannot file this kind of document; a clinician files clinical documents."
        )
    doc.category = category
    doc.title = title.strip() or Category(category).label
    doc.status = Status.FILED
    doc.filed_by = actor.user
    doc.filed_at = clock.now()
    with transaction.atomic():
        save_versioned(doc, expected_version, ["category", "title", "status", "filed_by", "filed_at"])
        record_event(actor, "update", patient=doc.patient, obj=doc, detail="filed")
    return doc


def reject_document(actor: Actor, doc: Document, *, expected_version: int, reason: str) -> Document:
    """Refuse a patient's upload: the row stays with the reason (the patient sees it), the file is erased."""
    from kapclinic.core.concurrency import save_versioned

    if doc.status != Status.PENDING:
        raise DomainError("This upload has already been dealt with.")
    if not may_view(actor, doc):
        raise DomainError("Your role cannot deal with this upload.")
    reason = reason.strip()
    if not reason:
        raise DomainError("Say why the upload is not filed; the patient reads it.")
    name = doc.file.name
    doc.status = Status.REJECTED
    doc.rejected_reason = reason
    doc.filed_by = actor.user
    doc.filed_at = clock.now()
    doc.file.name = ""
    with transaction.atomic():
        save_versioned(doc, expected_version, ["status", "rejected_reason", "filed_by", "filed_at", "file"])
        record_event(actor, "update", patient=doc.patient, obj=doc, detail="rejected")
        transaction.on_commit(lambda: document_storage().delete(name) if name else None)
    return doc


def open_for_download(actor: Actor, doc: Document) -> IO[bytes]:
    """The stored file, opened for reading; audited as a view of the document."""
    if not doc.file.name:
        raise DomainError("This upload was not filed, so its file was not kept.")
    try:
        fh = document_storage().open(doc.file.name, "rb")
    except FileNotFoundError:
        raise DomainError(
            "The file of this document is missing from the document storage; restore it from the backup."
        ) from None
    record_event(actor, "view", patient=doc.patient, obj=doc, detail="download")
    return fh
