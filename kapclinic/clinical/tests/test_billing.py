"""Billing core (docs/billing.md): codes data, money, units from minutes, ledger, allocation,
packages, ageing. Worked examples plus property tests."""

from __future__ import annotations

import contextlib
import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kapclinic.clinical.billing import codes, ledger
from kapclinic.clinical.billing.ledger import Entry, Kind, OpenCharge
from kapclinic.clinical.billing.money import MoneyError, fmt, line_total, money, split_evenly

D = dt.date(2026, 3, 2)


# ---------------------------------------------------------------- codes data


def test_every_code_has_a_source_and_a_descriptor_status() -> None:
    cs = codes.load()
    assert cs.version == "1.0.0"
    assert {"G2082", "G2083", "90837", "96365", "96366", "0820T", "0821T", "0822T"} <= set(cs.codes)
    for c in cs.codes.values():
        assert c.sources and all(s.startswith("C") for s in c.sources)
        assert c.system in {"CPT", "HCPCS"}
        assert c.descriptor_status
        if c.descriptor is None:
            assert "UNCONFIRMED" in c.descriptor_status


def test_descriptors_quoted_from_the_source() -> None:
    g2082 = codes.load().get("g2082")
    assert g2082 is not None and "up to 56 mg of esketamine" in (g2082.descriptor or "")
    assert codes.load().get("99214").label.startswith("99214 (descriptor not reproduced")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("minutes", "code"),
    [(15, None), (16, "90832"), (37, "90832"), (38, "90834"), (52, "90834"), (53, "90837"), (90, "90837")],
)
def test_psychotherapy_time_bands(minutes: int, code: str | None) -> None:
    # docs/billing.md [C9]: 16-37, 38-52, >=53
    assert codes.psychotherapy_code(minutes) == code


def test_psychotherapy_add_on_with_em() -> None:
    assert codes.psychotherapy_code(45, with_em=True) == "90836"


@pytest.mark.parametrize(
    ("dose", "code"), [("28", "G2082"), ("56", "G2082"), ("56.01", "G2083"), ("84", "G2083")]
)
def test_esketamine_visit_code_by_dose(dose: str, code: str) -> None:
    assert codes.esketamine_visit_code(Decimal(dose)) == code


def test_esketamine_visit_needs_a_dose() -> None:
    with pytest.raises(ValueError):
        codes.esketamine_visit_code(Decimal(0))


@pytest.mark.parametrize(
    ("minutes", "lines"),
    [
        (15, []),
        (16, [("96365", 1)]),
        (60, [("96365", 1)]),
        (90, [("96365", 1)]),  # 30 min beyond the hour: not more than 30
        (91, [("96365", 1), ("96366", 1)]),
        (120, [("96365", 1), ("96366", 1)]),
        (151, [("96365", 1), ("96366", 2)]),
    ],
)
def test_infusion_units(minutes: int, lines: list[tuple[str, int]]) -> None:
    # docs/billing.md [C20][C21]
    assert codes.infusion_lines(minutes) == lines


def test_units_for() -> None:
    cs = codes.load()
    assert codes.units_for(cs.codes["G2082"]) == 1
    assert codes.units_for(cs.codes["J0013"], dose_mg=Decimal(56)) == 56
    assert codes.units_for(cs.codes["J0013"], dose_mg=Decimal("56.5")) is None
    assert codes.units_for(cs.codes["90834"], minutes=45) == 1
    assert codes.units_for(cs.codes["90834"], minutes=60) is None
    assert codes.units_for(cs.codes["96366"], minutes=151) == 2
    assert codes.units_for(cs.codes["0820T"], minutes=240) is None  # counting rule unconfirmed


@given(st.integers(min_value=0, max_value=24 * 60))
def test_infusion_units_grow_with_time(minutes: int) -> None:
    a = dict(codes.infusion_lines(minutes)).get("96366", 0)
    b = dict(codes.infusion_lines(minutes + 1)).get("96366", 0)
    assert 0 <= b - a <= 1


# ---------------------------------------------------------------- money


def test_money_rounds_half_up_and_refuses_floats() -> None:
    assert money("10.005") == Decimal("10.01")
    assert money("10.004") == Decimal("10.00")
    assert money(3) == Decimal("3.00")
    with pytest.raises(MoneyError):
        money(0.1)  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        money("ten")
    with pytest.raises(MoneyError):
        money("NaN")
    assert line_total(Decimal("33.335"), 3) == Decimal("100.01")
    assert fmt(Decimal("1234.5")) == "1,234.50"


@given(st.decimals(min_value=-(10**6), max_value=10**6, places=2), st.integers(min_value=1, max_value=40))
def test_split_evenly_adds_up(total: Decimal, parts: int) -> None:
    pieces = split_evenly(total, parts)
    assert sum(pieces) == money(total)
    assert max(pieces) - min(pieces) <= Decimal("0.01")


# ---------------------------------------------------------------- ledger


def test_worked_example() -> None:
    entries = [
        Entry(Kind.CHARGE, Decimal("450.00"), D, "G2083"),
        Entry(Kind.CHARGE, Decimal("200.00"), D, "90837"),
        Entry(Kind.PAYMENT, Decimal("500.00"), D, "card"),
        Entry(Kind.ADJUSTMENT, Decimal("50.00"), D, "courtesy"),
        Entry(Kind.REFUND, Decimal("20.00"), D, "cash"),
    ]
    t = ledger.totals(entries)
    assert t.balance == Decimal("120.00")  # 650 - 500 + 20 - 50
    assert t.paid == Decimal("480.00")
    assert [b for _, b in ledger.running(entries)] == [
        Decimal("450.00"),
        Decimal("650.00"),
        Decimal("150.00"),
        Decimal("100.00"),
        Decimal("120.00"),
    ]


