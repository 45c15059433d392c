"""Controlled-substance container ledger arithmetic (pure; no Django).

One ledger per container (docs/controlled-substances.md §8): a receipt opens it, administrations,
waste and destruction take from it, two-person adjustments correct overfill/underfill, and a reversal
undoes an earlier line. The balance is kept in the container's base unit: **mg** for a ketamine vial
(mL shown as mg ÷ concentration, §7) and **devices** for an esketamine pack (§7).

Refusal rules (each a sentence; nothing is clamped):

* an amount that is zero or negative, or in the wrong unit (devices for a vial, mg/mL for a device pack);
* an amount above the container's labelled content;
* a draw that would take the balance below zero: overfill is entered first as a two-person adjustment
  (§8, [A43]), so the balance is never below zero without one;
* a witness who is the person making the entry; waste, adjustments, destruction and reversals need a
  witness (clinic practice; not a federal requirement, §5);
* an administration from an expired container;
* a reversal of a line that does not exist, is itself a reversal, or was already reversed.

Also: the DEA registration number check digit (§9) and the count-versus-ledger comparison (§2).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum

from kapclinic.clinical.dosing import Mg, MgPerMl, Ml, Quantity, QuantityError, UnitMismatch

__all__ = [
    "Amount",
    "Balance",
    "ContainerContent",
    "CountComparison",
    "Devices",
    "EntryKind",
    "Ledger",
    "LedgerLine",
    "LedgerRefused",
    "ProposedEntry",
    "QuantityError",
    "StoredLine",
    "UnitMismatch",
    "apply_entry",
    "compare_count",
    "dea_number_problem",
    "replay",
]


class Devices(Quantity):
    """A whole number of nasal spray devices (esketamine, §7)."""

    __slots__ = ()
    unit = "devices"

    def __init__(self, value: Decimal | int | str) -> None:
        super().__init__(value)
        if self.value != self.value.to_integral_value():
            raise QuantityError(f"A device count must be a whole number (got {self.value}).")


Amount = Mg | Ml | Devices


class LedgerRefused(ValueError):
    """An entry the ledger will not take; ``reasons`` are user-facing sentences."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = tuple(reasons)
        super().__init__(" ".join(self.reasons))


@dataclass(frozen=True)
class ContainerContent:
    """What a container holds by its label: a vial (concentration x volume) or a pack of devices."""

    concentration: MgPerMl | None = None
    volume: Ml | None = None
    devices: Devices | None = None
    device_strength: Mg | None = None

    def __post_init__(self) -> None:
        vial = self.concentration is not None and self.volume is not None
        pack = self.devices is not None and self.device_strength is not None
        if vial == pack:
            raise QuantityError(
                "A container is either a vial (concentration and volume) or a device pack (number of "
                "devices and strength per device)."
            )
        if vial and (self.concentration == MgPerMl(0) or self.volume == Ml(0)):
            raise QuantityError("A vial's concentration and volume must be above zero.")
        if pack and self.devices == Devices(0):
            raise QuantityError("A device pack holds at least one device.")

    @classmethod
    def vial(cls, concentration: MgPerMl, volume: Ml) -> ContainerContent:
        return cls(concentration=concentration, volume=volume)

    @classmethod
    def pack(cls, devices: Devices, device_strength: Mg) -> ContainerContent:
        return cls(devices=devices, device_strength=device_strength)

    @property
    def is_vial(self) -> bool:
        return self.concentration is not None

    @property
    def base_unit(self) -> str:
        return "mg" if self.is_vial else "devices"

    @property
    def labelled(self) -> Decimal:
        """The labelled content in the base unit (mg for a vial, devices for a pack)."""
        if self.concentration is not None and self.volume is not None:
            return (self.volume * self.concentration).value
        assert self.devices is not None
        return self.devices.value

    def to_base(self, amount: Amount) -> Decimal:
        """The amount in the base unit; refuses the wrong unit with a sentence."""
        if self.concentration is not None:
            if isinstance(amount, Mg):
                return amount.value
            if isinstance(amount, Ml):
                return (amount * self.concentration).value
            raise LedgerRefused([f"A vial's amounts are in mg or mL, not {amount.unit}."])
        if isinstance(amount, Devices):
            return amount.value
        raise LedgerRefused([f"A device pack's amounts are counted in devices, not {amount.unit}."])

    def ml_of(self, base: Decimal) -> Decimal | None:
        """mL for a base (mg) amount of a vial, None for a device pack (shown only, §7)."""
        if self.concentration is None:
            return None
        return base / self.concentration.value

    def describe(self) -> str:
        if self.concentration is not None and self.volume is not None:
            total = Mg(self.labelled)
            return f"{self.concentration} x {self.volume} ({total})"
        return f"{self.devices} x {self.device_strength}"


