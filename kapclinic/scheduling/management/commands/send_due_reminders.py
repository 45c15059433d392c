from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from kapclinic.scheduling.services import due_reminder_ids, enqueue_reminder


class Command(BaseCommand):
    help = "Queue every reminder whose time has come (a safety net; booking already queues each one)."

    def handle(self, *args: Any, **options: Any) -> None:
        ids = due_reminder_ids()
        for rid in ids:
            enqueue_reminder(rid)
        self.stdout.write(f"Queued {len(ids)} due reminder(s).")
