from __future__ import annotations

from typing import Any

from cryptography.fernet import InvalidToken
from django.core.management.base import BaseCommand, CommandError

from kapclinic.notes.services import rotate_process_note_keys


class Command(BaseCommand):
    help = (
        "Re-encrypt every psychotherapy process note (and the earlier revisions of edited ones) with the "
        "first key of PROCESS_NOTE_KEYS. "
        "Procedure: put the new key first (keep the old ones after it), run this command, then remove "
        "the old keys."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Decrypt and verify only; save nothing.")
        parser.add_argument("--batch", type=int, default=200)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            rotated, total = rotate_process_note_keys(batch=options["batch"], dry_run=options["dry_run"])
        except InvalidToken:
            raise CommandError(
                "A process note could not be decrypted with any key in PROCESS_NOTE_KEYS; add the key it "
                "was written with (after the new key) and run the command again. Notes already rotated "
                "stay readable."
            ) from None
        verb = "verified" if options["dry_run"] else "re-encrypted"
        self.stdout.write(f"{rotated} of {total} process note text(s) {verb} with the current first key.")
