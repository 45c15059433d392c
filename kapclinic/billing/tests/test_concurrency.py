"""Issue 16: money posted at the same moment by two billers, each on their own database connection.
Payments, refunds and write-offs lock the patient's billing Account row (services.account_for) before
they read what is open, so whatever order the two land in, no charge is paid or written off beyond its
amount, no payment gives out more than it took in, and the ledger balance is the one the postings add up
to. PostgreSQL only: SQLite has no row locks (it serialises whole-database writes instead)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from django.db import connection
from django.db.models import Sum

from kapclinic.billing import selectors, services
from kapclinic.billing.models import (
    Account,
    Adjustment,
    AdjustmentKind,
    Allocation,
    ChargeLine,
    Method,
    Payment,
    PaymentKind,
)
from kapclinic.billing.testing import add_diagnosis, discharged_session, starter_fee_schedule
from kapclinic.clinical.billing.money import ZERO, money
from kapclinic.core.errors import DomainError
from kapclinic.testing.factories import actor_for, make_patient, make_staff

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="row locks (select_for_update) and concurrent connections: PostgreSQL only",
    ),
    pytest.mark.django_db(transaction=True),
]

ROUNDS = 6  # each round a fresh patient, so a lost race shows up in some round even if not in the first


def _race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at once, each in its own thread on its own database connection, released together
    by a barrier. Returns each call's outcome (its result or the exception it raised)."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[i] = calls[i]()
        except Exception as exc:  # recorded and asserted on by the test
            outcomes[i] = exc
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a posting never finished (deadlock?)"
    return outcomes


@pytest.fixture
def billers(world: Any) -> tuple[Any, Any]:
    first = actor_for(world.front_desk, world.clinic)
    starter_fee_schedule(first)
    return first, actor_for(make_staff(world.clinic, "front_desk"), world.clinic)


def _patient_owing_450(world: Any, desk: Any) -> tuple[Any, ChargeLine]:
    patient = make_patient(world.clinic, care_team=[world.prescriber])
    add_diagnosis(patient, world.prescriber)
    session = discharged_session(patient, world.prescriber, dose_mg="84")  # G2083, 450.00
    lines = services.propose_for_session(desk, session)
    (charge,) = services.post_charges(desk, patient, line_ids=[x.pk for x in lines])
    assert charge.amount == Decimal("450.00")
    return patient, charge


def _sum(qs: Any, field: str = "amount") -> Decimal:
    return money(qs.aggregate(t=Sum(field))["t"] or ZERO)


def _assert_consistent(patient: Any) -> None:
    """Nothing over-allocated, nothing over-refunded, and the balance is what the postings add up to."""
    for charge in services.with_open(ChargeLine.objects.filter(patient=patient, status="posted")):
        assert 0 <= money(charge.open_amount_db) <= money(charge.amount), (charge.code, charge.open_amount_db)
        assert _sum(Allocation.objects.filter(charge=charge)) >= 0
    for p in Payment.objects.filter(patient=patient, kind=PaymentKind.PAYMENT):
        given_back = _sum(Payment.objects.filter(refund_of=p))
        applied = _sum(Allocation.objects.filter(payment=p))
        assert applied >= 0 and applied + given_back <= money(p.amount), (p.amount, applied, given_back)
    assert services.unapplied_credit(patient) >= 0
    charged = _sum(ChargeLine.objects.filter(patient=patient, status="posted"))
    paid = _sum(Payment.objects.filter(patient=patient, kind=PaymentKind.PAYMENT))
    refunded = _sum(Payment.objects.filter(patient=patient, kind=PaymentKind.REFUND))
    adjusted = _sum(Adjustment.objects.filter(patient=patient))
    balance = selectors.summary(patient).balance
    assert balance == charged - paid + refunded - adjusted
    open_total = sum((money(c.open_amount_db) for c in services.open_charges(patient)), ZERO)
    assert balance == open_total - services.unapplied_credit(patient)


def test_two_payments_at_once_pay_a_charge_once_and_keep_the_rest_as_credit(world: Any, billers: Any) -> None:
    a, b = billers
    for _ in range(ROUNDS):
        patient, charge = _patient_owing_450(world, a)
        outcomes = _race(
            partial(services.record_payment, a, patient, method=Method.CARD, amount="300.00", reference="1"),
            partial(services.record_payment, b, patient, method=Method.CASH, amount="300.00"),
        )
        assert all(isinstance(o, Payment) for o in outcomes), outcomes
        # One payment paid 300, the other only the 150 still open; 150 stays as credit.
        assert sorted(_sum(Allocation.objects.filter(payment=p)) for p in outcomes) == [
            Decimal("150.00"),
            Decimal("300.00"),
        ]
        assert _sum(Allocation.objects.filter(charge=charge)) == Decimal("450.00")
        assert services.unapplied_credit(patient) == Decimal("150.00")
        assert selectors.summary(patient).balance == Decimal("-150.00")
        _assert_consistent(patient)


def test_a_refund_and_a_payment_at_once_leave_a_balance_the_postings_add_up_to(
    world: Any, billers: Any
) -> None:
    a, b = billers
    for _ in range(ROUNDS):
        patient, _charge = _patient_owing_450(world, a)
        first = services.record_payment(a, patient, method=Method.CARD, amount="500.00", reference="1")
        outcomes = _race(
            partial(services.refund, a, first, amount="300.00", method=Method.CARD, reason="overpaid"),
            partial(services.record_payment, b, patient, method=Method.CASH, amount="200.00"),
        )
        assert all(isinstance(o, Payment) for o in outcomes), outcomes
        # 450 charged - 500 - 200 paid + 300 refunded, whichever landed first.
        assert selectors.summary(patient).balance == Decimal("50.00")
        _assert_consistent(patient)


def test_two_refunds_of_one_payment_at_once_never_give_back_more_than_it_took(
    world: Any, billers: Any
) -> None:
    a, b = billers
    for _ in range(ROUNDS):
        patient, _charge = _patient_owing_450(world, a)
        paid = services.record_payment(a, patient, method=Method.CARD, amount="500.00", reference="1")
        outcomes = _race(
            partial(services.refund, a, paid, amount="300.00", method=Method.CARD),
            partial(services.refund, b, paid, amount="300.00", method=Method.CARD),
        )
        refunds = [o for o in outcomes if isinstance(o, Payment)]
        refused = [o for o in outcomes if isinstance(o, DomainError)]
        assert len(refunds) == 1 and len(refused) == 1, outcomes
        assert "At most 200.00 of this payment can still be refunded." in str(refused[0])
        assert selectors.summary(patient).balance == Decimal("250.00")
        _assert_consistent(patient)


def test_a_write_off_and_a_payment_at_once_never_settle_a_charge_twice(world: Any, billers: Any) -> None:
    a, b = billers
    for _ in range(ROUNDS):
        patient, charge = _patient_owing_450(world, a)
        outcomes = _race(
            partial(
                services.adjust, a, charge, kind=AdjustmentKind.WRITE_OFF, amount="450.00", reason="hardship"
            ),
            partial(services.record_payment, b, patient, method=Method.CASH, amount="450.00"),
        )
        errors = [o for o in outcomes if isinstance(o, Exception)]
        if errors:  # the payment landed first: nothing is left open to write off
            (err,) = errors
            assert isinstance(err, DomainError) and "Only 0.00 is open on this charge." in str(err)
            assert selectors.summary(patient).balance == Decimal("0.00")
        else:  # the write-off landed first: the payment is all credit
            assert services.unapplied_credit(patient) == Decimal("450.00")
            assert selectors.summary(patient).balance == Decimal("-450.00")
        _assert_consistent(patient)


def test_the_first_two_payments_of_a_new_patient_at_once_open_one_account(world: Any, billers: Any) -> None:
    """No Account row yet: both postings create-or-get it at once; one creates it, the other waits for
    it and then locks it (services.account_for), and both payments stand as credit."""
    a, b = billers
    for _ in range(ROUNDS):
        patient = make_patient(world.clinic, care_team=[world.prescriber])
        outcomes = _race(
            partial(services.record_payment, a, patient, method=Method.CASH, amount="100.00"),
            partial(services.record_payment, b, patient, method=Method.CASH, amount="60.00"),
        )
        assert all(isinstance(o, Payment) for o in outcomes), outcomes
        assert Account.objects.filter(patient=patient).count() == 1
        assert services.unapplied_credit(patient) == Decimal("160.00")
        assert selectors.summary(patient).balance == Decimal("-160.00")
        _assert_consistent(patient)
