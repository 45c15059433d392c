"""`manage.py controlled_substances report|verify` (issue 14; docs/controlled-substances.md).

report  writes the administration log of one registration for a date range as CSV (to stdout or --output).
verify  checks every container's arithmetic: each line's balance is the running signed sum of its lines,
        received - administered - wasted - destroyed +/- adjustments = balance, the container's stored
        balance is its newest line's, and the newest count of it agrees with the ledger or has a
        discrepancy; and each dosing session's draw from it: given = its administration lines, and
        after discharge drawn = given + wasted + returned. Exits 1 naming each container that does not
        add up.
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Sum

from kapclinic.audit.services import record_event
from kapclinic.clinical.ledger import StoredLine, replay
from kapclinic.core.actor import Actor
from kapclinic.inventory import selectors
from kapclinic.inventory.models import Container, CountLine, LedgerEntry, Registration, SessionDraw

SIGN = {"receipt": 1, "administration": -1, "waste": -1, "destruction": -1}


def _date(text: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--{name} must be a date written YYYY-MM-DD, not {text!r}.") from None


def container_problems(
    container: Container, entries: list[LedgerEntry], last_count: CountLine | None
) -> list[str]:
    problems = replay([StoredLine(e.seq, e.delta, e.balance_after) for e in entries])
    seqs = [e.seq for e in entries]
    if seqs != list(range(1, len(entries) + 1)):
        problems.append(f"line numbers {seqs} are not 1..{len(entries)} (a line is missing)")
    if not entries or entries[0].kind != "receipt":
        problems.append("the ledger does not open with a receipt")
    for e in entries:
        if e.amount <= 0:
            problems.append(f"line {e.seq}: amount {e.amount} is not above zero")
        sign = SIGN.get(e.kind)
        if sign is not None and e.delta != sign * e.amount:
            problems.append(f"line {e.seq}: a {e.kind} of {e.amount} cannot change the balance by {e.delta}")
        if e.kind == "adjustment" and abs(e.delta) != e.amount:
            problems.append(f"line {e.seq}: adjustment amount {e.amount} does not match its change {e.delta}")
        if e.kind == "reversal" and (e.reverses is None or e.delta != -e.reverses.delta):
            problems.append(f"line {e.seq}: the reversal does not undo the line it names")
        if e.kind in ("waste", "adjustment", "reversal", "destruction") and (
            e.witness_id is None or e.witness_id == e.by_id
        ):
            problems.append(f"line {e.seq}: a {e.kind} without a second person as witness")
    total = sum((e.delta for e in entries), Decimal(0))
    newest = entries[-1].balance_after if entries else Decimal(0)
    if container.balance != total or container.balance != newest:
        problems.append(
            f"stored balance {container.balance.normalize()} but the lines add up to {total.normalize()}"
        )
    if last_count is not None and not last_count.agrees and not hasattr(last_count, "discrepancy"):
        problems.append("its latest count disagrees with the ledger and no discrepancy was opened")
    return problems


def draw_problems() -> dict[int, list[str]]:
    """By container: each dosing session's draw against its ledger lines (docs/controlled-substances.md
    §10): what the draw says was given is what the session's administration lines on that container add
    up to, and once the session is discharged (discharge waits for it) what was drawn or taken out is
    given, wasted or returned. One grouped query and one pass over the draws."""
    lines: dict[tuple[int, int, str], Decimal] = defaultdict(Decimal)
    for row in (
        LedgerEntry.objects.filter(
            session__isnull=False, kind__in=("administration", "waste"), reversed_by__isnull=True
        )
        .order_by()
        .values("session_id", "container_id", "kind")
        .annotate(total=Sum("amount"))
    ):
        lines[(row["session_id"], row["container_id"], row["kind"])] += Decimal(row["total"])
    out: dict[int, list[str]] = defaultdict(list)
    for d in SessionDraw.objects.select_related("session").order_by("pk").iterator(chunk_size=5000):
        given = lines.get((d.session_id, d.container_id, "administration"), Decimal(0))
        wasted = lines.get((d.session_id, d.container_id, "waste"), Decimal(0))
        if given != d.given:
            out[d.container_id].append(
                f"session {d.session_id}: the draw gave {d.given.normalize():f} {d.unit} but its "
                f"administration lines add up to {given.normalize():f}"
            )
        if d.session.state == "discharged" and d.drawn != d.given + wasted + d.returned:
            out[d.container_id].append(
                f"session {d.session_id} (discharged): {d.drawn.normalize():f} {d.unit} drawn but "
                f"{(d.given + wasted + d.returned).normalize():f} given, wasted or returned"
            )
    return out


class Command(BaseCommand):
    help = "Controlled-substance records: the administration log (report) and the ledger arithmetic (verify)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        report = sub.add_parser("report", help="Administration log of one registration as CSV.")
        report.add_argument("--registration", required=True, help="DEA registration number")
        report.add_argument("--from", dest="start", required=True, help="YYYY-MM-DD (inclusive)")
        report.add_argument("--to", dest="end", required=True, help="YYYY-MM-DD (inclusive)")
        report.add_argument("--format", default="csv", help="csv (the only format)")
        report.add_argument("--output", default="-", help="file to write (default: standard output)")
        sub.add_parser("verify", help="Check every container's arithmetic; exit 1 naming each that fails.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "report":
            self.report(options)
        else:
            self.verify()

    def report(self, options: dict[str, Any]) -> None:
        if options["format"] != "csv":
            raise CommandError(f"--format {options['format']!r} is not supported; use --format csv.")
        start, end = _date(options["start"], "from"), _date(options["end"], "to")
        if start > end:
            raise CommandError("--from must not be after --to.")
        reg = Registration.objects.filter(dea_number=options["registration"].strip().upper()).first()
        if reg is None:
            raise CommandError(f"No registration with DEA number {options['registration']!r}.")
        # Every row, streamed in chunks: a year of a busy clinic never sits in memory at once.
        rows = selectors.stream_administration_rows(
            selectors.administration_log(reg, start, end), reg.clinic.zone
        )
        if options["output"] == "-":
            written = self._write(sys.stdout, rows)
        else:
            with open(options["output"], "w", newline="", encoding="utf-8") as handle:
                written = self._write(handle, rows)
        record_event(
            Actor.system(reg.clinic, "controlled_substances report"),
            "export",
            obj=reg,
            detail=f"inventory.administration_log rows={written}",
        )

    @staticmethod
    def _write(out: Any, rows: Iterator[list[str]]) -> int:
        writer = csv.writer(out)
        writer.writerow(selectors.ADMIN_LOG_HEADER)
        written = 0
        for row in rows:
            writer.writerow(row)
            written += 1
        return written

    def verify(self) -> None:
        entries: dict[int, list[LedgerEntry]] = defaultdict(list)
        for e in (
            LedgerEntry.objects.select_related("reverses")
            .order_by("container_id", "seq")
            .iterator(chunk_size=5000)
        ):
            entries[e.container_id].append(e)
        last_counts: dict[int, CountLine] = {}
        for line in CountLine.objects.select_related("discrepancy").order_by("count__taken_at", "pk"):
            last_counts[line.container_id] = line
        by_draws = draw_problems()
        failed: list[str] = []
        checked = 0
        for container in Container.objects.select_related("registration").order_by(
            "registration_id", "identifier"
        ):
            checked += 1
            problems = container_problems(
                container, entries.get(container.pk, []), last_counts.get(container.pk)
            ) + by_draws.get(container.pk, [])
            if problems:
                failed.append(
                    f"{container.registration.dea_number} {container.identifier}: " + "; ".join(problems)
                )
        if failed:
            for message in failed:
                self.stderr.write(message)
            self.stderr.write(f"{len(failed)} of {checked} containers do not add up.")
            sys.exit(1)
        self.stdout.write(f"All {checked} containers add up.")
