"""PostgreSQL only: pattern-ops indexes so `LIKE 'smi%'` on the lower-cased names uses an index
whatever the database collation. SQLite searches by range on the plain indexes instead."""

from django.db import migrations

COLUMNS = ("search_last", "search_first", "search_preferred")


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in COLUMNS:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS patient_{column}_like "
            f"ON patients_patient (clinic_id, {column} varchar_pattern_ops)"
        )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in COLUMNS:
        schema_editor.execute(f"DROP INDEX IF EXISTS patient_{column}_like")


class Migration(migrations.Migration):
    dependencies = [("patients", "0002_patient_search")]

    operations = [migrations.RunPython(forwards, backwards)]
