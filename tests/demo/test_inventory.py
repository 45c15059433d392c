"""The demo's controlled-substance records match its dosing sessions, add up, and show one open
discrepancy."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum

from kapclinic.inventory.models import Discrepancy, LedgerEntry, Registration
from kapclinic.sessions.models import Administration
from tests.demo.conftest import Seeded

pytestmark = [pytest.mark.django_db, pytest.mark.xdist_group("demo")]


def test_demo_ledger_matches_the_sessions_and_adds_up(demo: Seeded) -> None:
    lines = LedgerEntry.objects.count()
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


def test_demo_sessions_draw_from_stock_through_the_services(demo: Seeded) -> None:
    """Every demo dose has its session draw (the container chosen at dosing start), the IV residue is
    wasted with a witness, the used esketamine devices' disposal is recorded, and the administration's
    lot is its container's; two clinic holidays are recorded; verify passes."""
    from kapclinic.inventory.models import ClinicHoliday, SessionDraw

    given = Administration.objects.filter(administered_at__isnull=False).select_related("session")
    draws = {d.session_id: d for d in SessionDraw.objects.select_related("container")}
    assert given.exists() and set(draws) == {a.session_id for a in given}
    for a in given:
        assert a.lot_number == draws[a.session_id].container.lot
    for d in draws.values():
        if d.unit == "devices":
            assert d.devices_disposed_at is not None and d.devices_disposal_witness_id != d.by_id
    wastes = LedgerEntry.objects.filter(kind="waste", session__isnull=False)
    assert wastes.exists() and all(w.witness_id and w.witness_id != w.by_id for w in wastes)
    assert ClinicHoliday.objects.count() == 2
    out = io.StringIO()
    call_command("controlled_substances", "verify", stdout=out)
    assert "containers add up" in out.getvalue()
