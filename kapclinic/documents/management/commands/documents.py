from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from kapclinic.documents.verify import verify


class Command(BaseCommand):
    help = (
        "documents verify: check that every file in the documents storage (chart documents, message "
        "attachments, logos) has its database row and every row its file. Names orphaned files by storage "
        "path and missing ones by row id (never a person's file name); exits 1 when there is any."
    )

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        check = sub.add_parser("verify", help="Compare the documents storage with the database.")
        check.add_argument(
            "--grace-minutes",
            type=int,
            default=10,
            help="Files younger than this are not called orphans (an upload may be saving). Default 10.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        minutes = options["grace_minutes"]
        if minutes < 0:
            raise CommandError("--grace-minutes: give 0 or more minutes.")
        report = verify(grace=dt.timedelta(minutes=minutes))
        for name in report.orphans:
            self.stderr.write(f"Orphaned file (no database row): {name}")
        for label, pk, name in report.missing:
            self.stderr.write(f"Missing file: {label} {pk} names {name}, which is not in the storage")
        recent = ""
        if report.recent:
            recent = f" ({report.recent} file(s) younger than {minutes} minutes not judged yet)"
        if not report.ok:
            raise CommandError(
                f"The documents storage does not match the database: {len(report.orphans)} orphaned "
                f"file(s), {len(report.missing)} missing file(s). Remove orphans after checking them; "
                f"restore missing files from the backup{recent}.",
                returncode=1,
            )
        self.stdout.write(
            f"Documents storage matches the database: {report.files} file(s), {report.rows} row(s){recent}."
        )
