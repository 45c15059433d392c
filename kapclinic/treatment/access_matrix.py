from typing import Any

from kapclinic.testing.matrix import Entry, patient_kwargs, patient_scoped, roles

LIBRARY = ("prescriber", "therapist", "nurse")


def _plan(world: Any) -> dict[str, Any]:
    from kapclinic.treatment.models import TreatmentPlan

    plan = TreatmentPlan.objects.create(
        patient=world.patient,
        indication_icd10="F33.1",
        indication_text="MDD",
        goals="Feel like myself",
        modality="cbt",
        protocol_id="ketamine-iv-racemic",
        protocol_version="1.0.0",
        protocol_title="IV",
        dosing_sessions=6,
        sessions_per_week=2,
        created_by=world.prescriber,
    )
    return {"patient_id": world.patient.pk, "plan_id": plan.pk}


MATRIX = {
    "treatment:index": Entry(roles(LIBRARY)),
    "treatment:protocol": Entry(
        roles(LIBRARY), kwargs=lambda w: {"protocol_id": "ketamine-iv-racemic", "version": "1.0.0"}
    ),
    "treatment:plan_new": Entry(patient_scoped(("prescriber",)), kwargs=patient_kwargs),
    "treatment:plan": Entry(patient_scoped(LIBRARY), setup=_plan),
    "treatment:plan_sign": Entry(
        patient_scoped(("prescriber",), ok=400), method="post", setup=_plan, data=lambda w: {"version": "1"}
    ),
}
