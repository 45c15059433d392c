"""Escalate open safety alerts to the clinic's on-call prescriber (run from cron every few minutes).

The worker already checks each alert at its escalation time; this command catches anything it missed
(a lost task, a worker that was down) and is idempotent: an alert escalates at most once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from kapclinic.measures.services import escalate_due_alerts


class Command(BaseCommand):
    help = (
        "Escalate open PHQ-9 item-9 safety alerts that are undelivered or unacknowledged past the "
        "clinic's escalation time."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        outcome = escalate_due_alerts()
        escalated = outcome.get("escalated", 0)
        missing_on_call = outcome.get("no-on-call", 0)
        self.stdout.write(f"Escalated {escalated} safety alert(s).")
        if missing_on_call:
            self.stderr.write(
                f"{missing_on_call} open alert(s) cannot escalate: their clinic has no on-call "
                "prescriber. Name one on the clinic settings page."
            )
