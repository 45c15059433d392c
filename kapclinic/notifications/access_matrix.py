"""The bell is for staff (each sees only what their role handles; front desk usually nothing)."""

from __future__ import annotations

from typing import Any

from kapclinic.testing.matrix import Entry, roles

STAFF = ("admin", "prescriber", "therapist", "nurse", "front_desk")


def _failed(world: Any) -> dict[str, Any]:
    from kapclinic.messaging.models import MessageStatus, OutboundMessage

    message = OutboundMessage.objects.create(
        clinic=world.clinic,
        kind="staff_invite",
        to_email="x@example.test",
        subject="Invitation",
        status=MessageStatus.FAILED,
        attempts=5,
    )
    return {"key": f"delivery:{message.pk}"}


MATRIX = {
    "notifications:index": Entry(roles(STAFF)),
    "notifications:badge": Entry(roles(STAFF)),
    "notifications:read_all": Entry(roles(STAFF, ok=302), method="post"),
    # A failed email is a notification for admins and prescribers of its clinic only: not found otherwise.
    "notifications:open": Entry(
        roles(STAFF, ok=404, admin=302, prescriber=302, other_clinic_staff=404), setup=_failed
    ),
}
