"""Demo controlled-substance records: a registration, deliveries over the past months, a ledger that
matches the demo's dosing sessions, one open discrepancy from the last close-of-business count, and a
couple of clinic holidays (they move the loss-report deadlines). Synthetic data only.

The sessions demo (kapclinic.sessions.demo) draws every dose it gives from this stock through the same
services a nurse uses (sessions.services.dosing_start_from_stock, the residue wasted with a witness,
esketamine devices' disposal recorded): ``container_for`` finds the container, receiving a delivery the
morning of the dose when nothing on hand holds it. ``seed`` (after the sessions demo) takes the count.

Products (docs/controlled-substances.md §7): ketamine 10 mg/mL x 20 mL vials (the demo's IV protocol
orders 10 mg/mL) and Spravato kits of 2 devices (the demo's 56 mg esketamine sessions).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from kapclinic.core import clock
from kapclinic.inventory import services
from kapclinic.inventory.models import (
    ClinicHoliday,
    Container,
    Count,
    LedgerEntry,
    Product,
    Receipt,
    Registration,
)
from kapclinic.inventory.testing import dea_number

#: Drawn into the syringe beyond an IV dose and wasted with a witness (the demo's syringe residue).
RESIDUE_MG = Decimal(1)
#: Containers per demo delivery.
VIALS_PER_DELIVERY, KITS_PER_DELIVERY = 5, 4


def ensure_setup(ctx: Any, first_dose_at: dt.datetime | None = None) -> tuple[Registration, Product, Product]:
    """The demo registration and its two products (created once), and the initial inventory: a zero
    inventory taken two days before the first dose (§2). Idempotent."""
    reg = Registration.objects.filter(clinic=ctx.clinic).first()
    if reg is not None:
        return (
            reg,
            Product.objects.get(clinic=ctx.clinic, kind="vial"),
            Product.objects.get(clinic=ctx.clinic, kind="device_pack"),
        )
    prescriber = ctx.staff_actor("prescriber")
    reg = services.create_registration(
        prescriber,
        dea_number=dea_number("BP", 482913),
        registrant=ctx.staff["prescriber"].full_name,
        expires_on=clock.today() + dt.timedelta(days=540),
        schedules="3,3N,4,5",
        address="Demo clinic, dosing suite",
        location_names=["Locked cabinet, dosing suite"],
    )
    vial = Product.objects.create(
        clinic=ctx.clinic,
        name="Ketamine HCl injection",
        ndc="42023-113-10",
        kind="vial",
        concentration_mg_per_ml=Decimal(10),
        volume_ml=Decimal(20),
    )
    kit = Product.objects.create(
        clinic=ctx.clinic,
        name="Spravato (esketamine) nasal spray",
        ndc="50458-028-02",
        kind="device_pack",
        devices_per_pack=2,
        device_strength_mg=Decimal(28),
    )
    services.record_count(
        ctx.staff_actor("nurse"),
        reg,
        kind="initial",
        timing="opening",
        witness=ctx.staff["prescriber"],
        lines=[],
        taken_at=(first_dose_at or clock.now()) - dt.timedelta(days=2),
    )
    return reg, vial, kit


def container_for(ctx: Any, form: str, *, dose_mg: Decimal | None, devices: int | None) -> int:
    """The container a demo dose is drawn from (clock: the dose's time): the earliest-expiring one on
    hand that holds the dose and its residue; when none does, a delivery received 90 minutes before."""
    from kapclinic.intake.demo import at_time

    need = Decimal(devices) if devices else (dose_mg or Decimal(0)) + RESIDUE_MG
    now = clock.now()
    for c in services.stock_for_form(ctx.clinic, form):
        # not one another patient's session dosed at this same moment has just used (its lines stay in
        # time order)
        last = LedgerEntry.objects.filter(container=c).order_by("-seq").values_list("at", flat=True).first()
        if c.balance >= need and (last is None or last <= now):
            return c.pk
    reg, vial, kit = ensure_setup(ctx, now)
    n = Receipt.objects.filter(registration=reg).count()
    with at_time(now - dt.timedelta(minutes=90)):
        received = clock.today()
        receipt = services.receive_delivery(
            ctx.staff_actor("prescriber"),
            registration=reg,
            product=kit if devices else vial,
            location=reg.locations.get(),
            supplier="Synthetic Pharma Supply",
            supplier_dea_number=dea_number("RS", 731052),
            invoice_number=f"SPS-{2026000 + n}",
            invoice_date=received,
            received_on=received,
            lot=f"DEMO{ctx.rng_for('inventory-lot', n).randint(10000, 99999)}",
            expiry=received + dt.timedelta(days=720),
            containers=KITS_PER_DELIVERY if devices else VIALS_PER_DELIVERY,
        )
    return Container.objects.filter(receipt=receipt).order_by("identifier").values_list("pk", flat=True)[0]


HOLIDAYS = [((12, 25), "Christmas Day"), ((1, 1), "New Year's Day")]


def _holidays(ctx: Any) -> None:
    """The next Christmas Day and New Year's Day as clinic holidays (they move loss-report deadlines)."""
    admin = ctx.staff_actor("admin")
    today = clock.today()
    for (month, day), name in HOLIDAYS:
        when = dt.date(today.year, month, day)
        if when < today:
            when = when.replace(year=today.year + 1)
        if not ClinicHoliday.objects.filter(clinic=ctx.clinic, day=when).exists():
            services.add_holiday(admin, day=when, name=name)


def seed(ctx: Any) -> None:
    """After the sessions demo (which drew its doses from stock): the last close-of-business count,
    with the open vial estimated 2 mg short, so one discrepancy is open; and the holidays."""
    _holidays(ctx)
    reg, vial, _kit = ensure_setup(ctx)
    if Count.objects.filter(registration=reg, timing="close").exists():
        return
    on_hand = list(Container.objects.filter(registration=reg, balance__gt=0).select_related("product"))
    if not on_hand:
        return
    opened = next(
        (c for c in on_hand if c.opened_at is not None and c.product_id == vial.pk and c.balance >= 2), None
    )
    lines = []
    for c in on_hand:
        counted = c.balance - 2 if c is opened else c.balance
        lines.append(services.CountInput(c.pk, counted, exact=c.opened_at is None))
    close = dt.datetime.combine(clock.today() - dt.timedelta(days=1), dt.time(22, 0), tzinfo=dt.UTC)
    services.record_count(
        ctx.staff_actor("nurse"),
        reg,
        timing="close",
        witness=ctx.staff["prescriber"],
        lines=lines,
        taken_at=close,
    )
