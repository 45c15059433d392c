"""Email single-use links for measures that are due (run daily from cron or a task runner).

A patient gets at most one open link per instrument: no reminder is sent while an unused, unexpired
link exists. Uses Django's email framework (console backend in the demo, SMTP in production).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from kapclinic.accounts.models import Clinic
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.measures import selectors, services
from kapclinic.measures.models import MeasureLink
from kapclinic.patients.models import Patient


class Command(BaseCommand):
    help = "Email single-use links to patients whose measures are due."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="list what would be sent, send nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        sent = skipped = 0
        now = clock.now()
        for clinic in Clinic.objects.filter(is_active=True):
            rows = selectors.due_for_patients(Patient.objects.filter(clinic=clinic), now=now)
            open_links = set(
                MeasureLink.objects.filter(
                    clinic=clinic, used_at__isnull=True, expires_at__gt=now
                ).values_list("patient_id", "instrument")
            )
            emails = dict(
                Patient.objects.filter(pk__in={r.patient_id for r in rows}).values_list("pk", "email")
            )
            actor = Actor.system(clinic, reason="measure-reminders")
            for row in rows:
                if (row.patient_id, row.due.instrument) in open_links or not emails.get(row.patient_id):
                    skipped += 1
                    continue
                if not options["dry_run"]:
                    patient = Patient.objects.select_related("clinic").get(pk=row.patient_id)
                    services.link_send(actor, patient, instrument=row.due.instrument)
                sent += 1
        verb = "Would send" if options["dry_run"] else "Sent"
        self.stdout.write(f"{verb} {sent} reminder link(s); skipped {skipped} (open link or no email).")
