"""The demo's controlled-substance records match its dosing sessions, add up, and show one open
discrepancy. Idempotent."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum

from kapclinic.inventory.models import Discrepancy, LedgerEntry, Registration
from kapclinic.sessions.models import Administration

pytestmark = pytest.mark.django_db


def test_demo_ledger_matches_the_sessions_and_adds_up() -> None:
    call_command("seed_demo", "--quiet-logins")
    lines = LedgerEntry.objects.count()
    call_command("seed_demo", "--quiet-logins")
    assert LedgerEntry.objects.count() == lines > 0 and Registration.objects.count() == 1
    given = Administration.objects.filter(administered_at__isnull=False)
    iv_mg = given.filter(devices__isnull=True).aggregate(t=Sum("dose_mg"))["t"] or Decimal(0)
    drawn_mg = LedgerEntry.objects.filter(kind="administration", unit="mg").aggregate(t=Sum("amount"))["t"]
    assert drawn_mg == iv_mg
    assert set(LedgerEntry.objects.filter(kind="administration").values_list("session_id", flat=True)) == set(
        given.values_list("session_id", flat=True)
    )
    assert Discrepancy.objects.filter(resolved_at__isnull=True).count() == 1
    out = io.StringIO()
    call_command("controlled_substances", "verify", stdout=out)
    assert "containers add up" in out.getvalue()
