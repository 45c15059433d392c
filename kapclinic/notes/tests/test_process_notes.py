from __future__ import annotations

import datetime as dt
from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from kapclinic.core.errors import DomainError
from kapclinic.notes import crypto, services
from kapclinic.notes.checks import process_note_keys
from kapclinic.notes.models import ProcessNote
from kapclinic.testing.factories import actor_for

pytestmark = pytest.mark.django_db

SECRET = "She spoke about her brother for the first time"


def raw_column(pk: int) -> str:
    with connection.cursor() as cur:
        cur.execute("SELECT ciphertext FROM notes_processnote WHERE id = %s", [pk])
        return str(cur.fetchone()[0])


def test_stored_column_never_contains_the_plaintext(world: Any) -> None:
    note = services.process_note_create(actor_for(world.therapist, world.clinic), world.patient, text=SECRET)
    stored = raw_column(note.pk)
    assert SECRET not in stored and "brother" not in stored
    assert stored.startswith("gAAAA")  # a Fernet token
    assert services.process_note_text(note) == SECRET


def test_rotation_keeps_every_note_readable(world: Any, settings: Any) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.PROCESS_NOTE_KEYS = [old]
    actor = actor_for(world.therapist, world.clinic)
    notes = [services.process_note_create(actor, world.patient, text=f"{SECRET} #{i}") for i in range(5)]
    before = {n.pk: raw_column(n.pk) for n in notes}
    settings.PROCESS_NOTE_KEYS = [new, old]
    call_command("rotate_process_note_keys", "--batch", "2")
    settings.PROCESS_NOTE_KEYS = [new]  # the old key is gone
    for i, n in enumerate(notes):
        n.refresh_from_db()
        assert raw_column(n.pk) != before[n.pk]
        assert services.process_note_text(n) == f"{SECRET} #{i}"


def test_rotation_without_the_old_key_refuses_and_loses_nothing(world: Any, settings: Any) -> None:
    from django.core.management.base import CommandError

    old = Fernet.generate_key().decode()
    settings.PROCESS_NOTE_KEYS = [old]
    note = services.process_note_create(actor_for(world.therapist, world.clinic), world.patient, text=SECRET)
    stored = raw_column(note.pk)
    settings.PROCESS_NOTE_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="could not be decrypted"):
        call_command("rotate_process_note_keys")
    assert raw_column(note.pk) == stored
    settings.PROCESS_NOTE_KEYS = [old]
    assert services.process_note_text(note) == SECRET


def test_dev_key_is_deterministic_and_production_requires_keys(settings: Any) -> None:
    settings.PROCESS_NOTE_KEYS = []
    assert crypto.keys() == crypto.keys() == [crypto.derived_dev_key()]
    settings.IS_PRODUCTION = True
    with pytest.raises(Exception, match="PROCESS_NOTE_KEYS must be set"):
        crypto.encrypt("x")
    assert [e.id for e in process_note_keys()] == ["notes.E001"]
    settings.PROCESS_NOTE_KEYS = ["not-a-key"]
    assert [e.id for e in process_note_keys()] == ["notes.E002"]
    settings.PROCESS_NOTE_KEYS = [Fernet.generate_key().decode()]
    assert process_note_keys() == []


def test_only_author_and_shared_colleagues_read(world: Any, client: Any) -> None:
    actor = actor_for(world.therapist, world.clinic)
    note = services.process_note_create(actor, world.patient, text=SECRET)
    url = reverse("notes:process_list", args=[world.patient.pk])
    client.force_login(world.prescriber)
    assert SECRET not in client.get(url).content.decode()
    client.force_login(world.therapist)
    assert SECRET in client.get(url).content.decode()
    client.post(
        reverse("notes:process_share", args=[world.patient.pk, note.pk]),
        {"user": world.prescriber.pk, "action": "share"},
    )
    client.force_login(world.prescriber)
    assert SECRET in client.get(url).content.decode()
    # the prescriber cannot re-share someone else's note
    r = client.post(
        reverse("notes:process_share", args=[world.patient.pk, note.pk]),
        {"user": world.nurse.pk, "action": "share"},
    )
    assert r.status_code == 404
    client.force_login(world.therapist)
    client.post(
        reverse("notes:process_share", args=[world.patient.pk, note.pk]),
        {"user": world.prescriber.pk, "action": "unshare"},
    )
    client.force_login(world.prescriber)
    assert SECRET not in client.get(url).content.decode()


