"""Audit events gain a namespaced action (`name`) and structured `data` (old and new values of changed
fields). Rows written before keep both empty and so keep their hash (AuditEvent.payload)."""

import importlib

from django.db import migrations, models

# The same triggers as 0002, put back the way 0003 does.
reinstall_sqlite_triggers = importlib.import_module(
    "kapclinic.audit.migrations.0003_audit_event_key_id"
).reinstall_sqlite_triggers


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0003_audit_event_key_id'),
    ]

    operations = [
        migrations.AddField(
            model_name='auditevent',
            name='data',
            field=models.JSONField(blank=True, default=dict, help_text='Codes, counts and the old and new values of changed fields; never note text or secrets.'),
        ),
        migrations.AddField(
            model_name='auditevent',
            name='name',
            field=models.CharField(blank=True, help_text='Namespaced action, e.g. session.transition or patient.update.', max_length=80),
        ),
        # SQLite adds the columns by rebuilding the table, which drops the append-only triggers.
        migrations.RunPython(reinstall_sqlite_triggers, migrations.RunPython.noop),
    ]
