from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from kapclinic.audit.models import AuditEvent
from kapclinic.audit.services import verify_chains


class Command(BaseCommand):
    help = "Verify the hash chain of the audit trail and name the first broken link of each chain."

    def handle(self, *args: Any, **options: Any) -> None:
        problems = verify_chains()
        if problems:
            for line in problems:
                self.stderr.write(line)
            raise CommandError("The audit trail has been tampered with: see the lines above.", returncode=1)
        self.stdout.write(f"Audit trail intact: {AuditEvent.objects.count()} events verified.")