def test_entries_refuse_bad_amounts() -> None:
    with pytest.raises(MoneyError):
        Entry(Kind.PAYMENT, Decimal("-1.00"), D)
    with pytest.raises(MoneyError):
        Entry(Kind.CHARGE, Decimal("1.001"), D)
    with pytest.raises(MoneyError):
        Entry(Kind.ADJUSTMENT, Decimal("0.00"), D)


amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100000), places=2)
entry_st = st.builds(
    Entry,
    st.sampled_from([Kind.CHARGE, Kind.PAYMENT, Kind.REFUND]),
    amounts,
    st.just(D),
) | st.builds(
    Entry,
    st.just(Kind.ADJUSTMENT),
    amounts.map(lambda a: a) | amounts.map(lambda a: -a),
    st.just(D),
)


@settings(max_examples=200)
@given(st.lists(entry_st, max_size=60))
def test_ledger_balances_for_any_sequence(entries: list[Entry]) -> None:
    t = ledger.totals(entries)
    assert t.balance == t.charges - t.payments + t.refunds - t.adjustments
    run = ledger.running(entries)
    assert (run[-1][1] if run else Decimal("0.00")) == t.balance
    # order does not change the balance
    assert ledger.totals(reversed(entries)).balance == t.balance


def test_allocation_oldest_first_with_credit() -> None:
    charges = [
        OpenCharge(2, D + dt.timedelta(days=7), Decimal("100.00")),
        OpenCharge(1, D, Decimal("60.00")),
    ]
    applied, credit = ledger.allocate(Decimal("200.00"), charges)
    assert applied == {1: Decimal("60.00"), 2: Decimal("100.00")}
    assert credit == Decimal("40.00")
    applied, credit = ledger.allocate(Decimal("50.00"), charges, order=[2])
    assert applied == {2: Decimal("50.00")} and credit == 0
    with pytest.raises(ledger.AllocationRefused):
        ledger.allocate(Decimal("50.00"), charges, order=[9])
    with pytest.raises(ledger.AllocationRefused):
        ledger.allocate(Decimal("0"), charges)


@given(
    amounts,
    st.lists(st.tuples(st.integers(0, 400), amounts), max_size=20),
)
def test_allocation_conserves_money(amount: Decimal, raw: list[tuple[int, Decimal]]) -> None:
    charges = [OpenCharge(i, D + dt.timedelta(days=d), a) for i, (d, a) in enumerate(raw)]
    applied, credit = ledger.allocate(amount, charges)
    assert sum(applied.values(), Decimal(0)) + credit == amount
    assert credit >= 0
    owed = {c.key: c.open_amount for c in charges}
    assert all(0 < v <= owed[k] for k, v in applied.items())
    if credit > 0:
        assert sum(applied.values(), Decimal(0)) == sum(owed.values(), Decimal(0))


# ---------------------------------------------------------------- packages


def test_package_draw_down_worked_example() -> None:
    s = ledger.PackageState(6, 0)
    for _ in range(6):
        s = ledger.draw(s)
    assert s.remaining == 0
    with pytest.raises(ledger.PackageRefused, match="0 session"):
        ledger.draw(s)
    assert ledger.release(s).remaining == 1
    assert (
        ledger.per_session_value(Decimal("2500.00"), 6) == [Decimal("416.67")] * 4 + [Decimal("416.66")] * 2
    )


@given(st.integers(1, 30), st.lists(st.integers(-2, 4), max_size=50))
def test_package_never_below_zero(bought: int, ops: list[int]) -> None:
    s = ledger.PackageState(bought, 0)
    for n in ops:
        with contextlib.suppress(ledger.PackageRefused):
            s = ledger.draw(s, n) if n >= 0 else ledger.release(s, -n)
        assert 0 <= s.remaining <= bought


# ---------------------------------------------------------------- ageing


def test_ageing_buckets() -> None:
    today = dt.date(2026, 6, 30)
    charges = [
        OpenCharge(1, today, Decimal("10.00")),
        OpenCharge(2, today - dt.timedelta(days=30), Decimal("5.00")),
        OpenCharge(3, today - dt.timedelta(days=31), Decimal("7.00")),
        OpenCharge(4, today - dt.timedelta(days=120), Decimal("1.00")),
        OpenCharge(5, today - dt.timedelta(days=121), Decimal("2.00")),
        OpenCharge(6, today - dt.timedelta(days=400), Decimal("0.00")),
    ]
    assert ledger.ageing(charges, today) == {
        "0-30": Decimal("15.00"),
        "31-60": Decimal("7.00"),
        "61-90": Decimal("0.00"),
        "91-120": Decimal("1.00"),
        "over 120": Decimal("2.00"),
    }


@given(st.lists(st.tuples(st.integers(0, 1000), amounts), max_size=30))
def test_ageing_sums_to_open_total(raw: list[tuple[int, Decimal]]) -> None:
    today = dt.date(2026, 6, 30)
    charges = [OpenCharge(i, today - dt.timedelta(days=d), a) for i, (d, a) in enumerate(raw)]
    assert sum(ledger.ageing(charges, today).values(), Decimal(0)) == sum((a for _, a in raw), Decimal(0))
