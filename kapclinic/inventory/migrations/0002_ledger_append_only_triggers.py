"""Database-level guard: no client, not even a raw SQL session of the app's role, can UPDATE or DELETE
a controlled-substance ledger line (corrections are reversing lines). An operator with DDL rights can
still drop the trigger; `manage.py controlled_substances verify` then finds the arithmetic that no
longer adds up. Skipped where AUDIT_DB_TRIGGERS is off (tests flush tables between browser tests)."""

from django.conf import settings
from django.db import migrations

TABLE = "inventory_ledgerentry"

SQLITE_UP = [
    f"CREATE TRIGGER ledger_entry_no_update BEFORE UPDATE ON {TABLE} "
    "BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;",
    f"CREATE TRIGGER ledger_entry_no_delete BEFORE DELETE ON {TABLE} "
    "BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;",
]
SQLITE_DOWN = ["DROP TRIGGER IF EXISTS ledger_entry_no_update;", "DROP TRIGGER IF EXISTS ledger_entry_no_delete;"]

PG_UP = [
    """CREATE OR REPLACE FUNCTION ledger_entry_append_only() RETURNS trigger AS $$
    BEGIN RAISE EXCEPTION 'ledger entries are append-only'; END; $$ LANGUAGE plpgsql;""",
    f"CREATE TRIGGER ledger_entry_no_change BEFORE UPDATE OR DELETE ON {TABLE} "
    "FOR EACH ROW EXECUTE FUNCTION ledger_entry_append_only();",
    f"CREATE TRIGGER ledger_entry_no_truncate BEFORE TRUNCATE ON {TABLE} "
    "FOR EACH STATEMENT EXECUTE FUNCTION ledger_entry_append_only();",
]
PG_DOWN = [
    f"DROP TRIGGER IF EXISTS ledger_entry_no_change ON {TABLE};",
    f"DROP TRIGGER IF EXISTS ledger_entry_no_truncate ON {TABLE};",
    "DROP FUNCTION IF EXISTS ledger_entry_append_only();",
]


def _run(statements_by_vendor):
    def apply(apps, schema_editor):
        if not getattr(settings, "AUDIT_DB_TRIGGERS", True):
            return
        for sql in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql)

    return apply


class Migration(migrations.Migration):
    dependencies = [("inventory", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE_UP, "postgresql": PG_UP}),
            _run({"sqlite": SQLITE_DOWN, "postgresql": PG_DOWN}),
        )
    ]
