"""Money: `Decimal` to the cent with one explicit rounding rule (docs/billing.md section 4).

Floats are refused (a float cannot hold most cent amounts exactly); strings and ints are accepted.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
ROUNDING = ROUND_HALF_UP


class MoneyError(ValueError):
    """Bad money input, with a sentence."""


def money(value: Decimal | int | str) -> Decimal:
    """`value` as an amount of money rounded to the cent (half up). Floats and non-numbers are refused."""
    if isinstance(value, (bool, float)):
        raise MoneyError("Amounts are entered as text or Decimal, never as a float.")
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise MoneyError(f"{value!r} is not an amount of money.") from exc
    if not amount.is_finite():
        raise MoneyError("An amount of money must be a finite number.")
    return amount.quantize(CENT, rounding=ROUNDING)


def line_total(unit_price: Decimal, units: int) -> Decimal:
    """Price x units, rounded to the cent once."""
    if units < 0:
        raise MoneyError("Units cannot be negative.")
    return money(unit_price * units)


def split_evenly(total: Decimal, parts: int) -> list[Decimal]:
    """`total` in `parts` cent amounts that add up to it exactly (the first parts carry the odd cents)."""
    if parts <= 0:
        raise MoneyError("Split into at least one part.")
    total = money(total)
    cents = int(total * 100)
    base, extra = divmod(abs(cents), parts)
    sign = -1 if cents < 0 else 1
    return [money(Decimal(sign * (base + (1 if i < extra else 0))) / 100) for i in range(parts)]


def fmt(amount: Decimal) -> str:
    """'1,234.50' (no currency sign; the document says the currency once)."""
    return f"{money(amount):,.2f}"
