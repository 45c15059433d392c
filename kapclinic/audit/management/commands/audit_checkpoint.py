from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from kapclinic.audit.checkpoints import publish


class Command(BaseCommand):
    help = (
        "Publish a signed checkpoint (chain, newest sequence number, its hash, time) of every audit chain: "
        "appended to AUDIT_CHECKPOINT_FILE, emailed to AUDIT_CHECKPOINT_EMAIL, POSTed to "
        "AUDIT_CHECKPOINT_WEBHOOK. Run it from cron, or keep it running with --every."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--every",
            action="store_true",
            help="Keep running and publish every AUDIT_CHECKPOINT_MINUTES minutes.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        while True:
            self.publish_once(fail=not options["every"])
            if not options["every"]:
                return
            time.sleep(settings.AUDIT_CHECKPOINT_MINUTES * 60)

    def publish_once(self, *, fail: bool) -> None:
        result = publish()
        if not result.checkpoints:
            self.stdout.write("No audit events yet: no checkpoint written.")
            return
        for line in result.failures:
            self.stderr.write(line)
        if result.delivered:
            self.stdout.write(
                f"{len(result.checkpoints)} chain checkpoint(s) published to {', '.join(result.delivered)}."
            )
        if not result.delivered or result.failures:
            message = (
                "No checkpoint destination is configured: set AUDIT_CHECKPOINT_FILE, AUDIT_CHECKPOINT_EMAIL "
                "or AUDIT_CHECKPOINT_WEBHOOK."
                if not result.failures
                else "Some checkpoint destinations failed: see the lines above."
            )
            if fail:
                raise CommandError(message, returncode=1)
            self.stderr.write(message)
