"""Who may open each controlled-substance page (default clinic setting: prescribers hold stock)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kapclinic.testing.matrix import Entry, roles

READ = ("admin", "nurse", "prescriber")
HANDS = ("nurse", "prescriber")


def _receipt(world: Any) -> Any:
    from kapclinic.inventory.testing import receive

    return receive(world.prescriber, world.clinic)


def _receipt_kwargs(world: Any) -> dict[str, Any]:
    return {"receipt_id": _receipt(world).pk}


def _container(world: Any) -> dict[str, Any]:
    return {"container_id": _receipt(world).container_set.first().pk}


def _registration(world: Any) -> dict[str, Any]:
    from kapclinic.inventory.testing import make_registration

    make_registration(world.clinic)
    return {}


def _count(world: Any) -> Any:
    from kapclinic.inventory import services
    from kapclinic.testing.factories import actor_for

    c = _receipt(world).container_set.first()
    return services.record_count(
        actor_for(world.nurse, world.clinic),
        c.registration,
        timing="close",
        witness=world.prescriber,
        lines=[services.CountInput(c.pk, Decimal(1), True)],
    )


def _count_kwargs(world: Any) -> dict[str, Any]:
    return {"count_id": _count(world).pk}


def _discrepancy(world: Any) -> dict[str, Any]:
    return {"discrepancy_id": _count(world).lines.first().discrepancy.pk}


def _loss(world: Any) -> dict[str, Any]:
    from kapclinic.core import clock
    from kapclinic.inventory import services
    from kapclinic.inventory.testing import make_registration
    from kapclinic.testing.factories import actor_for

    report = services.open_loss_report(
        actor_for(world.prescriber, world.clinic),
        make_registration(world.clinic),
        discovered_at=clock.now(),
        description="Synthetic: one vial missing",
    )
    return {"report_id": report.pk}


OBJECT = roles(READ, other_clinic_staff=404)

MATRIX = {
    "inventory:index": Entry(roles(READ)),
    "inventory:registration_new": Entry(roles(("admin", "prescriber"))),
    "inventory:product_new": Entry(roles(("prescriber",))),
    "inventory:receive": Entry(roles(("prescriber",))),
    "inventory:receipt": Entry(OBJECT, setup=_receipt_kwargs),
    "inventory:container": Entry(OBJECT, setup=_container),
    "inventory:destroy": Entry(roles(("prescriber",), other_clinic_staff=404), setup=_container),
    "inventory:destructions": Entry(roles(READ)),
    "inventory:counts": Entry(roles(READ)),
    "inventory:count_new": Entry(roles(HANDS), setup=_registration),
    "inventory:count": Entry(OBJECT, setup=_count_kwargs),
    "inventory:discrepancies": Entry(roles(READ)),
    "inventory:discrepancy": Entry(OBJECT, setup=_discrepancy),
    "inventory:losses": Entry(roles(READ)),
    "inventory:loss_filed": Entry(
        roles(("prescriber",), ok=302, other_clinic_staff=404),
        method="post",
        setup=_loss,
        note="an empty POST names no filing: a message and a redirect",
    ),
    "inventory:settings": Entry(roles(("admin",))),
    "inventory:holidays": Entry(roles(READ)),
    "inventory:reports": Entry(roles(READ)),
    "inventory:receipt_log": Entry(roles(READ)),
    "inventory:administration_log": Entry(roles(READ)),
}
