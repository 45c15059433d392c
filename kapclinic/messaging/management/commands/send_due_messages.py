from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from kapclinic.messaging.services import due_message_ids, enqueue


class Command(BaseCommand):
    help = (
        "Queue every outbound email whose (next) attempt is due, safety alerts first "
        "(a safety net for cron; every message is already queued when it is written)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        ids = due_message_ids()
        for mid in ids:
            enqueue(mid)
        self.stdout.write(f"Queued {len(ids)} due message(s).")