def test_nurse_cannot_write_process_notes(world: Any) -> None:
    with pytest.raises(DomainError):
        services.process_note_create(actor_for(world.nurse, world.clinic), world.patient, text="x")
    assert not ProcessNote.objects.exists()


def test_process_notes_never_reach_the_portal_or_regular_notes(world: Any, client: Any) -> None:
    services.process_note_create(actor_for(world.therapist, world.clinic), world.patient, text=SECRET)
    client.force_login(world.therapist)
    assert SECRET not in client.get(reverse("notes:patient", args=[world.patient.pk])).content.decode()
    client.force_login(world.patient_user)
    assert SECRET not in client.get(reverse("portal:index")).content.decode()


# ---------------------------------------------------------------- editing and revisions

EDITED = "She later said the brother story was about her cousin"
EDITED_AGAIN = "Cousin, not brother; grief about the farm"
CONFLICT = "Someone else changed this record"


def all_text_in_database() -> str:
    """Every text-like value of every table, concatenated: plaintext must be in none of them."""
    out: list[str] = []
    with connection.cursor() as cur:
        for table in connection.introspection.table_names(cur):
            cur.execute(f'SELECT * FROM "{table}"')
            out.extend(str(v) for row in cur.fetchall() for v in row if isinstance(v, str | bytes))
    return "\n".join(out)


def edit_url(note: ProcessNote, name: str = "process_edit") -> str:
    return reverse(f"notes:{name}", args=[note.patient_id, note.pk])


def test_edits_keep_every_text_encrypted_including_revisions(world: Any, clock_frozen: Any) -> None:
    actor = actor_for(world.therapist, world.clinic)
    note = services.process_note_create(actor, world.patient, text=SECRET)
    created = note.created_at
    clock_frozen.advance(dt.timedelta(hours=2))
    note = services.process_note_edit(actor, note, expected_version=note.version, text=EDITED)
    first_edit = note.edited_at
    clock_frozen.advance(dt.timedelta(days=1))
    note = services.process_note_edit(actor, note, expected_version=note.version, text=EDITED_AGAIN)
    note.refresh_from_db()
    assert note.version == 3 and note.edited_at == clock_frozen.now() and note.created_at == created
    assert services.process_note_text(note) == EDITED_AGAIN
    revisions = list(note.revisions.all())
    assert [r.number for r in revisions] == [2, 1]
    assert [services.process_note_text(r) for r in revisions] == [EDITED, SECRET]
    assert (revisions[1].written_at, revisions[1].replaced_at) == (created, first_edit)
    assert (revisions[0].written_at, revisions[0].replaced_at) == (first_edit, note.edited_at)
    with connection.cursor() as cur:
        cur.execute("SELECT ciphertext FROM notes_processnoterevision WHERE note_id = %s", [note.pk])
        assert all(str(row[0]).startswith("gAAAA") for row in cur.fetchall())
    # the full-database scan (also audit details, timeline, everything): no text, no fragment
    stored = all_text_in_database()
    for text in (SECRET, EDITED, EDITED_AGAIN):
        assert text not in stored
    for fragment in ("brother", "cousin", "farm"):
        assert fragment not in stored.lower()


def test_author_edits_over_http_and_sees_earlier_versions(world: Any, client: Any, clock_frozen: Any) -> None:
    from kapclinic.audit.models import AuditEvent

    note = services.process_note_create(actor_for(world.therapist, world.clinic), world.patient, text=SECRET)
    client.force_login(world.therapist)
    listing = reverse("notes:process_list", args=[world.patient.pk])
    assert edit_url(note) in client.get(listing).content.decode()
    before = AuditEvent.objects.count()
    page = client.get(edit_url(note))
    assert page.status_code == 200 and SECRET in page.content.decode()
    assert AuditEvent.objects.count() == before + 1
    clock_frozen.advance(dt.timedelta(minutes=30))
    before = AuditEvent.objects.count()
    r = client.post(edit_url(note), {"text": EDITED, "version": 1})
    assert r.status_code == 302
    events = list(AuditEvent.objects.order_by("id")[before:])
    assert [(e.action, e.object_type, e.object_id, e.detail) for e in events] == [
        ("update", "notes.processnote", str(note.pk), "edited revisions=1")
    ]
    body = client.get(listing).content.decode()
    assert EDITED in body and SECRET not in body
    assert "2 Mar 2026 09:00 · edited 2 Mar 2026 09:30" in body  # clinic local time
    assert edit_url(note, "process_revisions") in body
    history = client.get(edit_url(note, "process_revisions")).content.decode()
    assert EDITED in history and SECRET in history and "Version 1 (as first written)" in history


