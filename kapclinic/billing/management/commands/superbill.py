"""`manage.py superbill --patient <record number> --from YYYY-MM-DD --to YYYY-MM-DD --out FILE.pdf`

Writes the same superbill a biller downloads (kapclinic/billing/documents.py), for clinics that batch
them. Exits 2 with a sentence for an unknown patient, an ambiguous record number (give --clinic), bad
dates or a range with no posted services. The export is audited (system actor, "superbill command").
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kapclinic.billing import documents, selectors
from kapclinic.core.actor import Actor
from kapclinic.patients.models import Patient


def _fail(sentence: str) -> CommandError:
    return CommandError(sentence, returncode=2)


def _date(text: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise _fail(f"--{name} must be a date written YYYY-MM-DD, not {text!r}.") from None


class Command(BaseCommand):
    help = "Write a patient's superbill for a date range as PDF."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--patient", required=True, help="the patient's record number")
        parser.add_argument("--from", dest="start", required=True, help="first date of service, YYYY-MM-DD")
        parser.add_argument("--to", dest="end", required=True, help="last date of service, YYYY-MM-DD")
        parser.add_argument("--out", required=True, help="the PDF file to write")
        parser.add_argument(
            "--clinic", default="", help="the clinic's slug, when the record number is not unique"
        )
        parser.add_argument("--paper", choices=["Letter", "A4"], default="Letter")

    def handle(self, *args: Any, **opts: Any) -> None:
        start, end = _date(opts["start"], "from"), _date(opts["end"], "to")
        if start > end:
            raise _fail("--from is after --to.")
        found = Patient.objects.filter(mrn=opts["patient"]).select_related("clinic")
        if opts["clinic"]:
            found = found.filter(clinic__slug=opts["clinic"])
        patients = list(found[:2])
        if not patients:
            raise _fail(f"No patient has the record number {opts['patient']!r}.")
        if len(patients) > 1:
            raise _fail(
                f"Record number {opts['patient']!r} is used in more than one clinic: add --clinic <slug>."
            )
        patient = patients[0]
        bill = selectors.superbill(patient, start, end)
        if not bill.lines:
            raise _fail(f"There are no posted services for {opts['patient']} from {start} to {end}.")
        data = documents.superbill_pdf(bill, opts["paper"])
        Path(opts["out"]).write_bytes(data)
        documents.export(Actor.system(patient.clinic, reason="superbill command"), patient, "superbill")
        self.stdout.write(f"Wrote {opts['out']}: {len(bill.lines)} service line(s), {len(data)} bytes.")
