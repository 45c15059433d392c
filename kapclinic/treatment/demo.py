"""Demo treatment plans: a signed IV induction plan for patients in active treatment."""

from __future__ import annotations

from typing import Any

from kapclinic.clinical.protocols import get_protocol
from kapclinic.clinical.terminology import BY_ICD10
from kapclinic.intake.selectors import eligibility_state
from kapclinic.treatment import services
from kapclinic.treatment.models import TreatmentPlan

GOALS = [
    "I want to get out of bed and enjoy mornings again.",
    "To feel less flat and reconnect with my kids.",
    "Be able to work a full week without dreading it.",
    "Worry less and sleep through the night.",
]


def seed(ctx: Any) -> None:
    if TreatmentPlan.objects.filter(patient__clinic=ctx.clinic).exists():
        return
    actor = ctx.staff_actor("prescriber")
    iv = get_protocol("ketamine-iv-racemic")
    for patient in ctx.patients:
        if patient.pathway_status not in ("active", "maintenance"):
            continue
        if not eligibility_state(patient).current_eligible:
            continue
        plan = services.plan_create(
            actor,
            patient,
            protocol=iv,
            indication=BY_ICD10["F33.1"],
            goals=ctx.rng.choice(GOALS),
            modality=ctx.rng.choice(["cbt", "psychodynamic", "act", "ifs"]),
            modality_other="",
            dosing_sessions=6,
            sessions_per_week=iv.sessions.phases[0].sessions_per_week[0],
            targets=[
                {
                    "instrument": "PHQ-9",
                    "comparator": "lt",
                    "value": 10,
                    "timepoint": "after the induction series",
                }
            ],
        )
        services.plan_sign(actor, plan, expected_version=plan.version)
