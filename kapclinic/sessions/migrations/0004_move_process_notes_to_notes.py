"""Move the therapist's process notes of dosing sessions out of the plaintext ``kap_sessions_processnote``
table into the notes app's encrypted psychotherapy process notes (issue 6: encrypted at rest, visible
only to their author and those the author shares with).

Each row becomes a ``notes.ProcessNote`` of the same clinic, patient, author and time, linked to its
dosing session, with the text encrypted by ``kapclinic.notes.crypto`` (MultiFernet on
settings.PROCESS_NOTE_KEYS, newest key first); each is decrypted again and compared before the next
migration (0005) drops the plaintext table. Nothing is shared: only the author can read a moved note,
as before the move the author and every therapist or prescriber who opened the session could.

Reversing this migration leaves the encrypted notes where they are (never writes plaintext back).
PostgreSQL: DROP TABLE removes the table's files; copies of the old plaintext in backups and WAL
archives taken before the migration are outside the database and must be handled by the operator.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations


def move_to_encrypted_notes(apps: Any, schema_editor: Any) -> None:
    Plain = apps.get_model("kap_sessions", "ProcessNote")
    Encrypted = apps.get_model("notes", "ProcessNote")
    rows = list(Plain.objects.using(schema_editor.connection.alias).select_related("session").order_by("pk"))
    if not rows:
        return
    from kapclinic.notes import crypto  # only when there is something to encrypt (keys may be unset)

    mf = crypto.fernet()
    for row in rows:
        token = mf.encrypt(row.text.encode("utf-8")).decode("ascii")
        if mf.decrypt(token.encode("ascii")).decode("utf-8") != row.text:  # pragma: no cover - defensive
            raise RuntimeError(f"Encryption check failed for session process note {row.pk}; nothing moved.")
        Encrypted.objects.using(schema_editor.connection.alias).create(
            clinic_id=row.session.clinic_id,
            patient_id=row.session.patient_id,
            author_id=row.author_id,
            ciphertext=token,
            dosing_session_id=row.session_id,
            created_at=row.at,
            updated_at=row.at,
        )
    Plain.objects.using(schema_editor.connection.alias).filter(pk__in=[r.pk for r in rows]).update(text="")


class Migration(migrations.Migration):
    dependencies = [
        ("kap_sessions", "0003_clinic_setting_change"),
        ("notes", "0002_processnote_dosing_session"),
    ]

    operations = [
        migrations.RunPython(move_to_encrypted_notes, migrations.RunPython.noop, elidable=False),
    ]
