import secrets
from typing import Any

from kapclinic.testing.matrix import Entry, expect, patient_kwargs, patient_scoped, roles

QUEUE = ("admin", "front_desk", "prescriber", "therapist", "nurse")
CONVERT = ("admin", "front_desk", "prescriber")


def _inquiry(world: Any) -> dict[str, Any]:
    from kapclinic.intake.models import Inquiry

    inquiry = Inquiry.objects.create(
        clinic=world.clinic,
        name="Matrix Person",
        email="m@example.test",
        submission_token=secrets.token_hex(8),  # unique per clinic; setups run again on one world
        client_key="k",
        consent_to_contact=True,
    )
    return {"inquiry_id": inquiry.pk}


MATRIX = {
    "intake:index": Entry(roles(QUEUE)),
    "intake:inquiry": Entry(roles(QUEUE, other_clinic_staff=404), setup=_inquiry),
    "intake:convert": Entry(roles(CONVERT, other_clinic_staff=404), setup=_inquiry),
    "intake:questionnaire": Entry(expect(403, patient_user=200, other_patient_user=200)),
    "intake:assessment": Entry(patient_scoped(("prescriber", "therapist", "nurse")), kwargs=patient_kwargs),
    "intake:eligibility": Entry(patient_scoped(("prescriber", "therapist", "nurse")), kwargs=patient_kwargs),
}
