"""Demo controlled-substance records: a registration, deliveries over the past months, a ledger that
matches the demo's dosing sessions (every administered dose drawn from a container), and one open
discrepancy from the last close-of-business count. Synthetic data only; runs after the sessions demo.

Products (docs/controlled-substances.md §7): ketamine 10 mg/mL x 20 mL vials (the demo's IV protocol
orders 10 mg/mL) and Spravato kits of 2 devices (the demo's 56 mg esketamine sessions).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from decimal import Decimal
from typing import Any

from kapclinic.accounts.models import Membership
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.inventory import services
from kapclinic.inventory.models import Container, Product, Registration
from kapclinic.inventory.testing import dea_number


def _actor(ctx: Any, user: Any) -> Actor:
    role = Membership.objects.get(user=user, clinic=ctx.clinic).role
    return Actor(user=user, clinic=ctx.clinic, role=role, request_id="seed-demo")


def seed(ctx: Any) -> None:
    if Registration.objects.filter(clinic=ctx.clinic).exists():
        return
    from kapclinic.sessions.models import Administration

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
    location = reg.locations.get()
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
    given = list(
        Administration.objects.filter(session__clinic=ctx.clinic, administered_at__isnull=False)
        .select_related("session__patient", "administered_by")
        .order_by("administered_at")
    )
    # deliveries: one per product per month with doses, the day before that month's first dose
    by_month: dict[tuple[str, dt.date], list[Any]] = defaultdict(list)
    for a in given:
        assert a.administered_at is not None
        by_month[("kit" if a.devices else "vial", a.administered_at.date().replace(day=1))].append(a)
    if given:  # the initial inventory, a zero inventory taken before the first delivery (§2)
        first = given[0].administered_at
        assert first is not None
        services.record_count(
            ctx.staff_actor("nurse"),
            reg,
            kind="initial",
            timing="opening",
            witness=ctx.staff["prescriber"],
            lines=[],
            taken_at=first - dt.timedelta(days=2),
        )
    supplier_dea = dea_number("RS", 731052)
    first_day = {key: min(a.administered_at.date() for a in items) for key, items in by_month.items()}
    for n, (key, items) in enumerate(sorted(by_month.items(), key=lambda kv: first_day[kv[0]])):
        product_key, _month = key
        received = first_day[key] - dt.timedelta(days=1)
        if product_key == "vial":
            need = sum((a.dose_mg for a in items), Decimal(0))
            count, delivered = math.ceil(need / 200) + 1, vial
        else:
            count, delivered = len(items) + 1, kit
        services.receive_delivery(
            prescriber,
            registration=reg,
            product=delivered,
            location=location,
            supplier="Synthetic Pharma Supply",
            supplier_dea_number=supplier_dea,
            invoice_number=f"SPS-{2026000 + n}",
            invoice_date=received,
            received_on=received,
            lot=f"DEMO{ctx.rng_for('inventory-lot', n).randint(10000, 99999)}",
            expiry=received + dt.timedelta(days=720),
            containers=count,
        )
    # every dose given is drawn from the open container, finishing it before the next one is opened
    # (a dose may take the rest of one vial and the start of the next: one ledger line each)
    for a in given:
        stocked = kit if a.devices else vial
        remaining = Decimal(a.devices) if a.devices else a.dose_mg
        actor = _actor(ctx, a.administered_by)
        for container in Container.objects.filter(registration=reg, product=stocked, balance__gt=0).order_by(
            "identifier"
        ):
            if remaining <= 0:
                break
            take = min(container.balance, remaining)
            services.record_entry(
                actor,
                container.pk,
                kind="administration",
                amount=take,
                unit="devices" if a.devices else "mg",
                session=a.session,
                patient=a.session.patient,
                route=a.route,
                at=a.administered_at,
            )
            remaining -= take
    # the last close-of-business count: the open vial estimated 2 mg short -> one open discrepancy
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