class EntryKind(Enum):
    RECEIPT = "receipt"
    ADMINISTRATION = "administration"
    WASTE = "waste"
    DESTRUCTION = "destruction"
    ADJUSTMENT = "adjustment"
    REVERSAL = "reversal"

    @property
    def label(self) -> str:
        return self.value.capitalize()


#: Kinds that take stock out of the container.
OUT_KINDS = frozenset({EntryKind.ADMINISTRATION, EntryKind.WASTE, EntryKind.DESTRUCTION})
#: Kinds that need a second person (clinic practice §5, §8; Form 41 two witnesses §5).
WITNESSED_KINDS = frozenset(
    {EntryKind.WASTE, EntryKind.DESTRUCTION, EntryKind.ADJUSTMENT, EntryKind.REVERSAL}
)


@dataclass(frozen=True)
class ProposedEntry:
    """An entry someone asks to add. ``increase`` is the direction of an adjustment (overfill = True,
    underfill = False). ``reverses`` is the ``seq`` of the line a reversal undoes."""

    kind: EntryKind
    by: str
    at: dt.datetime
    amount: Amount | None = None
    witness: str | None = None
    reason: str = ""
    increase: bool | None = None
    reverses: int | None = None


@dataclass(frozen=True)
class LedgerLine:
    seq: int
    kind: EntryKind
    delta: Decimal  # signed, base unit
    balance_after: Decimal
    by: str
    witness: str | None
    at: dt.datetime
    reason: str = ""
    reverses: int | None = None


@dataclass(frozen=True)
class Balance:
    value: Decimal
    unit: str
    ml: Decimal | None = None

    def __str__(self) -> str:
        text = f"{_fmt(self.value)} {self.unit}"
        if self.ml is not None:
            text += f" ({_fmt(self.ml.quantize(Decimal('0.001')))} mL)"
        return text


def _fmt(d: Decimal) -> str:
    return format(d.normalize(), "f") if d != 0 else "0"


@dataclass(frozen=True)
class Ledger:
    content: ContainerContent
    expiry: dt.date
    lines: tuple[LedgerLine, ...] = field(default_factory=tuple)

    @property
    def balance(self) -> Decimal:
        return self.lines[-1].balance_after if self.lines else Decimal(0)

    def balance_of(self) -> Balance:
        return Balance(self.balance, self.content.base_unit, self.content.ml_of(self.balance))


def apply_entry(ledger: Ledger, entry: ProposedEntry) -> Ledger:
    """The ledger with ``entry`` appended, or :class:`LedgerRefused` naming every problem."""
    reasons: list[str] = []
    content = ledger.content
    unit = content.base_unit
    base: Decimal | None = None
    if entry.kind is not EntryKind.REVERSAL:
        if entry.amount is None:
            reasons.append("Enter the amount.")
        else:
            try:
                base = content.to_base(entry.amount)
            except LedgerRefused as exc:
                reasons.extend(exc.reasons)
            else:
                if base <= 0:
                    reasons.append("The amount must be above zero.")
                    base = None
    if not entry.by.strip():
        reasons.append("Say who made the entry.")
    witness = (entry.witness or "").strip() or None
    if witness is not None and witness == entry.by:
        reasons.append("The witness must be a different person from the one making the entry.")
    elif witness is None and entry.kind in WITNESSED_KINDS:
        reasons.append(f"A {entry.kind.value} needs a second person as witness.")
    needs_reason = {EntryKind.ADJUSTMENT, EntryKind.REVERSAL, EntryKind.DESTRUCTION}
    if entry.kind in needs_reason and not entry.reason.strip():
        reasons.append(f"Give the reason for the {entry.kind.value}.")

    has_receipt = any(line.kind is EntryKind.RECEIPT for line in ledger.lines)
    delta: Decimal | None = None
    reverses: int | None = None
    if entry.kind is EntryKind.RECEIPT:
        if has_receipt:
            reasons.append("This container was already received; a container has one receipt.")
        if base is not None and base != content.labelled:
            reasons.append(
                f"A receipt opens the container with its labelled content "
                f"({_fmt(content.labelled)} {unit}), not {_fmt(base)} {unit}."
            )
        delta = base
    elif not has_receipt:
        reasons.append("Record the container's receipt before any other entry.")
    elif entry.kind in OUT_KINDS:
        if base is not None:
            if base > content.labelled:
                reasons.append(
                    f"{_fmt(base)} {unit} is more than the container holds "
                    f"({_fmt(content.labelled)} {unit} by its label)."
                )
            elif base > ledger.balance:
                reasons.append(
                    f"{_fmt(base)} {unit} would take the balance below zero (only "
                    f"{_fmt(ledger.balance)} {unit} remain). If the container holds more than its "
                    "label (overfill), two people record an overfill adjustment first."
                )
            delta = -base
        if entry.kind is EntryKind.ADMINISTRATION and entry.at.date() > ledger.expiry:
            reasons.append(f"This container expired on {ledger.expiry.isoformat()}; it cannot be used.")
    elif entry.kind is EntryKind.ADJUSTMENT:
        if entry.increase is None:
            reasons.append("Say whether the adjustment is an overfill (more) or underfill (less).")
        elif base is not None:
            if entry.increase:
                if base > content.labelled:
                    reasons.append(
                        f"An overfill of {_fmt(base)} {unit} is more than the container's whole "
                        f"labelled content ({_fmt(content.labelled)} {unit})."
                    )
                delta = base
            else:
                if base > ledger.balance:
                    reasons.append(
                        f"An underfill of {_fmt(base)} {unit} would take the balance below zero "
                        f"(only {_fmt(ledger.balance)} {unit} remain)."
                    )
                delta = -base
    elif entry.kind is EntryKind.REVERSAL:
        target = next((line for line in ledger.lines if line.seq == entry.reverses), None)
        if target is None:
            reasons.append("Choose the line to reverse.")
        elif target.kind is EntryKind.REVERSAL:
            reasons.append("A reversal cannot itself be reversed; make a new entry instead.")
        elif target.kind is EntryKind.RECEIPT:
            reasons.append("A receipt is not reversed; destroy or return the container instead.")
        elif any(line.reverses == target.seq for line in ledger.lines):
            reasons.append(f"Line {target.seq} was already reversed.")
        else:
            delta = -target.delta
            reverses = target.seq
            if ledger.balance + delta < 0:
                reasons.append(
                    f"Reversing line {target.seq} would take the balance below zero "
                    f"(only {_fmt(ledger.balance)} {unit} remain)."
                )
    if ledger.lines and entry.at < ledger.lines[-1].at:
        reasons.append("An entry cannot be dated before the container's previous entry.")
    if reasons:
        raise LedgerRefused(reasons)
    assert delta is not None
    line = LedgerLine(
        seq=len(ledger.lines) + 1,
        kind=entry.kind,
        delta=delta,
        balance_after=ledger.balance + delta,
        by=entry.by,
        witness=witness,
        at=entry.at,
        reason=entry.reason.strip(),
        reverses=reverses,
    )
    return Ledger(content=content, expiry=ledger.expiry, lines=(*ledger.lines, line))


