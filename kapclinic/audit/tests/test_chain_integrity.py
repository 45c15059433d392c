"""Issue 12: an audit trail that cannot be quietly rewritten.

The finding, retried as the probe did it: with the append-only triggers bypassed (PostgreSQL:
session_replication_role=replica as a superuser; SQLite: the trigger dropped), an attacker who can write to
the database but does not hold AUDIT_CHAIN_KEY edits an event and recomputes every later hash and the chain
head; deletes the newest events and fixes the head; deletes a whole clinic's chain. Before the fix the first
one verified "intact" and the other two cannot be seen without checkpoints published outside the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import urllib.request
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from kapclinic.audit import checks, keys
from kapclinic.audit.models import GENESIS, AuditChainHead, AuditEvent
from kapclinic.audit.services import record_event, verify_chains
from kapclinic.testing.factories import actor_for

KEY0 = "k0:" + "0" * 40
KEY1 = "k1:" + "1" * 40
TRIGGERS = import_module("kapclinic.audit.migrations.0002_append_only_triggers")


@contextlib.contextmanager
def triggers_bypassed() -> Iterator[None]:
    """Install the append-only triggers, show they refuse a raw UPDATE, then bypass them as the probe did."""
    vendor = connection.vendor
    up = {"sqlite": TRIGGERS.SQLITE_UP, "postgresql": TRIGGERS.PG_UP}[vendor]
    down = {"sqlite": TRIGGERS.SQLITE_DOWN, "postgresql": TRIGGERS.PG_DOWN}[vendor]
    with connection.cursor() as cursor:
        for statement in up:
            cursor.execute(statement)
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET detail = 'x'")
    with connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        else:
            cursor.execute("DROP TRIGGER audit_event_no_update")
            cursor.execute("DROP TRIGGER audit_event_no_delete")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if vendor == "postgresql":
                cursor.execute("SET session_replication_role = DEFAULT")
            for statement in down:
                cursor.execute(statement)


def _sql(sql: str, params: list[Any]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def sha256_forgery(event: AuditEvent) -> str:
    return hashlib.sha256(event.payload().encode()).hexdigest()


def rewrite_from(
    event_pk: int, forge: Any = sha256_forgery, *, key_id: str | None = None, upto: int | None = None
) -> None:
    """Change one event's detail and recompute its hash, every later hash of its chain (up to `upto`)
    and the head."""
    first = AuditEvent.objects.get(pk=event_pk)
    prev = first.prev_hash
    rewritten = AuditEvent.objects.filter(chain=first.chain, seq__gte=first.seq)
    if upto is not None:
        rewritten = rewritten.filter(seq__lte=upto)
    for event in rewritten.order_by("seq"):
        if event.pk == event_pk:
            event.detail = "forged"
        if key_id is not None:
            event.key_id = key_id
        event.prev_hash = prev
        new_hash = forge(event)
        _sql(
            "UPDATE audit_auditevent SET detail = %s, prev_hash = %s, hash = %s, key_id = %s WHERE id = %s",
            [event.detail, prev, new_hash, event.key_id, event.pk],
        )
        prev = new_hash
    if upto is None:
        _sql("UPDATE audit_auditchainhead SET hash = %s WHERE chain = %s", [prev, first.chain])


def _events(world: Any, n: int, *, other: bool = False) -> list[AuditEvent]:
    if other:
        actor, patient = actor_for(world.other_clinic_staff, world.other_clinic), world.other_clinic_patient
    else:
        actor, patient = actor_for(world.prescriber, world.clinic), world.patient
    return [record_event(actor, "view", patient=patient, detail=f"i={i}") for i in range(n)]


def _checkpoint_file(tmp_path: Path, settings: Any) -> Path:
    path = tmp_path / "checkpoints.jsonl"
    settings.AUDIT_CHECKPOINT_FILE = str(path)
    settings.AUDIT_CHECKPOINT_EMAIL = []
    settings.AUDIT_CHECKPOINT_WEBHOOK = ""
    call_command("audit_checkpoint")
    return path


def _verify_fails(capsys: Any, *args: str) -> str:
    with pytest.raises(CommandError) as excinfo:
        call_command("audit_verify", *args)
    assert excinfo.value.returncode == 1
    return str(capsys.readouterr().err)


# --- the chain is keyed -------------------------------------------------------------------------------


def test_events_are_keyed_with_the_first_key(world: Any, settings: Any) -> None:
    settings.AUDIT_CHAIN_KEY = [KEY1, KEY0]
    event = _events(world, 1)[0]
    assert event.key_id == "k1"
    assert event.hash != sha256_forgery(event)
    assert event.hash == keys.mac(b"1" * 40, event.payload())


@pytest.mark.parametrize("as_legacy", [False, True], ids=["keeping-key-id", "as-legacy"])
def test_rewrite_with_recomputed_sha256_hashes_is_found(
    world: Any, settings: Any, capsys: Any, as_legacy: bool
) -> None:
    settings.AUDIT_CHAIN_KEY = [KEY0]
    events = _events(world, 5)
    with triggers_bypassed():
        rewrite_from(events[2].pk, key_id="" if as_legacy else None)
    err = _verify_fails(capsys)
    assert f"Chain {world.clinic.pk}: event #{events[2].seq} (id {events[2].pk})" in err
    assert ("carries no key id" if as_legacy else "was altered after it was written") in err


def test_rewriting_a_whole_chain_as_legacy_is_found(world: Any, settings: Any, capsys: Any) -> None:
    events = _events(world, 3)
    with triggers_bypassed():
        rewrite_from(events[0].pk, key_id="")
    err = _verify_fails(capsys)
    assert "are all legacy (unkeyed) and no keyed event seals them" in err


def test_rewrite_with_a_guessed_key_is_found(world: Any, settings: Any, capsys: Any) -> None:
    """The development key is derived from SECRET_KEY: a production key is not, so guessing it fails."""
    settings.AUDIT_CHAIN_KEY = [KEY0]
    events = _events(world, 4)
    dev_secret = keys.derived_dev_key(settings.SECRET_KEY)
    with triggers_bypassed():
        rewrite_from(events[1].pk, lambda e: keys.mac(dev_secret, e.payload()))
    assert "was altered after it was written" in _verify_fails(capsys)


def test_an_untouched_chain_verifies_with_its_checkpoints(
    world: Any, settings: Any, tmp_path: Path, capsys: Any
) -> None:
    _events(world, 3)
    _events(world, 2, other=True)
    path = _checkpoint_file(tmp_path, settings)
    _events(world, 2)  # events after the checkpoint are fine
    call_command("audit_checkpoint")
    capsys.readouterr()
    call_command("audit_verify", "--checkpoints", str(path))
    out = capsys.readouterr().out
    assert "Audit trail intact: 7 events verified; 4 checkpoint(s) matched." in out


def test_verify_warns_when_checkpoints_stopped_coming(
    world: Any, settings: Any, tmp_path: Path, capsys: Any, clock_frozen: Any
) -> None:
    from datetime import timedelta

    from kapclinic.core import clock

    _events(world, 1)
    path = _checkpoint_file(tmp_path, settings)
    settings.AUDIT_CHECKPOINT_MINUTES = 60
    clock.advance(timedelta(minutes=119))
    capsys.readouterr()
    call_command("audit_verify", "--checkpoints", str(path))
    assert "Warning" not in capsys.readouterr().err
    clock.advance(timedelta(minutes=2))
    call_command("audit_verify", "--checkpoints", str(path))  # a warning, not a failure
    captured = capsys.readouterr()
    assert "intact" in captured.out
    assert "Warning: the newest checkpoint is from 2026-03-02T14:00:00+00:00" in captured.err


# --- what only checkpoints can show --------------------------------------------------------------------


def test_removed_newest_events_with_a_fixed_head_are_found_by_checkpoints(
    world: Any, settings: Any, tmp_path: Path, capsys: Any
) -> None:
    events = _events(world, 5)
    path = _checkpoint_file(tmp_path, settings)
    with triggers_bypassed():
        _sql("DELETE FROM audit_auditevent WHERE id IN (%s, %s)", [events[3].pk, events[4].pk])
        _sql(
            "UPDATE audit_auditchainhead SET seq = %s, hash = %s WHERE chain = %s",
            [events[2].seq, events[2].hash, world.clinic.pk],
        )
    assert verify_chains() == []  # the chain alone cannot tell
    err = _verify_fails(capsys, "--checkpoints", str(path))
    assert f"Chain {world.clinic.pk}: event #{events[4].seq}, recorded by the checkpoint of" in err
    assert "is missing: events were removed" in err


def test_a_removed_clinic_chain_is_found_by_checkpoints(
    world: Any, settings: Any, tmp_path: Path, capsys: Any
) -> None:
    _events(world, 2)
    gone = _events(world, 3, other=True)
    path = _checkpoint_file(tmp_path, settings)
    with triggers_bypassed():
        _sql("DELETE FROM audit_auditevent WHERE chain = %s", [world.other_clinic.pk])
        _sql("DELETE FROM audit_auditchainhead WHERE chain = %s", [world.other_clinic.pk])
    assert verify_chains() == []
    err = _verify_fails(capsys, "--checkpoints", str(path))
    assert f"Chain {world.other_clinic.pk} has no events left" in err
    assert f"recorded event #{gone[-1].seq}: the whole chain was removed" in err
    assert f"Chain {world.clinic.pk}" not in err


def test_an_event_rewritten_with_the_key_is_found_by_checkpoints(
    world: Any, settings: Any, tmp_path: Path, capsys: Any
) -> None:
    """Even a thief of the key cannot change what a published checkpoint recorded."""
    events = _events(world, 3)
    path = _checkpoint_file(tmp_path, settings)
    with triggers_bypassed():
        rewrite_from(events[0].pk, lambda e: e.compute_hash())
    assert verify_chains() == []
    err = _verify_fails(capsys, "--checkpoints", str(path))
    assert f"event #{events[-1].seq} does not match the checkpoint of" in err


def test_edited_or_broken_checkpoint_lines_are_named(
    world: Any, settings: Any, tmp_path: Path, capsys: Any
) -> None:
    _events(world, 2)
    path = _checkpoint_file(tmp_path, settings)
    good = json.loads(path.read_text().splitlines()[0])
    path.write_text(
        json.dumps({**good, "seq": 1}) + "\n" + "not json\n" + json.dumps({**good, "kid": "zz"}) + "\n"
    )
    err = _verify_fails(capsys, "--checkpoints", str(path))
    assert f"Line 1 of {path} has a signature that does not match" in err
    assert f"Line 2 of {path} is not an audit checkpoint." in err
    assert f"Line 3 of {path} is signed with key id 'zz', which is not in AUDIT_CHAIN_KEY" in err
    path.write_text("")
    assert "holds no checkpoints" in _verify_fails(capsys, "--checkpoints", str(path))
    with pytest.raises(CommandError, match="could not be read"):
        call_command("audit_verify", "--checkpoints", str(tmp_path / "missing.jsonl"))


# --- rotation and legacy events ------------------------------------------------------------------------


def test_rotation_keeps_old_events_and_checkpoints_verifiable(
    world: Any, settings: Any, tmp_path: Path, capsys: Any
) -> None:
    settings.AUDIT_CHAIN_KEY = [KEY0]
    old = _events(world, 2)
    path = _checkpoint_file(tmp_path, settings)
    settings.AUDIT_CHAIN_KEY = [KEY1, KEY0]
    new = _events(world, 2)
    assert [e.key_id for e in old + new] == ["k0", "k0", "k1", "k1"]
    capsys.readouterr()
    call_command("audit_verify", "--checkpoints", str(path))
    assert "intact" in capsys.readouterr().out
    settings.AUDIT_CHAIN_KEY = [KEY1]  # the old key was dropped: its events can no longer be proved
    err = _verify_fails(capsys, "--checkpoints", str(path))
    assert f"event #{old[0].seq} (id {old[0].pk}) was keyed with key id 'k0', which is not in" in err
    assert "signed with key id 'k0'" in err


def _make_legacy(chain: int) -> None:
    """Turn a chain into what the upgrade finds: unkeyed events with plain SHA-256 hashes."""
    prev = GENESIS
    for event in AuditEvent.objects.filter(chain=chain).order_by("seq"):
        event.key_id = ""
        event.prev_hash = prev
        prev = sha256_forgery(event)
        _sql(
            "UPDATE audit_auditevent SET key_id = '', prev_hash = %s, hash = %s WHERE id = %s",
            [event.prev_hash, prev, event.pk],
        )
    _sql("UPDATE audit_auditchainhead SET hash = %s WHERE chain = %s", [prev, chain])


def test_legacy_events_verify_once_sealed_and_stay_protected(world: Any, capsys: Any) -> None:
    events = _events(world, 3)
    _make_legacy(world.clinic.pk)
    assert "no keyed event seals them" in _verify_fails(capsys)
    call_command("audit_seal")
    assert f"Sealed 1 chain(s): {world.clinic.pk}." in capsys.readouterr().out
    seal = AuditEvent.objects.get(chain=world.clinic.pk, seq=4)
    assert (seal.action, seal.detail, seal.key_id) == ("admin", "audit.seal", "dev")
    call_command("audit_verify")
    call_command("audit_seal")
    assert "nothing to seal" in capsys.readouterr().out
    # a legacy event rewritten with its SHA-256 chain recomputed no longer links to the keyed seal
    rewrite_from(events[0].pk, key_id="", upto=events[-1].seq)
    assert f"event #{seal.seq} (id {seal.pk}) does not link" in _verify_fails(capsys)


def test_audit_seal_refuses_a_trail_with_other_problems(world: Any, capsys: Any) -> None:
    events = _events(world, 3)
    _make_legacy(world.clinic.pk)
    _sql("DELETE FROM audit_auditevent WHERE id = %s", [events[1].pk])
    with pytest.raises(CommandError, match="nothing was sealed"):
        call_command("audit_seal")
    assert AuditEvent.objects.filter(detail="audit.seal").count() == 0


# --- configuration ------------------------------------------------------------------------------------


def test_production_needs_the_key(world: Any, settings: Any) -> None:
    settings.IS_PRODUCTION = True
    settings.AUDIT_CHAIN_KEY = []
    assert [e.id for e in checks.audit_chain_key()] == ["audit.E001"]
    with pytest.raises(ImproperlyConfigured, match="AUDIT_CHAIN_KEY must be set in production"):
        _events(world, 1)
    settings.AUDIT_CHAIN_KEY = ["k1:short", "no-id-here", KEY0, KEY0]
    messages = [(e.id, e.msg) for e in checks.audit_chain_key()]
    assert [m[0] for m in messages] == ["audit.E002"] * 3
    assert "'k1' in AUDIT_CHAIN_KEY is 5 characters long" in messages[0][1]
    assert "Entry number 2 of AUDIT_CHAIN_KEY is not `id:secret`" in messages[1][1]
    assert "'k0' appears twice" in messages[2][1]
    settings.AUDIT_CHAIN_KEY = [KEY0]
    assert checks.audit_chain_key() == []


def test_development_falls_back_to_a_key_derived_from_secret_key(settings: Any) -> None:
    settings.IS_PRODUCTION = False
    settings.AUDIT_CHAIN_KEY = []
    assert keys.signing_key() == ("dev", keys.derived_dev_key(settings.SECRET_KEY))
    assert checks.audit_chain_key() == []


def test_checkpoint_destination_warning(settings: Any) -> None:
    settings.AUDIT_CHECKPOINT_EMAIL = []
    settings.AUDIT_CHECKPOINT_WEBHOOK = ""
    assert [w.id for w in checks.audit_checkpoint_destination()] == ["audit.W004"]
    settings.AUDIT_CHECKPOINT_EMAIL = ["audit@clinic.example.org"]
    assert checks.audit_checkpoint_destination() == []


# --- publishing checkpoints ---------------------------------------------------------------------------


class _Response:
    status = 204

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *args: Any) -> None:
        return None


def test_checkpoints_go_to_the_file_the_email_and_the_webhook(
    world: Any, settings: Any, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    events = _events(world, 2)
    path = tmp_path / "cp.jsonl"
    settings.AUDIT_CHECKPOINT_FILE = str(path)
    settings.AUDIT_CHECKPOINT_EMAIL = ["audit@clinic.example.org"]
    settings.AUDIT_CHECKPOINT_WEBHOOK = "https://hooks.example.org/audit"
    posted: list[Any] = []

    def fake_urlopen(request: Any, timeout: float) -> _Response:
        posted.append(request)
        return _Response()

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    call_command("audit_checkpoint")
    call_command("audit_checkpoint")
    assert "1 chain checkpoint(s) published to file" in capsys.readouterr().out
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 2  # appended, not overwritten
    assert {(c["chain"], c["seq"], c["head"], c["kid"]) for c in lines} == {
        (world.clinic.pk, events[-1].seq, events[-1].hash, "dev")
    }
    assert len(mail.outbox) == 2 and mail.outbox[0].to == ["audit@clinic.example.org"]
    assert json.dumps(lines[0], separators=(",", ":")) in mail.outbox[0].body
    assert posted[0].full_url == "https://hooks.example.org/audit" and posted[0].get_method() == "POST"
    assert json.loads(posted[0].data)["checkpoints"][0]["head"] == events[-1].hash


def test_a_failed_destination_fails_the_command_but_keeps_the_others(
    world: Any, settings: Any, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    _events(world, 1)
    path = tmp_path / "cp.jsonl"
    settings.AUDIT_CHECKPOINT_FILE = str(path)
    settings.AUDIT_CHECKPOINT_EMAIL = []
    settings.AUDIT_CHECKPOINT_WEBHOOK = "https://hooks.example.org/audit"

    def refuse(request: Any, timeout: float) -> Any:
        raise OSError("connection refused")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(CommandError, match="Some checkpoint destinations failed") as excinfo:
        call_command("audit_checkpoint")
    assert excinfo.value.returncode == 1
    assert "The checkpoint webhook could not be reached: connection refused." in capsys.readouterr().err
    assert len(path.read_text().splitlines()) == 1
    settings.AUDIT_CHECKPOINT_FILE = ""
    settings.AUDIT_CHECKPOINT_WEBHOOK = ""
    with pytest.raises(CommandError, match="No checkpoint destination is configured"):
        call_command("audit_checkpoint")


def test_every_publishes_at_the_configured_interval(
    world: Any, settings: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    _events(world, 1)
    path = tmp_path / "cp.jsonl"
    settings.AUDIT_CHECKPOINT_FILE = str(path)
    settings.AUDIT_CHECKPOINT_MINUTES = 15
    slept: list[float] = []

    class Stop(Exception):
        pass

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:
            raise Stop

    monkeypatch.setattr("kapclinic.audit.management.commands.audit_checkpoint.time.sleep", sleep)
    with pytest.raises(Stop):
        call_command("audit_checkpoint", "--every")
    assert slept == [900, 900]
    assert len(path.read_text().splitlines()) == 2


# --- the database role --------------------------------------------------------------------------------


def test_role_check_is_silent_on_sqlite_or_an_unreachable_database(monkeypatch: Any, db: Any) -> None:
    from django.db import OperationalError

    if connection.vendor == "sqlite":
        assert checks.role_warnings() == []

    class Unreachable:
        vendor = "postgresql"

        def cursor(self) -> Any:
            raise OperationalError("could not connect to server")

    monkeypatch.setattr(checks, "connection", Unreachable())
    assert checks.audit_database_role() == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL roles")
def test_postgres_role_warnings_and_the_least_privilege_role(world: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, current_database()")
        owner, database = cursor.fetchone()
    assert "audit.W001" in [w.id for w in checks.role_warnings()]  # the test runs as a superuser
    app_role = f"kap_app_{database}"[:60]
    # The README's least-privilege setup (the test user owns the tables, like the migration role does).
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {app_role} NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS")
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {app_role}")
        cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app_role}")
        cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app_role}")
        cursor.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_auditevent FROM {app_role}")
        for statement in TRIGGERS.PG_UP:
            cursor.execute(statement)
        cursor.execute(f"SET ROLE {app_role}")
    try:
        assert checks.role_warnings() == []
        record_event(actor_for(world.prescriber, world.clinic), "view", patient=world.patient)
        for sql in (
            "SET session_replication_role = replica",
            "ALTER TABLE audit_auditevent DISABLE TRIGGER ALL",
            "UPDATE audit_auditevent SET detail = 'x'",
            "DELETE FROM audit_auditevent",
            "TRUNCATE audit_auditevent",
        ):
            with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql)
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
            cursor.execute(f"GRANT UPDATE ON audit_auditevent TO {app_role}")
            cursor.execute(f"SET ROLE {app_role}")
        assert [w.id for w in checks.role_warnings()] == ["audit.W003"]
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
            cursor.execute(f"GRANT {owner} TO {app_role}")
            cursor.execute(f"SET ROLE {app_role}")
        assert "audit.W002" in [w.id for w in checks.role_warnings()]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
    assert AuditChainHead.objects.get(chain=world.clinic.pk).seq == 1


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite rebuilds the table to add a column")
def test_migration_0003_puts_back_the_sqlite_triggers_its_table_rebuild_drops(
    world: Any, settings: Any
) -> None:
    migration = import_module("kapclinic.audit.migrations.0003_audit_event_key_id")
    settings.AUDIT_DB_TRIGGERS = True
    event = _events(world, 1)[0]

    class Editor:
        def execute(self, sql: str) -> None:
            with connection.cursor() as cursor:
                cursor.execute(sql)

    Editor.connection = connection  # type: ignore[attr-defined]
    migration.reinstall_sqlite_triggers(None, Editor())
    migration.reinstall_sqlite_triggers(None, Editor())  # IF NOT EXISTS: safe to run twice
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_auditevent'"
        )
        assert {r[0] for r in cursor.fetchall()} == {"audit_event_no_update", "audit_event_no_delete"}
    for sql in (
        "UPDATE audit_auditevent SET detail = 'x' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [event.pk])
    with connection.cursor() as cursor:
        for statement in TRIGGERS.SQLITE_DOWN:
            cursor.execute(statement)
