from __future__ import annotations

from typing import Any

from kapclinic.testing.matrix import Entry, patient_kwargs, patient_scoped, public, roles


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

# Issue 17, text messages: the patient's number, choice, consent and STOP are demographics (who may edit
# the chart's contact details may record them); the provider's STOP webhook is public and answers only
# with the twilio backend and a valid signature (404 with the console backend the tests run).
DEMOGRAPHICS = ("admin", "prescriber", "therapist", "nurse", "front_desk")
MATRIX["messaging:sms"] = Entry(patient_scoped(DEMOGRAPHICS), kwargs=patient_kwargs)
MATRIX["messaging:sms_inbound"] = Entry(public(404), method="post", note="provider webhook, signed")
