from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

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
    note = services.process_note_create(actor_for(world.therapist, world.clinic), world.patient, SECRET)
    stored = raw_column(note.pk)
    assert SECRET not in stored and "brother" not in stored
    assert stored.startswith("gAAAA")  # a Fernet token
    assert services.process_note_text(note) == SECRET


def test_rotation_keeps_every_note_readable(world: Any, settings: Any) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.PROCESS_NOTE_KEYS = [old]
    actor = actor_for(world.therapist, world.clinic)
    notes = [services.process_note_create(actor, world.patient, f"{SECRET} #{i}") for i in range(5)]
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
    note = services.process_note_create(actor_for(world.therapist, world.clinic), world.patient, SECRET)
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
    note = services.process_note_create(actor, world.patient, SECRET)
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
    with pytest.raises(services.NoteError):
        services.process_note_create(actor_for(world.nurse, world.clinic), world.patient, "x")
    assert not ProcessNote.objects.exists()


def test_process_notes_never_reach_the_portal_or_regular_notes(world: Any, client: Any) -> None:
    services.process_note_create(actor_for(world.therapist, world.clinic), world.patient, SECRET)
    client.force_login(world.therapist)
    assert SECRET not in client.get(reverse("notes:patient", args=[world.patient.pk])).content.decode()
    client.force_login(world.patient_user)
    assert SECRET not in client.get(reverse("portal:index")).content.decode()
