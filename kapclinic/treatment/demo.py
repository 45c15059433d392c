"""Demo treatment plans: a signed plan for every patient in active treatment or maintenance with a current
'eligible' decision. Esketamine nasal spray (label schedule) for the demo patient and every other patient
with at least two adequate failed trials; IV racemic ketamine (induction series) for the rest. Signed two
days after the eligibility decision (see kapclinic/intake/demo.py), through the real services."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from kapclinic.clinical.protocols import get_protocol
from kapclinic.clinical.terminology import BY_ICD10
from kapclinic.core import clock
from kapclinic.intake.demo import at_time, treatment_start
from kapclinic.intake.models import Assessment
from kapclinic.intake.selectors import eligibility_state
from kapclinic.treatment import services
from kapclinic.treatment.models import TreatmentPlan

GOALS = [
    "I want to get out of bed and enjoy mornings again.",
    "To feel less flat and reconnect with my kids.",
    "Be able to work a full week without dreading it.",
    "Worry less and sleep through the night.",
]


def demo_protocol_id(ctx: Any, n: int, patient: Any) -> str:
    trials = (
        Assessment.objects.filter(patient=patient).values_list("adequate_failed_trials", flat=True).first()
    )
    if patient == ctx.demo_patient or ((trials or 0) >= 2 and n % 2 == 1):
        return "esketamine-in-trd"
    return "ketamine-iv-racemic"


def seed(ctx: Any) -> None:
    if TreatmentPlan.objects.filter(patient__clinic=ctx.clinic).exists():
        return
    # The medical director sets what the protocols leave to the clinic before any plan is made on them.
    from kapclinic.sessions.medical_director import configure_protocols

    configure_protocols(ctx.clinic, ctx.staff["prescriber"])
    configure_protocols(ctx.other_clinic, None)
    actor = ctx.staff_actor("prescriber")
    now = clock.now()
    for n, patient in enumerate(ctx.patients):
        if patient.pathway_status not in ("active", "maintenance"):
            continue
        if not eligibility_state(patient).current_eligible:
            continue
        protocol = get_protocol(demo_protocol_id(ctx, n, patient))
        # The plan treats the patient's own charted diagnosis; esketamine's label is depression only.
        charted = patient.diagnoses.order_by("pk").values_list("icd10", flat=True).first()
        indication = BY_ICD10.get(charted or "", BY_ICD10["F33.1"])
        if protocol.route == "IN" and not indication.icd10.startswith(("F32", "F33")):
            indication = BY_ICD10["F33.1"]
        per_week = protocol.sessions.phases[0].sessions_per_week if protocol.sessions.phases else ()
        with at_time(treatment_start(patient, now) + dt.timedelta(days=2)):
            plan = services.plan_create(
                actor,
                patient,
                protocol=protocol,
                indication=indication,
                goals=ctx.rng.choice(GOALS),
                modality=ctx.rng.choice(["cbt", "psychodynamic", "act", "ifs"]),
                modality_other="",
                dosing_sessions=protocol.sessions.count.value or 6,
                sessions_per_week=per_week[0] if per_week else Decimal(2),
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
