from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from kapclinic.audit import checkpoints
from kapclinic.audit.models import AuditEvent
from kapclinic.audit.services import verify_chains


class Command(BaseCommand):
    help = (
        "Verify the audit trail: every chain's HMAC links (under AUDIT_CHAIN_KEY) and, with --checkpoints, "
        "that every event recorded by a signed checkpoint is still there with the same hash (so removed "
        "newest events and removed chains are found). Exits 1 with a sentence per problem."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--checkpoints",
            action="append",
            default=[],
            metavar="FILE",
            help="A file of checkpoints written by audit_checkpoint (JSON lines; may be repeated).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        problems = verify_chains()
        found: list[checkpoints.Checkpoint] = []
        for path in options["checkpoints"]:
            try:
                with open(path, encoding="utf-8") as handle:
                    parsed, line_problems = checkpoints.parse(handle, path)
            except OSError as exc:
                reason = exc.strerror or exc
                raise CommandError(f"The checkpoint file {path} could not be read: {reason}.") from None
            except UnicodeDecodeError:
                raise CommandError(f"The checkpoint file {path} is not UTF-8 text.") from None
            found.extend(parsed)
            problems.extend(line_problems)
        if found:
            problems.extend(checkpoints.verify_against(found))
        if problems:
            for line in problems:
                self.stderr.write(line)
            raise CommandError("The audit trail has been tampered with: see the lines above.", returncode=1)
        proved = f"; {len(found)} checkpoint(s) matched" if options["checkpoints"] else ""
        self.stdout.write(f"Audit trail intact: {AuditEvent.objects.count()} events verified{proved}.")
