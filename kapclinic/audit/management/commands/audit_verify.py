from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from kapclinic.audit import checkpoints
from kapclinic.audit.models import AuditEvent
from kapclinic.audit.services import verify_chains
from kapclinic.core import clock


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
        if found:
            self.warn_if_stale(max(cp.at for cp in found))
        proved = f"; {len(found)} checkpoint(s) matched" if options["checkpoints"] else ""
        self.stdout.write(f"Audit trail intact: {AuditEvent.objects.count()} events verified{proved}.")

    def warn_if_stale(self, newest: str) -> None:
        """Checkpoints that stopped coming leave the newest events provable by the chain alone."""
        try:
            age = clock.now() - dt.datetime.fromisoformat(newest)
        except (TypeError, ValueError):
            return
        interval = settings.AUDIT_CHECKPOINT_MINUTES
        if age > dt.timedelta(minutes=2 * interval):
            self.stderr.write(
                f"Warning: the newest checkpoint is from {newest}, more than twice AUDIT_CHECKPOINT_MINUTES "
                f"({interval}) ago: removal of events written since then cannot be detected. Is "
                "audit_checkpoint running?"
            )
