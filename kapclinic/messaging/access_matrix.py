from __future__ import annotations

from typing import Any

from kapclinic.testing.matrix import Entry, roles


def _failed_message(world: Any) -> dict[str, Any]:
    from kapclinic.messaging.models import MessageStatus, OutboundMessage

    message = OutboundMessage.objects.create(
        clinic=world.clinic,
        kind="staff_invite",
        to_email="someone@example.test",
        subject="Invitation",
        status=MessageStatus.FAILED,
        attempts=5,
        last_error_class="SMTPServerDisconnected",
    )
    return {"message_id": message.pk}


MATRIX = {
    "messaging:index": Entry(roles(("admin", "prescriber"))),
    # Another clinic's message is not found (404), never retried.
    "messaging:retry": Entry(
        roles(("admin", "prescriber"), ok=302, other_clinic_staff=404), method="post", setup=_failed_message
    ),
}