def test_stale_or_empty_edits_change_nothing(world: Any, client: Any, clock_frozen: Any) -> None:
    note = services.process_note_create(actor_for(world.therapist, world.clinic), world.patient, text=SECRET)
    client.force_login(world.therapist)
    other = Client()
    other.force_login(world.therapist)  # the author in a second tab
    assert client.post(edit_url(note), {"text": EDITED, "version": 1}).status_code == 302
    r = other.post(edit_url(note), {"text": "older tab text", "version": 1})
    assert r.status_code == 409 and CONFLICT in r.content.decode()
    for data, message in [
        ({"text": "   ", "version": 2}, "This field is required."),
        ({"text": EDITED, "version": 2}, "Nothing changed"),
        ({"text": "x", "version": "two"}, "reload it and make your changes again"),
        ({"text": "x" * 50001, "version": 2}, "at most 50000"),
    ]:
        r = client.post(edit_url(note), data)
        assert r.status_code == 400 and message in r.content.decode(), data
    note.refresh_from_db()
    assert note.version == 2 and services.process_note_text(note) == EDITED
    assert note.revisions.count() == 1


def test_only_the_author_may_edit_or_see_revisions(world: Any, client: Any, clock_frozen: Any) -> None:
    from kapclinic.audit.models import AuditEvent

    author = actor_for(world.therapist, world.clinic)
    note = services.process_note_create(author, world.patient, text=SECRET)
    services.process_note_edit(author, note, expected_version=1, text=EDITED)
    # not shared yet: the prescriber (who may open the patient) does not learn it exists
    client.force_login(world.prescriber)
    for name in ("process_edit", "process_revisions"):
        assert client.get(edit_url(note, name)).status_code == 404
    assert client.post(edit_url(note), {"text": "x", "version": 2}).status_code == 404
    # shared: the prescriber reads it but may not change it or see earlier texts
    services.process_note_share(author, note, user=world.prescriber)
    before = AuditEvent.objects.count()
    r = client.get(edit_url(note))
    assert r.status_code == 403 and EDITED not in r.content.decode()
    assert list(AuditEvent.objects.order_by("id")[before:].values_list("action", flat=True)) == ["denied"]
    assert client.post(edit_url(note), {"text": "overwrite", "version": 2}).status_code == 403
    r = client.get(edit_url(note, "process_revisions"))
    assert r.status_code == 403 and SECRET not in r.content.decode()
    listing = client.get(reverse("notes:process_list", args=[world.patient.pk])).content.decode()
    assert EDITED in listing and edit_url(note) not in listing
    with pytest.raises(DomainError, match="Only the author"):
        services.process_note_edit(
            actor_for(world.prescriber, world.clinic), note, expected_version=2, text="overwrite"
        )
    # roles without process notes, other care teams, other patients and other clinics
    for user, status in [
        (world.nurse, 403),
        (world.front_desk, 403),
        (world.therapist_other, 403),
        (world.patient_user, 403),
        (world.other_clinic_staff, 404),
    ]:
        client.force_login(user)
        assert client.post(edit_url(note), {"text": "x", "version": 2}).status_code == status, user
    client.force_login(world.therapist)
    wrong_patient = reverse("notes:process_edit", args=[world.other_patient.pk, note.pk])
    assert client.get(wrong_patient).status_code == 403  # not on the other patient's care team
    client.force_login(world.prescriber)
    assert (
        client.get(reverse("notes:process_edit", args=[world.other_patient.pk, note.pk])).status_code == 404
    )
    note.refresh_from_db()
    assert note.version == 2 and services.process_note_text(note) == EDITED


def test_rotation_also_re_encrypts_revisions(world: Any, settings: Any) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.PROCESS_NOTE_KEYS = [old]
    actor = actor_for(world.therapist, world.clinic)
    note = services.process_note_create(actor, world.patient, text=SECRET)
    services.process_note_edit(actor, note, expected_version=1, text=EDITED)
    settings.PROCESS_NOTE_KEYS = [new, old]
    out = StringIO()
    call_command("rotate_process_note_keys", stdout=out)
    assert "2 of 2" in out.getvalue()
    settings.PROCESS_NOTE_KEYS = [new]
    note.refresh_from_db()
    assert services.process_note_text(note) == EDITED
    assert [services.process_note_text(r) for r in note.revisions.all()] == [SECRET]
