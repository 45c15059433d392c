"""PostgreSQL only: the database itself refuses two overlapping active appointments for the same
patient, the same clinician (in a clinic) or the same room/chair, whatever code path writes them.

The booking service checks the same rule first (scheduling.rules.conflicts, with the patient, staff and
resource rows locked) and answers with a sentence; these exclusion constraints are the backstop, and the
service turns their violation into the same sentence (scheduling.services.OVERLAP_CONSTRAINTS).

Active = ``scheduling.models.ACTIVE_STATUSES`` (booked, completed); cancelled and did-not-attend
appointments free the slot. Times are half-open ``[start, end)``: back-to-back appointments are allowed,
as in ``rules.overlaps``.

SQLite has no exclusion constraints: there the operations do nothing and the service check (SQLite
serialises writers) is the rule. The constraints live only in this migration, not in the model's Meta,
so ``makemigrations`` sees no difference between the engines.
"""

from django.contrib.postgres.operations import BtreeGistExtension
from django.db import migrations

TABLE = "scheduling_appointment"
ACTIVE = "status IN ('booked', 'completed')"
CONSTRAINTS = {
    "appt_no_patient_overlap": "patient_id WITH =",
    "appt_no_staff_overlap": "clinic_id WITH =, staff_id WITH =",
    "appt_no_resource_overlap": "resource_id WITH =",
}


OVERLAPS = {
    "patient": "a.patient_id = b.patient_id",
    "clinician": "a.clinic_id = b.clinic_id AND a.staff_id = b.staff_id",
    "room or chair": "a.resource_id = b.resource_id",
}


def _existing_overlaps(schema_editor):
    """Pairs of active appointments that already overlap (ids only), per kind of clash."""
    found = {}
    with schema_editor.connection.cursor() as cur:
        for what, same in OVERLAPS.items():
            cur.execute(
                f"SELECT a.id, b.id FROM {TABLE} a JOIN {TABLE} b ON a.id < b.id AND {same} "  # noqa: S608
                "AND a.starts_at < b.ends_at AND b.starts_at < a.ends_at "
                "WHERE a.status IN ('booked', 'completed') AND b.status IN ('booked', 'completed') "
                "ORDER BY a.id, b.id LIMIT 20"
            )
            pairs = cur.fetchall()
            if pairs:
                found[what] = pairs
    return found


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    clashes = _existing_overlaps(schema_editor)
    if clashes:
        listed = "; ".join(
            f"same {what}: " + ", ".join(f"{a} and {b}" for a, b in pairs) for what, pairs in clashes.items()
        )
        raise RuntimeError(
            "Cannot add the no-double-booking constraints: these active appointments already overlap "
            f"(appointment ids, at most 20 pairs each): {listed}. Cancel or move one of each pair, or mark "
            "it did-not-attend, then run migrate again."
        )
    for name, columns in CONSTRAINTS.items():
        schema_editor.execute(
            f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} EXCLUDE USING gist "
            f"({columns}, tstzrange(starts_at, ends_at, '[)') WITH &&) WHERE ({ACTIVE})"
        )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in CONSTRAINTS:
        schema_editor.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("scheduling", "0001_initial")]

    operations = [
        BtreeGistExtension(),  # does nothing on other databases
        migrations.RunPython(forwards, backwards),
    ]
