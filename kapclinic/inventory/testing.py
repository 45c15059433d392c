"""Helpers for tests, the access matrix and browser tests (synthetic data only)."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

from kapclinic.accounts.models import Role
from kapclinic.core import clock

_seq = itertools.count(100001)


def dea_number(letters: str = "BK", six: int | None = None) -> str:
    """A synthetic registration number that passes the check digit (docs/controlled-substances.md §9)."""
    digits = [int(c) for c in f"{six if six is not None else next(_seq):06d}"[-6:]]
    check = (digits[0] + digits[2] + digits[4] + 2 * (digits[1] + digits[3] + digits[5])) % 10
    return letters + "".join(map(str, digits)) + str(check)


def make_registration(clinic: Any) -> Any:
    from kapclinic.inventory.models import Registration, StorageLocation

    reg = Registration.objects.create(
        clinic=clinic,
        dea_number=dea_number(),
        registrant="Dr. Test Registrant",
        expires_on=clock.today() + dt.timedelta(days=400),
    )
    StorageLocation.objects.create(registration=reg, name="Locked cabinet A")
    return reg


def make_vial_product(clinic: Any, concentration: str = "50", volume: str = "10") -> Any:
    from kapclinic.inventory.models import Product

    return Product.objects.create(
        clinic=clinic,
        name="Ketamine HCl injection",
        ndc="55150-439-10",
        kind="vial",
        concentration_mg_per_ml=Decimal(concentration),
        volume_ml=Decimal(volume),
    )


def make_device_product(clinic: Any, devices: int = 2) -> Any:
    from kapclinic.inventory.models import Product

    return Product.objects.create(
        clinic=clinic,
        name="Spravato (esketamine) nasal spray",
        ndc="50458-028-02",
        kind="device_pack",
        devices_per_pack=devices,
        device_strength_mg=Decimal(28),
    )


def receive(
    user: Any,
    clinic: Any,
    registration: Any = None,
    product: Any = None,
    containers: int = 1,
    expiry: dt.date | None = None,
    lot: str = "LOT-A1",
) -> Any:
    """A delivery received through the real service by ``user`` (a stock role)."""
    from kapclinic.inventory import services
    from kapclinic.testing.factories import actor_for

    registration = registration or make_registration(clinic)
    product = product or make_vial_product(clinic)
    return services.receive_delivery(
        actor_for(user, clinic),
        registration=registration,
        product=product,
        location=registration.locations.first(),
        supplier="Synthetic Wholesale Inc.",
        supplier_dea_number=dea_number("RS"),
        invoice_number="INV-1",
        invoice_date=clock.today(),
        received_on=clock.today(),
        lot=lot,
        expiry=expiry or clock.today() + dt.timedelta(days=365),
        containers=containers,
    )


def stock_for_session(
    session: Any, *, containers: int = 1, expiry: dt.date | None = None, lot: str = "LOT-A1"
) -> int:
    """The pk of a container the session's dose can be drawn from: the clinic's stock of the right kind
    (a vial, or an esketamine pack of 3), received now through the real service when there is none."""
    from kapclinic.accounts.models import Membership
    from kapclinic.inventory import services
    from kapclinic.inventory.models import Product, Registration
    from kapclinic.sessions.services import protocol_for

    form = protocol_for(session).dose.form
    found = [c for c in services.stock_for_form(session.clinic, form) if c.lot == lot]
    if found and expiry is None:
        return found[0].pk
    kind = services.STOCKED_FORMS[form]
    clinic = session.clinic
    stock_user = (
        Membership.objects.filter(clinic=clinic, role=Role.PRESCRIBER, is_active=True)
        .select_related("user")
        .first()
    )
    assert stock_user is not None, "the clinic needs a prescriber to receive stock"
    registration = Registration.objects.filter(clinic=clinic).first() or make_registration(clinic)
    product = Product.objects.filter(clinic=clinic, kind=kind).first() or (
        make_vial_product(clinic) if kind == "vial" else make_device_product(clinic, devices=3)
    )
    receipt = receive(
        stock_user.user, clinic, registration, product, containers=containers, expiry=expiry, lot=lot
    )
    return int(receipt.container_set.order_by("identifier").first().pk)
