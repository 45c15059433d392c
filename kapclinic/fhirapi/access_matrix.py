"""The FHIR API in the authorization matrix (a signed-in browser session = user context).
Anonymous requests get 401 (an OperationOutcome with WWW-Authenticate), not the login redirect.
The full types x contexts x scopes matrix is kapclinic/fhirapi/tests/test_authorization.py."""

from __future__ import annotations

from typing import Any

from kapclinic.testing.matrix import Entry, expect, public


def _patient(world: Any) -> dict[str, Any]:
    return {"resource_type": "Patient", "resource_id": f"p{world.patient.pk}"}


MATRIX = {
    "fhirapi:metadata": Entry(public()),
    "fhirapi:read": Entry(
        expect(200, anonymous=401, therapist_other=403, other_patient_user=404, other_clinic_staff=404),
        kwargs=_patient,
    ),
    "fhirapi:search": Entry(
        expect(200, anonymous=401, admin=403, front_desk=403),
        kwargs=lambda world: {"resource_type": "Observation"},
    ),
}
