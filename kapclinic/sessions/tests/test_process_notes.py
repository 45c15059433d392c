"""The therapist's process notes of a dosing session are the notes app's encrypted psychotherapy process
notes (issue 6): encrypted at rest, readable only by their author and whoever the author shares them with,
never on the monitoring record, the REMS record, the FHIR export or the portal."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from kapclinic.audit.models import AuditEvent
from kapclinic.core import clock
from kapclinic.notes import services as note_services
from kapclinic.notes.models import ProcessNote
from kapclinic.sessions import services
from kapclinic.sessions.models import DosingSession
from kapclinic.sessions.tests.test_sessions import make_session, url
from kapclinic.testing.factories import actor_for

pytestmark = pytest.mark.django_db

SECRET = "Spoke of the lake house and her father for the first time"


def write(client: Any, world: Any, s: DosingSession, text: str = SECRET) -> ProcessNote:
    client.force_login(world.therapist)
    r = client.post(url(s, "process_note"), {"pn-text": text})
    assert r.status_code == 302
    return ProcessNote.objects.get(dosing_session=s)


def all_text_in_database() -> str:
    """Every text-like value of every table, concatenated (the plaintext must be in none of them)."""
    out: list[str] = []
    with connection.cursor() as cur:
        for table in connection.introspection.table_names(cur):
            cur.execute(f'SELECT * FROM "{table}"')
            out.extend(str(v) for row in cur.fetchall() for v in row if isinstance(v, str | bytes))
    return "\n".join(out)


def test_session_process_note_is_encrypted_and_linked(world: Any, client: Any, clock_frozen: Any) -> None:
    s = make_session(world, ready=False, phq9=False)
    note = write(client, world, s)
    assert note.patient_id == world.patient.pk and note.author_id == world.therapist.pk
    assert note.clinic_id == world.clinic.pk
    with connection.cursor() as cur:
        cur.execute("SELECT ciphertext FROM notes_processnote WHERE id = %s", [note.pk])
        stored = str(cur.fetchone()[0])
    assert stored.startswith("gAAAA") and "lake house" not in stored
    assert note_services.process_note_text(note) == SECRET
    assert SECRET not in all_text_in_database()
    assert "lake" not in all_text_in_database()
    assert "kap_sessions_processnote" not in connection.introspection.table_names()
    created = AuditEvent.objects.filter(action="create", object_type="notes.processnote")
    assert created.count() == 1


def test_only_the_author_and_shared_colleagues_see_it_on_the_session_page(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    s = make_session(world, ready=False, phq9=False)
    note = write(client, world, s)
    page = client.get(url(s, "detail")).content.decode()
    assert "lake house" in page  # the author
    for reader in (world.nurse, world.prescriber):
        client.force_login(reader)
        page = client.get(url(s, "detail")).content.decode()
        assert "lake house" not in page
    client.force_login(world.therapist_other)
    assert client.get(url(s, "detail")).status_code == 403
    # The author shares it with the prescriber: now the prescriber reads it, the nurse still does not.
    note_services.process_note_share(actor_for(world.therapist, world.clinic), note, user=world.prescriber)
    client.force_login(world.prescriber)
    page = client.get(url(s, "detail")).content.decode()
    assert "lake house" in page and "(shared with you)" in page
    client.force_login(world.nurse)
    assert "lake house" not in client.get(url(s, "detail")).content.decode()


def test_a_prescribers_own_session_note_is_not_shown_to_the_therapist(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    s = make_session(world, ready=False, phq9=False)
    client.force_login(world.prescriber)
    assert client.post(url(s, "process_note"), {"pn-text": "Prescriber private thought"}).status_code == 302
    client.force_login(world.therapist)
    assert "Prescriber private thought" not in client.get(url(s, "detail")).content.decode()


def test_nurse_cannot_write_one_and_nothing_is_stored(world: Any, client: Any, clock_frozen: Any) -> None:
    s = make_session(world, ready=False, phq9=False)
    client.force_login(world.nurse)
    r = client.post(url(s, "process_note"), {"pn-text": SECRET})
    assert r.status_code == 400
    assert "written by therapists and prescribers" in r.content.decode()
    assert not ProcessNote.objects.exists()


def test_empty_note_is_refused_with_a_sentence(world: Any, client: Any, clock_frozen: Any) -> None:
    s = make_session(world, ready=False, phq9=False)
    client.force_login(world.therapist)
    r = client.post(url(s, "process_note"), {"pn-text": "   "})
    assert r.status_code == 400
    assert not ProcessNote.objects.exists()


def test_never_in_the_monitoring_record_rems_view_export_or_portal(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    s = make_session(world, ready=False, phq9=False)
    write(client, world, s)
    DosingSession.objects.filter(pk=s.pk).update(
        state="discharged",
        first_dose_at=clock.now() - dt.timedelta(minutes=130),
        discharged_at=clock.now(),
        discharged_by=world.nurse,
    )
    from kapclinic.sessions.selectors import monitoring_timeline

    s.refresh_from_db()
    assert all("lake" not in row.text for row in monitoring_timeline(s))
    # Even the author does not find it on the REMS record or in the FHIR export.
    client.force_login(world.therapist)
    rems = client.get(url(s, "rems"))
    assert rems.status_code == 200 and "lake" not in rems.content.decode()
    detail = client.get(url(s, "detail")).content.decode()
    monitoring_record = detail.split('id="sum-h"', 1)[1].split('id="pn-h"', 1)[0]
    assert "Monitoring record" in monitoring_record and "lake" not in monitoring_record
    client.force_login(world.prescriber)
    bundle = client.get(reverse("interop:patient_bundle", kwargs={"patient_id": world.patient.pk}))
    assert bundle.status_code == 200 and "lake" not in bundle.content.decode()
    client.force_login(world.patient_user)
    for name in ("portal:index",):
        assert "lake" not in client.get(reverse(name)).content.decode()


def test_key_rotation_covers_session_process_notes(world: Any, settings: Any, clock_frozen: Any) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.PROCESS_NOTE_KEYS = [old]
    s = make_session(world, ready=False, phq9=False)
    note = services.process_note_add(actor_for(world.therapist, world.clinic), s, text=SECRET)
    before = note.ciphertext
    settings.PROCESS_NOTE_KEYS = [new, old]
    call_command("rotate_process_note_keys")
    settings.PROCESS_NOTE_KEYS = [new]  # the old key is gone
    note.refresh_from_db()
    assert note.ciphertext != before and note.dosing_session_id == s.pk
    assert note_services.process_note_text(note) == SECRET


def test_session_page_reads_process_notes_in_constant_queries(
    world: Any, client: Any, clock_frozen: Any, django_assert_max_num_queries: Any
) -> None:
    s = make_session(world, ready=False, phq9=False)
    actor = actor_for(world.therapist, world.clinic)
    services.process_note_add(actor, s, text="one")
    client.force_login(world.therapist)
    with django_assert_max_num_queries(60) as one:
        client.get(url(s, "detail"))
    for i in range(5):
        note = services.process_note_add(actor, s, text=f"more {i}")
        note_services.process_note_share(actor, note, user=world.prescriber)
    with django_assert_max_num_queries(len(one.captured_queries)):
        assert client.get(url(s, "detail")).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_migration_moves_plaintext_rows_into_encrypted_notes(world: Any) -> None:
    """0004 encrypts every plaintext row into a notes.ProcessNote linked to its session; 0005 drops the
    plaintext table."""
    from django.db.migrations.executor import MigrationExecutor

    before = [("kap_sessions", "0003_clinic_setting_change"), ("notes", "0001_initial")]
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        Session = old.get_model("kap_sessions", "DosingSession")
        Plain = old.get_model("kap_sessions", "ProcessNote")
        at = dt.datetime(2026, 2, 20, 10, 30, tzinfo=dt.UTC)
        session = Session.objects.create(
            clinic_id=world.clinic.pk, patient_id=world.patient.pk, protocol_id="esketamine-in-trd",
            protocol_version="1.0.0", scheduled_for=at, created_by_id=world.prescriber.pk,
        )  # fmt: skip
        for i, author in enumerate((world.therapist, world.prescriber)):
            Plain.objects.create(
                session_id=session.pk,
                text=f"{SECRET} #{i}",
                author_id=author.pk,
                at=at + dt.timedelta(minutes=i),
            )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(leaves)
    moved = list(ProcessNote.objects.order_by("created_at"))
    assert [n.author_id for n in moved] == [world.therapist.pk, world.prescriber.pk]
    assert all(n.dosing_session_id == session.pk and n.patient_id == world.patient.pk for n in moved)
    assert [note_services.process_note_text(n) for n in moved] == [f"{SECRET} #0", f"{SECRET} #1"]
    assert moved[0].created_at == at
    assert not any(n.shares.exists() for n in moved)  # only the author reads a moved note
    assert "lake house" not in all_text_in_database()
    assert "kap_sessions_processnote" not in connection.introspection.table_names()
