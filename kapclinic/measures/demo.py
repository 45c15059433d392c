"""Synthetic measures for the demo clinic: trajectories, an open and an acknowledged safety alert,
a safety plan for the demo patient. Idempotent: does nothing if the clinic already has paper responses."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from kapclinic.core import clock
from kapclinic.measures import services
from kapclinic.measures.models import InstrumentResponse, SafetyPlan
from kapclinic.patients.models import PathwayStatus

TREATED = {PathwayStatus.ACTIVE, PathwayStatus.MAINTENANCE, PathwayStatus.DISCHARGED}


def answers_for(
    total: int, n_items: int, per_item_max: int, rng: random.Random, fixed_last: int | None = None
) -> list[int]:
    """Random item answers summing to ``total`` (the last item pinned when ``fixed_last`` is given)."""
    answers = [0] * n_items
    free = n_items - 1 if fixed_last is not None else n_items
    if fixed_last is not None:
        answers[-1] = fixed_last
        total -= fixed_last
    total = max(0, min(total, free * per_item_max))
    for _ in range(total):
        choices = [i for i in range(free) if answers[i] < per_item_max]
        answers[rng.choice(choices)] += 1
    return answers


def _series(rng: random.Random, start: int, top: int, weeks: int, relapse: bool) -> list[int]:
    values, v = [start], float(start)
    for w in range(1, weeks):
        v = max(0.0, v * rng.uniform(0.7, 0.95) - rng.uniform(0, 1.5))
        if relapse and w == weeks - 1:
            v = start * rng.uniform(0.7, 0.9)
        values.append(min(top, round(v)))
    return values


def seed(ctx: Any) -> None:
    # Pre-session PHQ-9s from the sessions demo (emailed link, portal) may already exist: the marker of
    # this seeder is its paper forms.
    if InstrumentResponse.objects.filter(clinic=ctx.clinic, source="paper").exists():
        return
    rng = random.Random(3)
    now = clock.now()
    therapist = ctx.staff["therapist"]
    entered_by = ctx.staff["nurse"]
    actor = ctx.staff_actor("nurse")
    treated = [p for p in ctx.patients if p.pathway_status in TREATED]
    for n, patient in enumerate(treated):
        weeks = rng.randint(3, 9)
        start_at = now - dt.timedelta(weeks=weeks, days=1)
        relapse = n % 5 == 4
        plans = [("PHQ-9", 9, 3, rng.randint(12, 24))]
        if n % 2 == 0:
            plans.append(("GAD-7", 7, 3, rng.randint(9, 19)))
        if patient.diagnoses.filter(icd10__startswith="F43.1").exists():
            plans.append(("PCL-5", 20, 4, rng.randint(35, 60)))
        for key, n_items, top, start in plans:
            totals = _series(rng, start, n_items * top, weeks, relapse)
            for w, total in enumerate(totals):
                item9 = 0 if key != "PHQ-9" else (1 if (total >= 15 and rng.random() < 0.15) else 0)
                answers = answers_for(total, n_items, top, rng, fixed_last=item9 if key == "PHQ-9" else None)
                services.response_submit(
                    actor,
                    patient,
                    instrument=key,
                    version=None,
                    answers=answers,
                    source="paper",
                    entered_by=entered_by,
                    completed_at=start_at + dt.timedelta(weeks=w),
                )
    # Acknowledge all historical alerts except one recent urgent alert on the therapist's caseload.
    from kapclinic.measures.models import SafetyAlert

    ack_actor = ctx.staff_actor("therapist")
    for alert in SafetyAlert.objects.filter(clinic=ctx.clinic).select_related("patient"):
        services.alert_acknowledge(
            ack_actor, alert, action="called_patient", note="Synthetic demo follow-up call."
        )
    caseload = [p for p in treated if p.care_team.filter(user=therapist).exists() and p != ctx.demo_patient]
    if caseload:
        services.response_submit(
            actor,
            caseload[0],
            instrument="PHQ-9",
            version=None,
            answers=[2, 2, 1, 2, 1, 1, 1, 1, 2],
            source="paper",
            entered_by=entered_by,
            completed_at=now - dt.timedelta(hours=2),
        )
    if not SafetyPlan.objects.filter(patient=ctx.demo_patient).exists():
        services.safety_plan_save(
            ack_actor,
            ctx.demo_patient,
            {
                "warning_signs": "Staying in bed past noon; skipping meals; pulling away from friends.",
                "coping_strategies": "Walk by the river; breathing exercise from session; music playlist.",
                "people_and_places": "Sister (call or text); the public library; the climbing gym.",
                "professionals_and_crisis_lines": "Theo Therapist via the clinic line; 988 Suicide & Crisis "
                "Lifeline (call or text 988); emergency 911.",
                "making_environment_safe": "Medications kept by partner; weekly pill organiser.",
            },
            None,
        )
