from typing import Any

from kapclinic.testing.matrix import STAFF, Entry, patient_kwargs, patient_scoped, roles


def _medication(world: Any) -> dict[str, Any]:
    from kapclinic.patients.models import Medication

    med = Medication.objects.create(patient=world.patient, name="Sertraline", recorded_by=world.prescriber)
    return {"patient_id": world.patient.pk, "medication_id": med.pk}


def _restore_portal_account(world: Any) -> dict[str, Any]:
    """Before each persona's request: world.patient has its portal account again (an allowed persona's
    revoke deactivated it, which is the point of revoking; the next personas need the world intact)."""
    from kapclinic.accounts.models import User
    from kapclinic.patients.models import Patient

    User.objects.filter(pk=world.patient_user.pk).update(is_active=True, deactivated_at=None)
    Patient.objects.filter(pk=world.patient.pk).update(user=world.patient_user)
    return {}


VIEW = patient_scoped(("admin", "prescriber", "therapist", "nurse", "front_desk"))
EDIT_DEMO = patient_scoped(("admin", "prescriber", "therapist", "front_desk"))
TEAM = patient_scoped(("admin", "prescriber", "front_desk"))
CLINICAL_POST = patient_scoped(("prescriber", "therapist", "nurse"), ok=302)

MATRIX = {
    "patients:list": Entry(roles((*STAFF, "other_clinic_staff"))),
    "patients:new": Entry(roles(("admin", "prescriber", "front_desk", "other_clinic_staff"))),
    "patients:chart": Entry(VIEW, kwargs=patient_kwargs),
    "patients:timeline": Entry(VIEW, kwargs=patient_kwargs),
    "patients:edit": Entry(EDIT_DEMO, kwargs=patient_kwargs),
    "patients:care_team": Entry(TEAM, kwargs=patient_kwargs),
    "patients:add_diagnosis": Entry(CLINICAL_POST, kwargs=patient_kwargs, method="post"),
    "patients:add_medication": Entry(CLINICAL_POST, kwargs=patient_kwargs, method="post"),
    "patients:add_allergy": Entry(CLINICAL_POST, kwargs=patient_kwargs, method="post"),
    "patients:stop_medication": Entry(CLINICAL_POST, method="post", setup=_medication),
    "patients:portal_invite": Entry(
        patient_scoped(("admin", "prescriber", "therapist", "front_desk"), ok=302),
        kwargs=patient_kwargs,
        method="post",
    ),
    "patients:portal_revoke": Entry(
        patient_scoped(("admin", "prescriber", "therapist", "front_desk"), ok=302),
        kwargs=patient_kwargs,
        method="post",
        data=_restore_portal_account,
    ),
}
