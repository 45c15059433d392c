"""Reads for controlled-substance records (a constant number of queries per page)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import F, Max, Q, QuerySet
from django.utils import timezone

from kapclinic.clinical import ledger as core
from kapclinic.core import clock
from kapclinic.inventory.models import (
    Container,
    Count,
    Destruction,
    Discrepancy,
    LedgerEntry,
    LossReport,
    Product,
    Receipt,
    Registration,
    StorageLocation,
)
from kapclinic.inventory.services import clinic_holidays, loss_deadlines


def registrations(clinic: Any) -> QuerySet[Registration]:
    return Registration.objects.filter(clinic=clinic).order_by("dea_number")


def registration(clinic: Any, dea_number: str) -> Registration | None:
    return Registration.objects.filter(clinic=clinic, dea_number=dea_number.strip().upper()).first()


def products(clinic: Any) -> QuerySet[Product]:
    return Product.objects.filter(clinic=clinic)


def locations(clinic: Any) -> QuerySet[StorageLocation]:
    return StorageLocation.objects.filter(registration__clinic=clinic).select_related("registration")


def stock(clinic: Any, *, include_closed: bool = False) -> QuerySet[Container]:
    qs = Container.objects.filter(registration__clinic=clinic).select_related(
        "product", "registration", "location"
    )
    if not include_closed:
        qs = qs.filter(balance__gt=0)
    return qs.order_by("registration__dea_number", "identifier")


def container(clinic: Any, container_id: int) -> Container | None:
    return (
        Container.objects.filter(pk=container_id, registration__clinic=clinic)
        .select_related("product", "registration", "location", "receipt")
        .first()
    )


def ledger_lines(container: Container) -> QuerySet[LedgerEntry]:
    return container.entries.select_related("by", "witness", "patient", "reverses").order_by("seq")


def receipt(clinic: Any, receipt_id: int) -> Receipt | None:
    return (
        Receipt.objects.filter(pk=receipt_id, registration__clinic=clinic)
        .select_related("product", "registration", "received_by", "location")
        .first()
    )


def receipts(clinic: Any, start: dt.date | None = None, end: dt.date | None = None) -> QuerySet[Receipt]:
    qs = Receipt.objects.filter(registration__clinic=clinic).select_related(
        "product", "registration", "received_by"
    )
    if start:
        qs = qs.filter(received_on__gte=start)
    if end:
        qs = qs.filter(received_on__lte=end)
    return qs


def administration_log(registration: Registration, start: dt.date, end: dt.date) -> QuerySet[LedgerEntry]:
    """Administrations and waste of one registration from ``start`` to ``end`` (inclusive days of the
    clinic's time zone), and the reversals of such lines (e.g. an IV infusion stopped early: its dose
    line reversed and the amount infused written anew), so the log never shows a corrected line alone."""
    zone = registration.clinic.zone
    lo = dt.datetime.combine(start, dt.time.min, tzinfo=zone)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
    logged = ["administration", "waste"]
    # The month is read through the index ledger_log_at_order (at, container, seq, kind, reverses) in the
    # log's order: a page stops after its rows. On SQLite "+ 0" keeps the registration test off the
    # containers' index, so it cannot start from every line of the registration's containers (all their
    # history) and sort them, with or without statistics. PostgreSQL needs the plain column: "+ 0" hides
    # its statistics, it then guesses the registration rare and does exactly that (54 ms against 3 ms for
    # the first page of a month at N = 20,000; kapclinic/inventory/tests/test_list_pages.py).
    registration_id: Any = F("container__registration_id")
    if connection.vendor == "sqlite":
        registration_id = registration_id + 0
    return (
        LedgerEntry.objects.alias(log_registration=registration_id)
        .filter(
            Q(kind__in=logged) | Q(kind="reversal", reverses__kind__in=logged),
            log_registration=registration.pk,
            at__gte=lo,
            at__lt=hi,
        )
        .select_related("container__product", "by", "witness", "patient")
        .only(*_ADMIN_LOG_COLUMNS)  # what a row shows: a third of the cost of reading whole rows
        .order_by("at", "container_id", "seq")
    )


#: The columns ``administration_row`` reads (and the ordering's): nothing else is fetched.
_ADMIN_LOG_COLUMNS = (
    "at", "container_id", "seq", "kind", "unit", "amount_mg", "amount_ml", "route", "balance_after",
    "container__lot", "container__identifier", "container__product__name", "by__full_name",
    "witness__full_name", "patient__mrn",
)  # fmt: skip


@dataclass(frozen=True)
class LogPage:
    """One page of the administration log, read without counting the range: a count walks every line of
    the range (bench inventory_admin_log), so the page reads one row more than it shows to know whether
    another page follows. Offers what core/_pagination.html and the page's template ask of a page."""

    number: int
    entries: list[LedgerEntry]
    has_next: bool
    size: int

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_other_pages(self) -> bool:
        return self.has_previous or self.has_next

    @property
    def previous_page_number(self) -> int:
        return self.number - 1

    @property
    def next_page_number(self) -> int:
        return self.number + 1

    @property
    def start_index(self) -> int:
        return (self.number - 1) * self.size + 1 if self.entries else 0

    @property
    def end_index(self) -> int:
        return (self.number - 1) * self.size + len(self.entries)


