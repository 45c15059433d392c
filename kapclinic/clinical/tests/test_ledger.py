"""Container ledger arithmetic (docs/controlled-substances.md §8) with property-based tests."""

from __future__ import annotations

import contextlib
import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kapclinic.clinical.dosing import Mg, MgPerMl, Ml
from kapclinic.clinical.ledger import (
    ContainerContent,
    Devices,
    EntryKind,
    Ledger,
    LedgerRefused,
    ProposedEntry,
    QuantityError,
    StoredLine,
    apply_entry,
    compare_count,
    dea_number_problem,
    replay,
)

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
VIAL = ContainerContent.vial(MgPerMl(50), Ml(10))  # 500 mg
PACK = ContainerContent.pack(Devices(3), Mg(28))


def opened(content: ContainerContent = VIAL, expiry: dt.date = dt.date(2027, 1, 1)) -> Ledger:
    amount = Mg(content.labelled) if content.is_vial else Devices(content.labelled)
    return apply_entry(
        Ledger(content, expiry), ProposedEntry(EntryKind.RECEIPT, by="rn1", at=T0, amount=amount)
    )


def refused(ledger: Ledger, entry: ProposedEntry) -> str:
    with pytest.raises(LedgerRefused) as exc:
        apply_entry(ledger, entry)
    return str(exc.value)


def test_worked_example_of_the_docs_table() -> None:
    led = opened()
    led = apply_entry(led, ProposedEntry(EntryKind.ADMINISTRATION, by="rn1", at=T0, amount=Mg(70)))
    led = apply_entry(led, ProposedEntry(EntryKind.WASTE, by="rn1", witness="rn2", at=T0, amount=Mg(5)))
    assert [line.balance_after for line in led.lines] == [500, 430, 425]
    assert str(led.balance_of()) == "425 mg (8.5 mL)"


def test_ml_amounts_convert_through_concentration() -> None:
    led = apply_entry(opened(), ProposedEntry(EntryKind.ADMINISTRATION, by="a", at=T0, amount=Ml("1.4")))
    assert led.balance == Decimal("430")


def test_refusals_have_sentences() -> None:
    led = opened()
    assert "mg or mL, not devices" in refused(
        led, ProposedEntry(EntryKind.ADMINISTRATION, by="a", at=T0, amount=Devices(1))
    )
    assert "counted in devices" in refused(
        opened(PACK), ProposedEntry(EntryKind.ADMINISTRATION, by="a", at=T0, amount=Mg(28))
    )
    assert "above zero" in refused(led, ProposedEntry(EntryKind.ADMINISTRATION, by="a", at=T0, amount=Mg(0)))
    with pytest.raises(QuantityError):
        Mg(-1)
    assert "more than the container holds" in refused(
        led, ProposedEntry(EntryKind.ADMINISTRATION, by="a", at=T0, amount=Mg(600))
    )
    assert "different person" in refused(
        led, ProposedEntry(EntryKind.WASTE, by="a", witness="a", at=T0, amount=Mg(1))
    )
    assert "needs a second person" in refused(
        led, ProposedEntry(EntryKind.WASTE, by="a", at=T0, amount=Mg(1))
    )
    expired = opened(expiry=dt.date(2026, 2, 1))
    assert "expired on 2026-02-01" in refused(
        expired, ProposedEntry(EntryKind.ADMINISTRATION, by="a", at=T0, amount=Mg(1))
    )
    assert "receipt before" in refused(
        Ledger(VIAL, dt.date(2027, 1, 1)),
        ProposedEntry(EntryKind.ADMINISTRATION, by="a", at=T0, amount=Mg(1)),
    )
    with pytest.raises(QuantityError, match="whole number"):
        Devices("1.5")


def test_overdraw_needs_a_two_person_overfill_adjustment_first() -> None:
    led = apply_entry(opened(), ProposedEntry(EntryKind.ADMINISTRATION, by="a", at=T0, amount=Mg(480)))
    assert "overfill adjustment" in refused(
        led, ProposedEntry(EntryKind.ADMINISTRATION, by="a", at=T0, amount=Mg(30))
    )
    assert "needs a second person" in refused(
        led,
        ProposedEntry(EntryKind.ADJUSTMENT, by="a", at=T0, amount=Mg(12), increase=True, reason="overfill"),
    )
    led = apply_entry(
        led,
        ProposedEntry(
            EntryKind.ADJUSTMENT, by="a", witness="b", at=T0, amount=Mg(12), increase=True, reason="overfill"
        ),
    )
    led = apply_entry(led, ProposedEntry(EntryKind.ADMINISTRATION, by="a", at=T0, amount=Mg(30)))
    assert led.balance == 2
    led = apply_entry(
        led,
        ProposedEntry(
            EntryKind.ADJUSTMENT, by="a", witness="b", at=T0, amount=Mg(2), increase=False, reason="empty"
        ),
    )
    assert led.balance == 0


