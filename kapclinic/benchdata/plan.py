"""A deterministic skeleton of each synthetic patient's history, shared by every domain generator.

Proportions are those of a plausible outpatient KAP practice (synthetic, not clinical rules): most
records are past or ongoing treatment, a few are new inquiries. Each treated patient has an intake,
6-8 dosing sessions 3-7 days apart each followed by an integration session 1-3 days later, PHQ-9 and
GAD-7 weekly and PCL-5 every four weeks for 12-16 weeks from intake; maintenance patients keep a
four-weekly questionnaire rhythm up to today (and a maintenance dosing session every ~6 weeks over the
last six months), which gives the long histories the chart, timeline and portal must stay fast with.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

DAY = dt.timedelta(days=1)

# status, share of records, (min, max) days since the record was opened
STATUS_MIX: list[tuple[str, float, tuple[int, int]]] = [
    ("inquiry", 0.04, (0, 20)),
    ("assessment", 0.06, (5, 40)),
    ("active", 0.25, (21, 100)),
    ("maintenance", 0.25, (130, 1000)),
    ("discharged", 0.40, (130, 1000)),
]


@dataclass
class Visit:
    at: dt.datetime
    done: bool  # False: scheduled in the future


@dataclass
class PatientPlan:
    pk: int
    clinic_index: int
    status: str
    opened_at: dt.datetime
    prescriber_id: int | None = None
    therapist_id: int | None = None
    nurse_id: int | None = None
    user_id: int | None = None
    intake_at: dt.datetime | None = None
    decision_at: dt.datetime | None = None
    consent_at: dt.datetime | None = None
    dosing: list[Visit] = field(default_factory=list)
    integration: list[Visit] = field(default_factory=list)
    measures: list[tuple[str, dt.datetime]] = field(default_factory=list)
    discharged_at: dt.datetime | None = None
    # Symptom trajectory: baseline severity fraction and how much of it is left at the end.
    severity: float = 0.6
    residual: float = 0.5
    trauma: bool = False
    # Ids written by one domain for the next (e.g. appointment ids that notes point at).
    refs: dict[str, Any] = field(default_factory=dict)


def _at_hour(day: dt.datetime, rng: random.Random, first: int = 8, last: int = 16) -> dt.datetime:
    return day.replace(
        hour=rng.randint(first, last), minute=rng.choice((0, 15, 30, 45)), second=0, microsecond=0
    )


def pick_status(rng: random.Random) -> tuple[str, tuple[int, int]]:
    x = rng.random()
    acc = 0.0
    for status, share, span in STATUS_MIX:
        acc += share
        if x < acc:
            return status, span
    return STATUS_MIX[-1][0], STATUS_MIX[-1][2]


def build_plan(
    pk: int, clinic_index: int, rng: random.Random, now: dt.datetime, *, long_history: bool = False
) -> PatientPlan:
    status, (lo, hi) = pick_status(rng)
    if long_history:
        status, (lo, hi) = "maintenance", (700, 730)
    opened = _at_hour(now - rng.randint(lo, hi) * DAY, rng)
    plan = PatientPlan(pk=pk, clinic_index=clinic_index, status=status, opened_at=opened)
    plan.severity = rng.uniform(0.45, 0.9)
    plan.residual = rng.choice((0.25, 0.4, 0.55, 0.8, 1.0))
    plan.trauma = rng.random() < 0.35
    if status == "inquiry":
        return plan
    plan.intake_at = _at_hour(opened + rng.randint(2, 7) * DAY, rng)
    if plan.intake_at > now:
        plan.intake_at = opened + dt.timedelta(hours=2)
    weeks = rng.randint(12, 16)
    end = opened + weeks * 7 * DAY
    for week in range(weeks + 1):
        t = _at_hour(plan.intake_at + week * 7 * DAY, rng, 7, 21)
        plan.measures.append(("PHQ-9", t))
        plan.measures.append(("GAD-7", t + dt.timedelta(minutes=4)))
        if week % 4 == 0:
            plan.measures.append(("PCL-5", t + dt.timedelta(minutes=8)))
    if status == "assessment":
        plan.measures = [m for m in plan.measures if m[1] <= now][:3]
        return plan
    plan.decision_at = plan.intake_at + rng.randint(2, 6) * DAY
    plan.consent_at = plan.decision_at + rng.randint(1, 4) * DAY
    t = _at_hour(plan.consent_at + rng.randint(3, 8) * DAY, rng, 8, 13)
    for _ in range(rng.randint(6, 8)):
        plan.dosing.append(Visit(t, t < now))
        it = _at_hour(t + rng.randint(1, 3) * DAY, rng, 9, 17)
        plan.integration.append(Visit(it, it < now))
        t = _at_hour(t + rng.randint(3, 7) * DAY, rng, 8, 13)
    if status == "maintenance":
        extra = end + 28 * DAY
        while extra < now:
            tm = _at_hour(extra, rng, 7, 21)
            plan.measures += [("PHQ-9", tm), ("GAD-7", tm + dt.timedelta(minutes=4))]
            plan.measures.append(("PCL-5", tm + dt.timedelta(minutes=8)))
            extra += 28 * DAY
        # Maintenance dosing every ~6 weeks over the last six months (and the next one booked).
        # Staggered by the record (not the random stream, which the rest of the plan draws from): had
        # every maintenance patient been dosed on the same day, no clinic could staff it.
        md = _at_hour(max(end + 42 * DAY, now - 180 * DAY) + (pk * 7919 % 42) * DAY, rng, 8, 13)
        while md < now + 30 * DAY:
            plan.dosing.append(Visit(md, md < now))
            it = _at_hour(md + 2 * DAY, rng, 9, 17)
            plan.integration.append(Visit(it, it < now))
            md = _at_hour(md + 42 * DAY, rng, 8, 13)
    if status == "discharged":
        plan.discharged_at = min(end + rng.randint(1, 14) * DAY, now - DAY)
        plan.dosing = [v for v in plan.dosing if v.at < plan.discharged_at]
        plan.integration = [v for v in plan.integration if v.at < plan.discharged_at]
        plan.measures = [m for m in plan.measures if m[1] < plan.discharged_at]
    # Only questionnaires already answered exist; future visits stay scheduled.
    plan.measures = [m for m in plan.measures if m[1] <= now]
    return plan


def symptom_fraction(plan: PatientPlan, at: dt.datetime, rng: random.Random) -> float:
    """Share of the maximum score at time `at`: starts at `severity`, decays towards
    severity * residual over ~10 weeks, with noise. Synthetic shape, not a clinical model."""
    if plan.intake_at is None:
        return plan.severity
    weeks = max(0.0, (at - plan.intake_at).total_seconds() / (7 * 86400))
    progress = min(1.0, weeks / 10)
    target = plan.severity * (1 - progress * (1 - plan.residual))
    return max(0.0, min(1.0, target + rng.gauss(0, 0.07)))
