"""`manage.py documents verify`: every file in the documents storage has its row and every row its file;
orphans and missing files are named by storage path and row id only, and the command exits 1."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from kapclinic.conversations import services as conversations
from kapclinic.conversations.models import Attachment
from kapclinic.documents.models import Document
from kapclinic.documents.services import Upload
from kapclinic.documents.testing import add_document, tiny_pdf, tiny_png
from kapclinic.documents.tests.conftest import stored_files
from kapclinic.documents.verify import file_fields
from kapclinic.testing.factories import actor_for

pytestmark = pytest.mark.django_db


def _run(*args: str) -> tuple[str, str, int]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("documents", "verify", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), err.getvalue() + str(exc), exc.returncode
    return out.getvalue(), err.getvalue(), 0


def _chart_and_message(world: Any) -> tuple[Document, Attachment]:
    doc = add_document(
        actor_for(world.prescriber, world.clinic), world.patient, tiny_pdf(), "Robin labs.pdf",
        category="lab_result",
    )  # fmt: skip
    png = tiny_png()
    thread = conversations.thread_start(
        actor_for(world.patient_user, world.clinic), world.patient, kind="patient", subject="S", body="B",
        attachments=[Upload(io.BytesIO(png), "Robin rash.png", len(png))],
    )  # fmt: skip
    return doc, Attachment.objects.get(message__thread=thread)


def test_every_file_field_of_the_documents_storage_is_checked() -> None:
    assert {(m._meta.label_lower, f) for m, f in file_fields()} >= {
        ("documents.document", "file"),
        ("conversations.attachment", "file"),
        ("documents.cliniclogo", "file"),
    }


def test_a_storage_that_matches_passes(world: Any, store: Path) -> None:
    _chart_and_message(world)
    out, err, code = _run("--grace-minutes=0")
    assert code == 0 and err == ""
    assert "matches the database: 2 file(s), 2 row(s)" in out


def test_an_empty_storage_passes(db: Any, store: Path) -> None:
    assert _run()[2] == 0


def test_an_orphaned_file_is_named_by_path_only_and_exits_1(world: Any, store: Path) -> None:
    doc, att = _chart_and_message(world)
    orphan = store / str(world.clinic.pk) / "messages" / "0123456789abcdef0123456789abcdef.pdf"
    orphan.write_bytes(tiny_pdf())
    # Just written: perhaps an upload still saving, so not judged within the grace period...
    out, _, code = _run()
    assert code == 0 and "1 file(s) younger than 10 minutes not judged yet" in out
    # ...but an hour old, it is an orphan.
    hour_ago = time.time() - 3600
    os.utime(orphan, (hour_ago, hour_ago))
    out, err, code = _run()
    assert code == 1
    assert f"Orphaned file (no database row): {world.clinic.pk}/messages/{orphan.name}" in err
    assert "1 orphaned file(s), 0 missing file(s)" in err
    assert "Robin" not in out + err and doc.file.name not in err and att.file.name not in err


def test_a_row_whose_file_is_gone_is_named_by_id(world: Any, store: Path) -> None:
    _, att = _chart_and_message(world)
    (store / att.file.name).unlink()
    assert len(stored_files(store)) == 1
    _, err, code = _run("--grace-minutes=0")
    assert code == 1
    assert f"Missing file: conversations.attachment {att.pk} names {att.file.name}" in err
    assert "0 orphaned file(s), 1 missing file(s)" in err and "Robin" not in err


def test_a_negative_grace_is_refused(db: Any, store: Path) -> None:
    _, err, code = _run("--grace-minutes=-1")
    assert code == 1 and "give 0 or more minutes" in err