def test_reversal_rules() -> None:
    led = apply_entry(opened(), ProposedEntry(EntryKind.ADMINISTRATION, by="a", at=T0, amount=Mg(70)))
    rev = ProposedEntry(EntryKind.REVERSAL, by="dr", witness="rn", at=T0, reverses=2, reason="wrong vial")
    led2 = apply_entry(led, rev)
    assert led2.balance == 500 and led2.lines[-1].reverses == 2
    assert "already reversed" in refused(led2, rev)
    assert "cannot itself be reversed" in refused(
        led2, ProposedEntry(EntryKind.REVERSAL, by="dr", witness="rn", at=T0, reverses=3, reason="x")
    )
    assert "receipt is not reversed" in refused(
        led2, ProposedEntry(EntryKind.REVERSAL, by="dr", witness="rn", at=T0, reverses=1, reason="x")
    )
    assert "reason" in refused(
        led, ProposedEntry(EntryKind.REVERSAL, by="dr", witness="rn", at=T0, reverses=2)
    )


def test_dea_check_digit() -> None:
    assert dea_number_problem("AP5836727") is None
    assert dea_number_problem("ap5836727") is None
    problem = dea_number_problem("AP5836728")
    assert problem is not None and "check digit should be 7" in problem
    assert "two letters" in (dea_number_problem("A15836727") or "")


def test_count_comparison() -> None:
    assert compare_count(Decimal(425), Decimal(425), "mg", exact=True).agrees
    c = compare_count(Decimal(425), Decimal(420), "mg", exact=True)
    assert not c.agrees and c.difference == -5 and "differs" in c.sentence
    assert compare_count(Decimal(425), Decimal(420), "mg", exact=False, tolerance=Decimal(10)).agrees
    assert not compare_count(Decimal(425), Decimal(420), "mg", exact=False).agrees


def test_replay_finds_a_tampered_balance() -> None:
    lines = [StoredLine(1, Decimal(500), Decimal(500)), StoredLine(2, Decimal(-70), Decimal(440))]
    assert replay(lines) == ["line 2: balance after is 440 but the entries add up to 430"]


# ---- properties ----------------------------------------------------------------------------------

kinds = st.sampled_from(list(EntryKind))
amount_values = st.integers(min_value=-5, max_value=700)
units = st.sampled_from(["mg", "mL", "devices"])
people = st.sampled_from(["a", "b", ""])


def _amount(unit: str, value: int) -> Mg | Ml | Devices | None:
    if value < 0:
        return None  # a negative quantity cannot even be built (QuantityError), see above
    if unit == "mg":
        return Mg(value)
    return Ml(value) if unit == "mL" else Devices(value)


entries = st.lists(
    st.tuples(kinds, amount_values, units, people, people, st.booleans(), st.integers(0, 12)), max_size=25
)


@settings(max_examples=300, deadline=None)
@given(entries, st.sampled_from([VIAL, PACK]))
def test_any_accepted_sequence_balances(
    seq: list[tuple[EntryKind, int, str, str, str, bool, int]], content: ContainerContent
) -> None:
    led = opened(content)
    for kind, value, unit, by, witness, increase, target in seq:
        entry = ProposedEntry(
            kind,
            by=by or "x",
            witness=witness or None,
            at=T0,
            amount=_amount(unit, value),
            increase=increase,
            reverses=target,
            reason="r",
        )
        before = led
        try:
            led = apply_entry(led, entry)
        except LedgerRefused:
            assert led is before
            continue
        new = led.lines[-1]
        # units never mix: an accepted amount was in the container's own units
        if entry.amount is not None and kind is not EntryKind.REVERSAL:
            assert (entry.amount.unit == "devices") == (not content.is_vial)
        # never below zero; any increase beyond the label came through a two-person adjustment
        assert new.balance_after >= 0
        if new.delta > 0 and kind is not EntryKind.REVERSAL:
            assert kind is EntryKind.ADJUSTMENT and new.witness and new.witness != new.by
        if kind is EntryKind.REVERSAL:
            assert new.balance_after == before.balance - next(
                line.delta for line in before.lines if line.seq == target
            )
    # balance equals the signed sum, and every line's balance is the running sum
    assert led.balance == sum((line.delta for line in led.lines), Decimal(0))
    assert replay([StoredLine(line.seq, line.delta, line.balance_after) for line in led.lines]) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 120), max_size=8), st.integers(0, 7))
def test_reversal_restores_the_balance(draws: list[int], pick: int) -> None:
    led = opened()
    for d in draws:
        with contextlib.suppress(LedgerRefused):
            led = apply_entry(led, ProposedEntry(EntryKind.ADMINISTRATION, by="a", at=T0, amount=Mg(d)))
    draws_lines = [line for line in led.lines if line.kind is EntryKind.ADMINISTRATION]
    if not draws_lines:
        return
    target = draws_lines[pick % len(draws_lines)]
    before = led.balance
    led = apply_entry(
        led, ProposedEntry(EntryKind.REVERSAL, by="dr", witness="rn", at=T0, reverses=target.seq, reason="x")
    )
    assert led.balance == before - target.delta