@dataclass(frozen=True)
class StoredLine:
    """A line as stored (for verification): its signed delta and the balance it claims."""

    seq: int
    delta: Decimal
    balance_after: Decimal


def replay(lines: Sequence[StoredLine]) -> list[str]:
    """Problems in stored lines: a balance that is not the running signed sum, or below zero."""
    problems: list[str] = []
    running = Decimal(0)
    for line in lines:
        running += line.delta
        if line.balance_after != running:
            problems.append(
                f"line {line.seq}: balance after is {_fmt(line.balance_after)} but the entries add "
                f"up to {_fmt(running)}"
            )
            running = line.balance_after  # report each wrong line once, not every one after it
        if line.balance_after < 0:
            problems.append(f"line {line.seq}: balance {_fmt(line.balance_after)} is below zero")
    return problems


@dataclass(frozen=True)
class CountComparison:
    ledger: Decimal
    counted: Decimal
    difference: Decimal  # counted - ledger
    agrees: bool
    sentence: str


def compare_count(
    ledger_balance: Decimal, counted: Decimal, unit: str, *, exact: bool, tolerance: Decimal = Decimal(0)
) -> CountComparison:
    """A count against the ledger (§2). Exact counts must match; an estimated count of an opened
    container may differ by at most ``tolerance`` (a clinic setting, 0 by default: no sourced value)."""
    if counted < 0:
        raise LedgerRefused(["A count cannot be negative."])
    if tolerance < 0:
        raise LedgerRefused(["The tolerance cannot be negative."])
    diff = counted - ledger_balance
    agrees = diff == 0 if exact else abs(diff) <= tolerance
    how = "exact count" if exact else "estimate"
    if agrees:
        sentence = (
            f"The {how} ({_fmt(counted)} {unit}) agrees with the ledger ({_fmt(ledger_balance)} {unit})."
        )
    else:
        sentence = (
            f"The {how} ({_fmt(counted)} {unit}) differs from the ledger ({_fmt(ledger_balance)} {unit}) "
            f"by {_fmt(diff)} {unit}."
        )
    return CountComparison(ledger_balance, counted, diff, agrees, sentence)


_DEA = re.compile(r"^[A-Z]{2}\d{7}$")


def dea_number_problem(number: str) -> str | None:
    """None when ``number`` passes the DEA check-digit rule (docs/controlled-substances.md §9, [A51]),
    else a sentence saying what is wrong."""
    text = number.strip().upper()
    if not _DEA.match(text):
        return "A DEA registration number is two letters followed by seven digits (e.g. AP5836727)."
    d = [int(c) for c in text[2:]]
    total = d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])
    if total % 10 != d[6]:
        return f"{text} is not a valid DEA registration number: its check digit should be {total % 10}."
    return None