def administration_log_page(entries: QuerySet[LedgerEntry], number: int, size: int) -> LogPage:
    """Page ``number`` (from 1) of ``entries``: one query of at most ``size`` + 1 rows, whatever the range."""
    start = (number - 1) * size
    rows = list(entries[start : start + size + 1])
    return LogPage(number, rows[:size], len(rows) > size, size)


ADMIN_LOG_HEADER = [
    "date and time",
    "patient record number",
    "product",
    "lot",
    "container",
    "mg",
    "mL",
    "route",
    "administered by",
    "witness",
    "balance after",
]


def administration_row(e: LedgerEntry, zone: Any) -> list[str]:
    """One row of the administration log; times in the clinic's zone, named (e.g. 2026-03-02 09:00 EST)."""
    c = e.container
    unit = "" if e.unit == "mg" else f" {e.unit}"
    kind = {"administration": "", "waste": " (waste)", "reversal": " (reversal: back on the balance)"}.get(
        e.kind, f" ({e.kind})"
    )
    return [
        e.at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"),
        e.patient.mrn if e.patient else "",
        c.product.name + kind,
        c.lot,
        c.identifier,
        _num(e.amount_mg),
        _num(e.amount_ml),
        e.route,
        e.by.full_name,
        e.witness.full_name if e.witness else "",
        _num(e.balance_after) + unit,
    ]


def administration_rows(entries: Iterable[LedgerEntry], zone: Any) -> list[list[str]]:
    """Rows of the administration log (one page of it, or a short range)."""
    return [administration_row(e, zone) for e in entries]


def stream_administration_rows(entries: QuerySet[LedgerEntry], zone: Any) -> Iterator[list[str]]:
    """Every row of the administration log, read in chunks (exports: memory independent of the range)."""
    for e in entries.iterator(chunk_size=2000):
        yield administration_row(e, zone)


def _num(value: Any) -> str:
    if value is None:
        return ""
    return format(value.normalize(), "f") if value != 0 else "0"


def counts(clinic: Any) -> QuerySet[Count]:
    return Count.objects.filter(registration__clinic=clinic).select_related(
        "registration", "taken_by", "witness"
    )


def count(clinic: Any, count_id: int) -> Count | None:
    return counts(clinic).filter(pk=count_id).first()


def discrepancies(clinic: Any, *, open_only: bool = False) -> QuerySet[Discrepancy]:
    qs = Discrepancy.objects.filter(registration__clinic=clinic).select_related(
        "container__product", "registration", "resolved_by", "count_line__count"
    )
    return qs.filter(resolved_at__isnull=True) if open_only else qs


@dataclass(frozen=True)
class LossRow:
    report: LossReport
    notice_due: dt.date
    form106_due: dt.date
    notice_overdue: bool
    form106_overdue: bool


def loss_reports(clinic: Any, *, open_only: bool = False) -> list[LossRow]:
    qs = LossReport.objects.filter(registration__clinic=clinic).select_related("registration")
    if open_only:
        qs = qs.filter(form106_filed_at__isnull=True) | qs.filter(notice_filed_at__isnull=True)
    today = clock.today()
    holidays = clinic_holidays(clinic)
    rows = []
    for r in qs.distinct():
        notice, form106 = loss_deadlines(timezone.localtime(r.discovered_at).date(), holidays)
        rows.append(
            LossRow(
                r,
                notice,
                form106,
                r.notice_filed_at is None and today > notice,
                r.form106_filed_at is None and today > form106,
            )
        )
    return rows


def destructions(clinic: Any) -> QuerySet[Destruction]:
    return Destruction.objects.filter(registration__clinic=clinic).select_related(
        "container__product", "by", "witness_1", "witness_2", "entry"
    )


def balance_text(c: Container) -> str:
    content = c.product.content()
    return str(core.Balance(c.balance, content.base_unit, content.ml_of(c.balance)))


@dataclass(frozen=True)
class InventoryDue:
    registration: Registration
    last: dt.date | None
    due: dt.date | None  # None: no initial inventory yet
    overdue: bool


def _two_years_after(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year + 2)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 2, day=28)


def inventories_due(clinic: Any) -> list[InventoryDue]:
    """Each registration's last initial/biennial inventory and the date the next is due by: any date
    within 2 years of the previous one (docs/controlled-substances.md §2). Two queries."""
    last = dict(
        Count.objects.filter(registration__clinic=clinic, kind__in=["initial", "biennial"])
        .values("registration")
        .annotate(last=Max("taken_at"))
        .values_list("registration", "last")
    )
    today = clock.today()
    rows = []
    for reg in registrations(clinic):
        taken = last.get(reg.pk)
        day = taken.astimezone(clinic.zone).date() if taken else None
        due = _two_years_after(day) if day else None
        rows.append(InventoryDue(reg, day, due, due is not None and today > due))
    return rows
