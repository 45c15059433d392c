"""The demo has billing identifiers, a fee schedule and a few accounts whose ledgers add up;
the demo patient can download a superbill."""

from __future__ import annotations

import pytest

from kapclinic.billing import selectors
from kapclinic.billing.models import ChargeLine, FeeItem, Payment
from kapclinic.clinical.billing import ledger as core
from kapclinic.core.demo import PATIENT_LOGIN
from kapclinic.patients.models import Patient
from tests.demo.conftest import Seeded

pytestmark = [pytest.mark.django_db, pytest.mark.xdist_group("demo")]


def test_demo_accounts_add_up(demo: Seeded) -> None:
    assert FeeItem.objects.exists() and ChargeLine.objects.exists() and Payment.objects.exists()
    for patient in Patient.objects.filter(charge_lines__isnull=False).distinct():
        s = selectors.summary(patient)
        assert s.balance == core.totals([]).charges + s.totals.balance  # a Decimal, cents
        _, rows = selectors.ledger(patient)
        assert rows[-1].balance == s.balance
    me = Patient.objects.get(user__email=PATIENT_LOGIN)
    lines = ChargeLine.objects.filter(patient=me, status="posted")
    assert lines.exists()
    first, last = min(x.service_date for x in lines), max(x.service_date for x in lines)
    assert selectors.superbill(me, first, last).lines
