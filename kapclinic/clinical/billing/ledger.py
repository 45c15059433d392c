"""Patient account arithmetic (docs/billing.md section 4): balance, running balance, allocation of
payments to charges, package draw-down and ageing buckets. Pure; amounts are cent Decimals (money.py).

Sign convention: every entry has a positive `amount`; its kind says which way it moves the balance.
    balance = charges - payments + refunds - adjustments
An adjustment with a negative amount adds to the balance (a correction upwards); write-offs are
adjustments. Nothing here rounds silently: amounts are checked to be whole cents.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from kapclinic.clinical.billing.money import ZERO, MoneyError, money


class Kind(StrEnum):
    CHARGE = "charge"
    PAYMENT = "payment"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


SIGN = {Kind.CHARGE: 1, Kind.PAYMENT: -1, Kind.REFUND: 1, Kind.ADJUSTMENT: -1}


@dataclass(frozen=True)
class Entry:
    kind: Kind
    amount: Decimal
    on: dt.date
    ref: str = ""

    def __post_init__(self) -> None:
        if money(self.amount) != self.amount:
            raise MoneyError("Amounts are whole cents.")
        if self.kind != Kind.ADJUSTMENT and self.amount <= 0:
            raise MoneyError(f"A {self.kind} must be more than zero.")
        if self.kind == Kind.ADJUSTMENT and self.amount == 0:
            raise MoneyError("An adjustment of zero changes nothing.")

    @property
    def signed(self) -> Decimal:
        return self.amount * SIGN[self.kind]


@dataclass(frozen=True)
class Totals:
    charges: Decimal
    payments: Decimal
    refunds: Decimal
    adjustments: Decimal

    @property
    def balance(self) -> Decimal:
        return money(self.charges - self.payments + self.refunds - self.adjustments)

    @property
    def paid(self) -> Decimal:
        """Money received net of refunds."""
        return money(self.payments - self.refunds)


def totals(entries: Iterable[Entry]) -> Totals:
    sums = dict.fromkeys(Kind, ZERO)
    for e in entries:
        sums[e.kind] += e.amount
    return Totals(
        charges=money(sums[Kind.CHARGE]),
        payments=money(sums[Kind.PAYMENT]),
        refunds=money(sums[Kind.REFUND]),
        adjustments=money(sums[Kind.ADJUSTMENT]),
    )


def running(entries: Sequence[Entry], opening: Decimal = ZERO) -> list[tuple[Entry, Decimal]]:
    """Each entry with the balance after it, in the order given."""
    out: list[tuple[Entry, Decimal]] = []
    bal = money(opening)
    for e in entries:
        bal = money(bal + e.signed)
        out.append((e, bal))
    return out


# ---------------------------------------------------------------- allocation


@dataclass(frozen=True)
class OpenCharge:
    key: int
    on: dt.date
    open_amount: Decimal  # what is still owed on this charge


class AllocationRefused(ValueError):
    pass


def allocate(
    amount: Decimal, charges: Sequence[OpenCharge], *, order: Sequence[int] | None = None
) -> tuple[dict[int, Decimal], Decimal]:
    """Split a payment over open charges: oldest first (by date, then key) unless `order` lists the
    charge keys to pay first. Returns ({charge key: amount applied}, unapplied credit). The applied
    amounts plus the credit equal `amount` exactly; no charge gets more than it owes."""
    amount = money(amount)
    if amount <= 0:
        raise AllocationRefused("A payment to allocate must be more than zero.")
    by_key = {c.key: c for c in charges}
    if order is not None:
        unknown = [k for k in order if k not in by_key]
        if unknown:
            raise AllocationRefused("A chosen charge is not open on this account.")
        rest = sorted((c for c in charges if c.key not in set(order)), key=lambda c: (c.on, c.key))
        seq = [by_key[k] for k in order] + rest
    else:
        seq = sorted(charges, key=lambda c: (c.on, c.key))
    left = amount
    applied: dict[int, Decimal] = {}
    for c in seq:
        if left <= 0:
            break
        if c.open_amount <= 0:
            continue
        take = min(left, money(c.open_amount))
        applied[c.key] = take
        left = money(left - take)
    return applied, left


# ---------------------------------------------------------------- packages


class PackageRefused(ValueError):
    pass


@dataclass(frozen=True)
class PackageState:
    sessions_bought: int
    sessions_used: int

    @property
    def remaining(self) -> int:
        return self.sessions_bought - self.sessions_used


def draw(state: PackageState, sessions: int = 1) -> PackageState:
    """Use `sessions` of a package; refused (never clamped) when fewer remain."""
    if sessions <= 0:
        raise PackageRefused("Draw at least one session.")
    if sessions > state.remaining:
        raise PackageRefused(
            f"The package has {state.remaining} session(s) left; {sessions} cannot be drawn."
        )
    return PackageState(state.sessions_bought, state.sessions_used + sessions)


def release(state: PackageState, sessions: int = 1) -> PackageState:
    """Give back sessions drawn in error (a reversed draw); never below zero used."""
    if sessions <= 0 or sessions > state.sessions_used:
        raise PackageRefused("Only sessions that were drawn can be given back.")
    return PackageState(state.sessions_bought, state.sessions_used - sessions)


def per_session_value(price: Decimal, sessions: int) -> list[Decimal]:
    """The package price spread over its sessions in cents that add up to the price exactly."""
    from kapclinic.clinical.billing.money import split_evenly

    return split_evenly(price, sessions)


# ---------------------------------------------------------------- ageing

BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0-30", 0, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("91-120", 91, 120),
    ("over 120", 121, None),
)


def bucket_for(service_date: dt.date, today: dt.date) -> str:
    days = max(0, (today - service_date).days)
    for name, lo, hi in BUCKETS:
        if days >= lo and (hi is None or days <= hi):
            return name
    raise AssertionError("unreachable")  # pragma: no cover


def ageing(open_charges: Iterable[OpenCharge], today: dt.date) -> dict[str, Decimal]:
    """Open amounts by age of the charge's date of service (docs/billing.md section 4)."""
    out = {name: ZERO for name, _, _ in BUCKETS}
    for c in open_charges:
        if c.open_amount > 0:
            out[bucket_for(c.on, today)] = money(out[bucket_for(c.on, today)] + c.open_amount)
    return out
