from typing import Any

from kapclinic.testing.matrix import Entry, patient_scoped


def _assessment(world: Any) -> dict[str, Any]:
    return {"key": "intake.assessment", "object_id": world.patient.pk}


# A draft is kept by whoever may fill the form in (here the intake assessment: EDIT_CLINICAL on the
# patient); nobody has a draft yet, so the GET answers 204 and the discard 204 too.
MATRIX = {
    "drafts:draft": Entry(patient_scoped(("prescriber", "therapist", "nurse"), ok=204), kwargs=_assessment),
    "drafts:discard": Entry(
        patient_scoped(("prescriber", "therapist", "nurse"), ok=204), kwargs=_assessment, method="post"
    ),
}
