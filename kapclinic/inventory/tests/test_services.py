"""Inventory services: receipt, ledger lines, refusals, counts, discrepancies, loss, destruction."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from kapclinic.audit.models import AuditEvent
from kapclinic.core import clock
from kapclinic.core.errors import DomainError
from kapclinic.inventory import services
from kapclinic.inventory.models import Container, Discrepancy, LedgerEntry
from kapclinic.inventory.services import CountInput
from kapclinic.inventory.testing import dea_number, make_device_product, receive
from kapclinic.testing.factories import actor_for, make_staff

pytestmark = pytest.mark.django_db


def _vial(world: Any, **kw: Any) -> Container:
    receipt = receive(world.prescriber, world.clinic, **kw)
    return Container.objects.get(receipt=receipt)


def test_receipt_opens_each_container_with_its_labelled_content(world: Any, clock_frozen: Any) -> None:
    receipt = receive(world.prescriber, world.clinic, containers=3)
    containers = list(Container.objects.filter(receipt=receipt))
    assert [c.identifier for c in containers] == ["K-0001", "K-0002", "K-0003"]
    assert all(c.balance == 500 for c in containers)
    assert "LOT-A1" in containers[0].label_text and "CIII" in containers[0].label_text
    line = LedgerEntry.objects.get(container=containers[0])
    assert (line.kind, line.amount_mg, line.amount_ml, line.balance_after) == (
        "receipt",
        Decimal(500),
        Decimal(10),
        Decimal(500),
    )


def test_nurse_may_not_receive_and_bad_supplier_dea_is_refused(world: Any, clock_frozen: Any) -> None:
    with pytest.raises(DomainError, match="may not receive"):
        receive(world.nurse, world.clinic)
    from kapclinic.inventory.testing import make_registration, make_vial_product

    reg = make_registration(world.clinic)
    with pytest.raises(DomainError, match="check digit"):
        services.receive_delivery(
            actor_for(world.prescriber, world.clinic),
            registration=reg,
            product=make_vial_product(world.clinic),
            location=reg.locations.first(),
            supplier="X",
            supplier_dea_number="RS1234568",
            invoice_number="1",
            invoice_date=clock.today(),
            received_on=clock.today(),
            lot="L",
            expiry=clock.today(),
            containers=1,
        )
    assert Container.objects.count() == 0


def test_administration_waste_and_balance(world: Any, clock_frozen: Any) -> None:
    c = _vial(world)
    nurse = actor_for(world.nurse, world.clinic)
    services.record_entry(
        nurse, c.pk, kind="administration", amount="70", unit="mg", patient=world.patient, route="IM"
    )
    e = services.record_entry(nurse, c.pk, kind="waste", amount="0.1", unit="mL", witness=world.prescriber)
    c.refresh_from_db()
    assert c.balance == 425 and e.amount_mg == 5 and e.balance_after == 425
    events = AuditEvent.objects.filter(detail__startswith="inventory.")
    assert events.filter(detail="inventory.administration", patient=world.patient).count() == 1


@pytest.mark.parametrize(
    ("kwargs", "sentence"),
    [
        ({"kind": "administration", "amount": "600", "unit": "mg"}, "more than the container holds"),
        ({"kind": "administration", "amount": "1", "unit": "devices"}, "mg or mL, not devices"),
        ({"kind": "administration", "amount": "-5", "unit": "mg"}, "cannot be negative"),
        ({"kind": "waste", "amount": "1", "unit": "mg", "witness": "self"}, "different person"),
        ({"kind": "waste", "amount": "1", "unit": "mg"}, "needs a second person"),
    ],
)
def test_bad_entries_are_refused_and_nothing_is_stored(
    world: Any, clock_frozen: Any, kwargs: dict[str, Any], sentence: str
) -> None:
    c = _vial(world)
    if kwargs.get("witness") == "self":
        kwargs["witness"] = world.nurse
    with pytest.raises(DomainError, match=sentence):
        services.record_entry(actor_for(world.nurse, world.clinic), c.pk, **kwargs)
    assert LedgerEntry.objects.filter(container=c).count() == 1


def test_expired_container_refused_for_administration(world: Any, clock_frozen: Any) -> None:
    c = _vial(world, expiry=clock.today() + dt.timedelta(days=1))
    clock.advance(dt.timedelta(days=3))
    with pytest.raises(DomainError, match="expired"):
        services.record_entry(actor_for(world.nurse, world.clinic), c.pk, kind="administration", amount="5")


def test_ledger_rows_are_append_only(world: Any, clock_frozen: Any) -> None:
    c = _vial(world)
    line = LedgerEntry.objects.get(container=c)
    with pytest.raises(PermissionError):
        line.save()
    with pytest.raises(PermissionError):
        line.delete()
    with pytest.raises(PermissionError):
        LedgerEntry.objects.filter(pk=line.pk).update(reason="x")


def test_reversal_by_a_prescriber_only(world: Any, clock_frozen: Any) -> None:
    c = _vial(world)
    services.record_entry(actor_for(world.nurse, world.clinic), c.pk, kind="administration", amount="70")
    with pytest.raises(DomainError, match="prescribers only"):
        services.record_entry(
            actor_for(world.nurse, world.clinic),
            c.pk,
            kind="reversal",
            reverses_seq=2,
            witness=world.prescriber,
            reason="wrong vial",
        )
    rev = services.record_entry(
        actor_for(world.prescriber, world.clinic),
        c.pk,
        kind="reversal",
        reverses_seq=2,
        witness=world.nurse,
        reason="wrong vial",
    )
    assert rev.balance_after == 500 and rev.reverses is not None and rev.reverses.seq == 2


def test_count_that_disagrees_opens_a_discrepancy_resolved_by_a_prescriber(
    world: Any, clock_frozen: Any
) -> None:
    c = _vial(world)
    nurse = actor_for(world.nurse, world.clinic)
    with pytest.raises(DomainError, match="future"):
        services.record_count(
            nurse,
            c.registration,
            timing="close",
            witness=world.prescriber,
            lines=[CountInput(c.pk, Decimal(500), True)],
            taken_at=clock.now() + dt.timedelta(hours=1),
        )
    count = services.record_count(
        nurse,
        c.registration,
        timing="close",
        witness=world.prescriber,
        lines=[CountInput(c.pk, Decimal(490), True)],
    )
    d = Discrepancy.objects.get(count_line__count=count)
    assert d.difference == -10 and d.is_open
    with pytest.raises(DomainError, match="prescribers only"):
        services.resolve_discrepancy(nurse, d.pk, explanation="x")
    with pytest.raises(DomainError, match="explanation"):
        services.resolve_discrepancy(actor_for(world.prescriber, world.clinic), d.pk, explanation=" ")
    services.resolve_discrepancy(
        actor_for(world.prescriber, world.clinic), d.pk, explanation="Miscount; recounted 500 mg."
    )
    d.refresh_from_db()
    assert not d.is_open


def test_loss_deadlines() -> None:
    # discovered Friday 2026-03-06: notice due Monday 03-09, Form 106 due 45 days later (§6)
    assert services.loss_deadlines(dt.date(2026, 3, 6)) == (dt.date(2026, 3, 9), dt.date(2026, 4, 20))


def test_destruction_needs_two_distinct_witnesses(world: Any, clock_frozen: Any) -> None:
    c = _vial(world)
    pres = actor_for(world.prescriber, world.clinic)
    with pytest.raises(DomainError, match="two different people"):
        services.destroy(
            pres,
            c.pk,
            method="on_site",
            place="Clinic",
            reason="Expired",
            witness_1=world.nurse,
            witness_2=world.nurse,
        )
    nurse2 = make_staff(world.clinic, "nurse")
    d = services.destroy(
        pres,
        c.pk,
        method="on_site",
        place="Clinic",
        reason="Expired",
        witness_1=world.nurse,
        witness_2=nurse2,
    )
    c.refresh_from_db()
    assert c.balance == 0 and d.entry.amount_mg == 500 and c.closed_at is not None


def test_device_pack(world: Any, clock_frozen: Any) -> None:
    receipt = receive(world.prescriber, world.clinic, product=make_device_product(world.clinic, 3))
    c = Container.objects.get(receipt=receipt)
    assert c.identifier.startswith("S-") and c.balance == 3
    e = services.record_entry(
        actor_for(world.nurse, world.clinic), c.pk, kind="administration", amount=2, unit="devices"
    )
    assert e.devices == 2 and e.amount_mg == 56 and e.balance_after == 1
    with pytest.raises(DomainError, match="counted in devices"):
        services.record_entry(
            actor_for(world.nurse, world.clinic), c.pk, kind="administration", amount=28, unit="mg"
        )


def test_dea_number_helper_passes_the_check() -> None:
    from kapclinic.clinical.ledger import dea_number_problem

    assert dea_number_problem(dea_number()) is None


postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL only")


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_nurses_drawing_at_once_never_produce_a_wrong_balance(world: Any) -> None:
    c = _vial(world)
    nurses = [world.nurse, make_staff(world.clinic, "nurse")] * 4  # 8 draws of 70 mg from 500 mg
    barrier = threading.Barrier(len(nurses))
    outcomes: list[object] = []

    def draw(user: Any) -> None:
        try:
            barrier.wait()
            outcomes.append(
                services.record_entry(actor_for(user, world.clinic), c.pk, kind="administration", amount="70")
            )
        except Exception as exc:
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=draw, args=(u,)) for u in nurses]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [o for o in outcomes if isinstance(o, LedgerEntry)]
    refused = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(ok) == 7 and len(refused) == 1, outcomes  # 7 x 70 = 490 <= 500; the 8th would go below zero
    c.refresh_from_db()
    balances = list(
        LedgerEntry.objects.filter(container=c).order_by("seq").values_list("balance_after", flat=True)
    )
    assert balances == [500 - 70 * i for i in range(8)] and c.balance == 10


def test_draw_for_administration_links_the_session_and_patient(world: Any, clock_frozen: Any) -> None:
    from kapclinic.sessions.models import DosingSession

    session = DosingSession.objects.create(
        clinic=world.clinic,
        patient=world.patient,
        protocol_id="ketamine-iv",
        protocol_version="1",
        scheduled_for=clock.now(),
        created_by=world.prescriber,
    )
    c = _vial(world, expiry=clock.today() + dt.timedelta(days=1))
    nurse = actor_for(world.nurse, world.clinic)
    entry = services.draw_for_administration(
        nurse, container_id=c.pk, amount_mg=Decimal("35"), session=session, route="IV"
    )
    assert (entry.session, entry.patient, entry.route, entry.balance_after) == (
        session,
        world.patient,
        "IV",
        Decimal(465),
    )
    clock.advance(dt.timedelta(days=3))
    with pytest.raises(DomainError, match="expired"):
        services.draw_for_administration(
            nurse, container_id=c.pk, amount_mg=Decimal("35"), session=session, route="IV"
        )
    with pytest.raises(DomainError, match="session is not in this clinic"):
        services.draw_for_administration(
            actor_for(world.other_clinic_staff, world.other_clinic),
            container_id=c.pk,
            amount_mg=Decimal("1"),
            session=session,
            route="IV",
        )
    with pytest.raises(DomainError, match="counted in devices"):
        pack = Container.objects.get(
            receipt=receive(world.prescriber, world.clinic, product=make_device_product(world.clinic))
        )
        services.draw_for_administration(
            nurse, container_id=pack.pk, amount_mg=Decimal("56"), session=session, route="IN"
        )


def test_db_triggers_refuse_raw_update_and_delete_of_ledger_lines(world: Any, clock_frozen: Any) -> None:
    from importlib import import_module

    from django.db import DatabaseError, transaction

    triggers = import_module("kapclinic.inventory.migrations.0002_ledger_append_only_triggers")
    c = _vial(world)
    line = LedgerEntry.objects.get(container=c)
    up = {"sqlite": triggers.SQLITE_UP, "postgresql": triggers.PG_UP}[connection.vendor]
    down = {"sqlite": triggers.SQLITE_DOWN, "postgresql": triggers.PG_DOWN}[connection.vendor]
    with connection.cursor() as cursor:
        for statement in up:
            cursor.execute(statement)
    try:
        for sql in (
            "UPDATE inventory_ledgerentry SET amount = 1 WHERE id = %s",
            "DELETE FROM inventory_ledgerentry WHERE id = %s",
        ):
            with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, [line.pk])
    finally:
        with connection.cursor() as cursor:
            for statement in down:
                cursor.execute(statement)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_deliveries_at_once_number_their_containers_without_a_clash(world: Any) -> None:
    from kapclinic.inventory.testing import make_registration, make_vial_product

    reg, product = make_registration(world.clinic), make_vial_product(world.clinic)
    barrier = threading.Barrier(4)
    outcomes: list[object] = []

    def deliver() -> None:
        try:
            barrier.wait()
            outcomes.append(
                receive(world.prescriber, world.clinic, registration=reg, product=product, containers=3)
            )
        except Exception as exc:
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    ids = sorted(Container.objects.filter(registration=reg).values_list("identifier", flat=True))
    assert ids == [f"K-{i:04d}" for i in range(1, 13)]
