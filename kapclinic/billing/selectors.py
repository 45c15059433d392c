"""Reads for billing pages and documents: the ledger with running balance, account summary, superbill
and statement data, the clinic's ageing report. Arithmetic: kapclinic/clinical/billing/."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet

from kapclinic.billing import services
from kapclinic.billing.models import (
    Account,
    Adjustment,
    AdjustmentKind,
    ChargeLine,
    ChargeStatus,
    PackagePurchase,
    Payment,
    PaymentKind,
)
from kapclinic.clinical.billing import ledger as core
from kapclinic.clinical.billing.money import ZERO, money
from kapclinic.patients.models import Patient


@dataclass
class LedgerRow:
    on: dt.date
    what: str
    kind: str
    charge: Decimal | None = None
    credit: Decimal | None = None  # payment or reducing adjustment (shown positive)
    debit_other: Decimal | None = None  # refund or raising adjustment
    balance: Decimal = ZERO
    ref: str = ""
    obj: Any = None


def posted(patient: Patient) -> QuerySet[ChargeLine]:
    return ChargeLine.objects.filter(patient=patient, status=ChargeStatus.POSTED)


def drafts(patient: Patient) -> QuerySet[ChargeLine]:
    return ChargeLine.objects.filter(patient=patient, status=ChargeStatus.DRAFT).select_related("provider")


def _entries(
    patient: Patient, until: dt.date | None = None, since: dt.date | None = None
) -> list[tuple[dt.date, int, core.Entry, LedgerRow]]:
    out: list[tuple[dt.date, int, core.Entry, LedgerRow]] = []
    # Only the columns a ledger row shows (LedgerRow.obj keeps the row for links: charge session_id).
    charges = posted(patient).only(
        "pk", "service_date", "amount", "code", "modifiers", "units", "description", "session_id"
    )
    payments = Payment.objects.filter(patient=patient).only(
        "pk", "received_on", "amount", "kind", "method", "reference"
    )
    adjustments = Adjustment.objects.filter(patient=patient).only("pk", "on", "amount", "kind", "reason")
    if until is not None:
        charges = charges.filter(service_date__lte=until)
        payments = payments.filter(received_on__lte=until)
        adjustments = adjustments.filter(on__lte=until)
    if since is not None:
        charges = charges.filter(service_date__gte=since)
        payments = payments.filter(received_on__gte=since)
        adjustments = adjustments.filter(on__gte=since)
    for c in charges:
        amount = money(c.amount)
        if amount == 0:
            continue
        mods = f"-{c.modifiers}" if c.modifiers else ""
        row = LedgerRow(
            c.service_date,
            f"{c.code}{mods} × {c.units} {c.description[:60]}".strip(),
            "charge",
            charge=amount,
            obj=c,
        )
        out.append((c.service_date, 0, core.Entry(core.Kind.CHARGE, amount, c.service_date), row))
    for p in payments:
        amount = money(p.amount)
        if p.kind == PaymentKind.PAYMENT:
            row = LedgerRow(
                p.received_on,
                f"Payment ({p.get_method_display()})",
                "payment",
                credit=amount,
                ref=p.reference,
                obj=p,
            )
            entry = core.Entry(core.Kind.PAYMENT, amount, p.received_on)
        else:
            row = LedgerRow(
                p.received_on,
                f"Refund ({p.get_method_display()})",
                "refund",
                debit_other=amount,
                ref=p.reference,
                obj=p,
            )
            entry = core.Entry(core.Kind.REFUND, amount, p.received_on)
        out.append((p.received_on, 1, entry, row))
    for a in adjustments:
        amount = money(a.amount)
        label = f"{a.get_kind_display()}: {a.reason}"
        row = LedgerRow(a.on, label, "adjustment", obj=a)
        if amount > 0:
            row.credit = amount
        else:
            row.debit_other = -amount
        out.append((a.on, 2, core.Entry(core.Kind.ADJUSTMENT, amount, a.on), row))
    out.sort(key=lambda t: (t[0], t[1], t[3].obj.pk))
    return out


def ledger(
    patient: Patient, since: dt.date | None = None, until: dt.date | None = None
) -> tuple[Decimal, list[LedgerRow]]:
    """(opening balance before `since`, rows from `since` to `until` with their running balance)."""
    opening = ZERO
    if since is not None:
        before = _entries(patient, until=since - dt.timedelta(days=1))
        opening = core.totals(e for _, _, e, _ in before).balance
    items = _entries(patient, since=since, until=until)
    rows = []
    for (_, _, _, row), (_, bal) in zip(
        items, core.running([e for _, _, e, _ in items], opening), strict=True
    ):
        row.balance = bal
        rows.append(row)
    return opening, rows


def ledger_and_summary(patient: Patient) -> tuple[list[LedgerRow], Summary]:
    """The whole ledger with its running balance and the account summary, reading the entries once
    (the staff account page shows both)."""
    items = _entries(patient)
    entries = [e for _, _, e, _ in items]
    rows = []
    for (_, _, _, row), (_, bal) in zip(items, core.running(entries, ZERO), strict=True):
        row.balance = bal
        rows.append(row)
    return rows, summary(patient, entries)


@dataclass
class Summary:
    totals: core.Totals
    credit: Decimal
    packages: list[PackagePurchase]
    account: Account | None
    drafts: int

    @property
    def balance(self) -> Decimal:
        return self.totals.balance


def summary(patient: Patient, entries: list[core.Entry] | None = None) -> Summary:
    """The account's totals, credit, packages and drafts; `entries` (from `ledger_and_summary`) saves
    reading the ledger a second time."""
    if entries is None:
        entries = [e for _, _, e, _ in _entries(patient)]
    return Summary(
        totals=core.totals(entries),
        credit=services.unapplied_credit(patient),
        packages=list(PackagePurchase.objects.filter(patient=patient).order_by("-purchased_on", "-id")),
        account=Account.objects.filter(patient=patient).first(),
        drafts=drafts(patient).count(),
    )


# ---------------------------------------------------------------- superbill


@dataclass
class SuperbillLine:
    on: dt.date
    pos: str
    code: str
    modifiers: str
    description: str
    units: int
    diagnoses: list[str]
    pointers: str
    fee: Decimal
    paid: Decimal
    adjusted: Decimal
    balance: Decimal
    provider_id: int | None


@dataclass
class Provider:
    name: str
    credentials: str
    licence: str
    npi: str


@dataclass
class Superbill:
    patient: Patient
    account: Account | None
    start: dt.date
    end: dt.date
    lines: list[SuperbillLine]
    diagnoses: list[tuple[str, str, str]]  # (letter, ICD-10, description)
    providers: list[Provider]
    profile: Any
    clinic: Any
    total: Decimal = ZERO
    paid: Decimal = ZERO
    adjusted: Decimal = ZERO
    balance: Decimal = ZERO
    session_only: bool = False
    notes: list[str] = field(default_factory=list)
    codes: list[tuple[str, str]] = field(default_factory=list)  # (code, description) once each

    @property
    def paid_in_full(self) -> bool:
        return bool(self.lines) and self.balance == 0


def superbill(patient: Patient, start: dt.date, end: dt.date, *, session_id: int | None = None) -> Superbill:
    """The posted service lines of `patient` from `start` to `end` (or of one session), with everything
    a payer asks for (docs/billing.md section 3). Package sales are not services and are left out;
    a line covered by a package shows that cover as paid."""
    from kapclinic.accounts.models import User

    qs = posted(patient).exclude(code=services.PACKAGE_CODE)
    if session_id is not None:
        qs = qs.filter(session_id=session_id)
    else:
        qs = qs.filter(service_date__gte=start, service_date__lte=end)
    rows = list(services.with_open(qs).order_by("service_date", "id"))
    letters = "ABCDEFGHIJKL"
    order: list[str] = []
    for r in rows:
        for code in r.diagnosis_codes or []:
            if code not in order:
                order.append(code)
    notes = []
    if len(order) > len(letters):
        notes.append(f"{len(order)} diagnosis codes: a claim form lists 12; split the claim.")
    letter_of = {code: letters[i] for i, code in enumerate(order[: len(letters)])}
    descriptions = dict(patient.diagnoses.values_list("icd10", "description"))
    lines = []
    for r in rows:
        paid = money(r.paid_amount) + money(r.package_amount)
        adjusted = money(r.adjusted_amount) - money(r.package_amount)
        lines.append(
            SuperbillLine(
                on=r.service_date,
                pos=r.pos,
                code=r.code,
                modifiers=r.modifiers,
                description=r.description,
                units=r.units,
                diagnoses=list(r.diagnosis_codes or []),
                pointers="".join(letter_of.get(c, "") for c in r.diagnosis_codes or []),
                fee=money(r.amount),
                paid=paid,
                adjusted=adjusted,
                balance=money(r.open_amount_db),
                provider_id=r.provider_id,
            )
        )
    provider_ids = sorted({line.provider_id for line in lines if line.provider_id})
    providers = []
    for user in User.objects.filter(pk__in=provider_ids).order_by("full_name"):
        prof = services.provider_for(patient.clinic, user)
        licence = " ".join(
            x for x in (prof.licence_number, f"({prof.licence_state})" if prof.licence_state else "") if x
        )
        providers.append(Provider(user.full_name, prof.credentials, licence, prof.npi))
    if lines:
        start = min(start, min(x.on for x in lines)) if session_id is None else min(x.on for x in lines)
        end = max(end, max(x.on for x in lines)) if session_id is None else max(x.on for x in lines)
    bill = Superbill(
        patient=patient,
        account=Account.objects.filter(patient=patient).first(),
        start=start,
        end=end,
        lines=lines,
        diagnoses=[(letter_of[c], c, descriptions.get(c, "")) for c in order[:12]],
        providers=providers,
        profile=services.profile_for(patient.clinic),
        clinic=patient.clinic,
        session_only=session_id is not None,
        notes=notes,
    )
    seen: dict[str, str] = {}
    for x in lines:
        seen.setdefault(x.code, x.description)
    bill.codes = sorted(seen.items())
    bill.total = money(sum((x.fee for x in lines), ZERO))
    bill.paid = money(sum((x.paid for x in lines), ZERO))
    bill.adjusted = money(sum((x.adjusted for x in lines), ZERO))
    bill.balance = money(sum((x.balance for x in lines), ZERO))
    return bill


# ---------------------------------------------------------------- ageing


@dataclass
class AgeingRow:
    patient: Patient
    buckets: dict[str, Decimal]
    total: Decimal


def ageing(clinic: Any, today: dt.date) -> tuple[list[AgeingRow], dict[str, Decimal]]:
    """Open posted charges of the clinic by age (docs/billing.md section 4), per patient and in total."""
    per: dict[int, list[core.OpenCharge]] = defaultdict(list)
    qs = services.with_open(ChargeLine.objects.filter(clinic=clinic, status=ChargeStatus.POSTED))
    for c in qs.only("pk", "patient_id", "service_date", "amount"):
        if money(c.open_amount_db) > 0:
            per[c.patient_id].append(core.OpenCharge(c.pk, c.service_date, money(c.open_amount_db)))
    patients = Patient.objects.in_bulk(list(per))
    rows = []
    for pid, charges in per.items():
        buckets = core.ageing(charges, today)
        rows.append(AgeingRow(patients[pid], buckets, money(sum(buckets.values(), ZERO))))
    rows.sort(key=lambda r: (-r.total, r.patient.legal_last_name, r.patient.pk))
    totals = {name: money(sum((r.buckets[name] for r in rows), ZERO)) for name, _, _ in core.BUCKETS}
    return rows, totals


def unbilled(clinic: Any, limit: int = 50) -> tuple[list[Any], list[Any]]:
    """Completed visits (not dosing) and discharged dosing sessions with no charge lines yet."""
    from kapclinic.scheduling.models import Appointment, Kind, Status
    from kapclinic.sessions.models import DosingSession, SessionState

    billed_appts = (
        ChargeLine.objects.filter(clinic=clinic, appointment__isnull=False)
        .exclude(status=ChargeStatus.DISCARDED)
        .values("appointment_id")
    )
    billed_sessions = (
        ChargeLine.objects.filter(clinic=clinic, session__isnull=False)
        .exclude(status=ChargeStatus.DISCARDED)
        .values("session_id")
    )
    visits = list(
        Appointment.objects.filter(clinic=clinic, status=Status.COMPLETED)
        .exclude(kind=Kind.DOSING)
        .exclude(pk__in=billed_appts)
        .select_related("patient", "staff")
        .order_by("-starts_at")[:limit]
    )
    sessions = list(
        DosingSession.objects.filter(clinic=clinic, state=SessionState.DISCHARGED)
        .exclude(pk__in=billed_sessions)
        .select_related("patient")
        .order_by("-discharged_at")[:limit]
    )
    return visits, sessions


def write_offs(patient: Patient) -> QuerySet[Adjustment]:
    return Adjustment.objects.filter(patient=patient, kind=AdjustmentKind.WRITE_OFF)
