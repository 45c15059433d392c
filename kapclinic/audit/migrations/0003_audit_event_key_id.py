"""Audit events name the AUDIT_CHAIN_KEY entry that keys their hash (HMAC-SHA256). Rows written before
this migration keep an empty key_id: they are "legacy" events with a plain SHA-256, verified as the start
of their chain (see kapclinic/audit/services.py, verify_chains, and README "Audit trail")."""

from django.conf import settings
from django.db import migrations, models

# SQLite adds the column by rebuilding the table, which drops the append-only triggers of 0002 with the
# old table: put them back.
SQLITE_TRIGGERS = [
    "CREATE TRIGGER IF NOT EXISTS audit_event_no_update BEFORE UPDATE ON audit_auditevent "
    "BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;",
    "CREATE TRIGGER IF NOT EXISTS audit_event_no_delete BEFORE DELETE ON audit_auditevent "
    "BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;",
]


def reinstall_sqlite_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite" or not getattr(settings, "AUDIT_DB_TRIGGERS", True):
        return
    for sql in SQLITE_TRIGGERS:
        schema_editor.execute(sql)


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0002_append_only_triggers'),
    ]

    operations = [
        migrations.AddField(
            model_name='auditevent',
            name='key_id',
            field=models.CharField(blank=True, help_text='AUDIT_CHAIN_KEY entry id; empty = legacy (unkeyed SHA-256).', max_length=16),
        ),
        migrations.RunPython(reinstall_sqlite_triggers, migrations.RunPython.noop),
    ]
