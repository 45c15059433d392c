"""Synthetic measures for the demo clinic: a believable course of treatment for every patient in treatment,
maintenance or discharged, an open safety alert and acknowledged ones, a safety plan for the demo patient.

The story (planned here by ``plan_courses``, shared with kapclinic/sessions/demo.py), on the suggested
measurement schedule (ref §6.3):

* baseline PHQ-9 and, for about half the patients (all with generalised anxiety), GAD-7, plus PCL-5 when
  the patient has a PTSD diagnosis ("if trauma history"), entered on paper at the intake assessment,
  before the first dosing session;
* a PHQ-9 the evening before every dosing session ("before each dosing session"). The sessions demo
  stores those, because each session's gate needs one;
* GAD-7 again before the 3rd session (this clinic's own addition) and the 6th (end of the IV series,
  "full battery"), PCL-5 before the 6th session or the latest one so far, and a discharge review (the
  full battery) about a week after the last session of discharged patients;
* most patients respond after 2-4 sessions, some remit, two do not respond (one of them has today's open
  urgent item-9 alert), and one patient in maintenance relapses before a maintenance session.

Every total is computed by the real scoring (kapclinic.clinical.instruments) from generated item answers
and stored through ``services.response_submit``, which records the sessions before each response and the
outcome verdicts (kapclinic.clinical.outcomes, the clinic's rules). The planner only aims its targets with
the same outcome rules so the story holds. Deterministic (``ctx.rng_for``) and idempotent: does nothing
if the clinic already has paper responses (this seeder's baselines).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kapclinic.clinical import outcomes
from kapclinic.clinical.instruments import get_instrument
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.intake.demo import at_time
from kapclinic.intake.models import Assessment
from kapclinic.measures import hooks, services
from kapclinic.measures.models import InstrumentResponse, SafetyAlert, SafetyPlan
from kapclinic.patients.models import CareTeamMember, Diagnosis, PathwayStatus

TREATED = {PathwayStatus.ACTIVE, PathwayStatus.MAINTENANCE, PathwayStatus.DISCHARGED}

#: The emailed pre-session PHQ-9 is answered the evening before the session.
PRE_SESSION_LEAD = dt.timedelta(hours=16)
#: Sessions before a GAD-7 / PCL-5 follow-up (taken with the pre-session PHQ-9 of the next session).
GAD7_AFTER = (2, 5)
PCL5_AFTER = 5
#: Discharged patients: a review this long after their last dosing session.
DISCHARGE_REVIEW_AFTER = dt.timedelta(days=6)

RESPONDER, REMITTER, NON_RESPONDER, RELAPSE = "responder", "remitter", "non_responder", "relapse"

#: The demo patient's (portal login) PHQ-9, readable on their portal chart: baseline 19, then before each
#: session; a response (>= 50 % drop, ref §4.4) after 3 sessions, 5 this morning (not yet remission).
DEMO_PHQ9_BASELINE = 19
DEMO_PHQ9 = (18, 15, 12, 9, 8, 7, 5)


@dataclass(frozen=True)
class Course:
    """One patient's planned course: ``totals[key][s]`` is the target total of ``key`` answered after
    ``s`` dosing sessions (s = 0 .. sessions), ``baseline[key]`` the intake total."""

    kind: str
    respond_after: int | None
    sessions: int
    baseline: dict[str, int] = field(default_factory=dict)
    totals: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def total(self, key: str, sessions_before: int) -> int:
        series = self.totals[key]
        return series[min(sessions_before, len(series) - 1)]


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


def instrument_answers(key: str, total: int, rng: random.Random, item9: int = 0) -> list[int]:
    """Answers to the scored items of ``key`` adding up to ``total`` (PHQ-9: item 9 = ``item9``). The
    stored total is whatever the scoring makes of them."""
    inst = get_instrument(key)
    scored = [i for i in inst.items if i.scored]
    top = max(o.score for o in scored[0].options)
    return answers_for(total, len(scored), top, rng, fixed_last=item9 if key == "PHQ-9" else None)


def submit(
    actor: Actor,
    patient: Any,
    key: str,
    total: int,
    at: dt.datetime,
    rng: random.Random,
    *,
    source: str,
    entered_by: Any = None,
    item9: int = 0,
) -> InstrumentResponse:
    """Store one administration through the measures service (scored there)."""
    return services.response_submit(
        actor,
        patient,
        instrument=key,
        version=None,
        answers=instrument_answers(key, total, rng, item9),
        source=source,
        entered_by=entered_by,
        completed_at=at,
    )


# ---------------------------------------------------------------- the plan


def _fit(
    total: int,
    baseline: int,
    top: int,
    cfg: outcomes.OutcomeSettings,
    *,
    response: bool,
    remission: bool,
) -> int:
    """Move ``total`` the least needed so the real outcome rules give the planned verdicts (remission
    False: stay at or above the cut-off when that keeps the response verdict)."""
    t = min(max(total, 0), top)
    while bool(outcomes.is_response(baseline, t, cfg)) is not response:
        t += -1 if response else 1
        if not 0 <= t <= top:
            return min(max(total, 0), top)  # unreachable for the baselines used here
    if remission:
        t = min(t, cfg.remission_below - 1)
    elif outcomes.is_remission(t, cfg):
        raised = cfg.remission_below
        if raised <= top and bool(outcomes.is_response(baseline, raised, cfg)) is response:
            t = raised
    return t


def _trajectory(
    key: str,
    baseline: int,
    course: Course,
    relapse_at: int | None,
    cfg: outcomes.OutcomeSettings,
    rng: random.Random,
) -> tuple[int, ...]:
    top = get_instrument(key).max_total
    r = course.respond_after
    values: list[int] = []
    for s in range(course.sessions + 1):
        remission = False
        if course.kind == NON_RESPONDER or r is None:
            frac, response = (rng.uniform(0.9, 1.0) if s == 0 else rng.uniform(0.7, 0.92)), False
        elif relapse_at is not None and s >= relapse_at:
            frac, response = rng.uniform(0.7, 0.85), False
        elif s < r:
            frac, response = 1.0 - 0.45 * s / r * rng.uniform(0.85, 1.0) - rng.uniform(0, 0.06), False
        elif s == r:
            frac, response = rng.uniform(0.36, 0.48), True
        elif course.kind == REMITTER:
            frac, response, remission = rng.uniform(0.05, 0.2), True, True
        else:
            frac, response = rng.uniform(0.3, 0.45), True
        values.append(
            _fit(round(baseline * frac), baseline, top, cfg, response=response, remission=remission)
        )
    return tuple(values)


#: Synthetic intake totals: moderate to severe depression and anxiety; PCL-5 above the probable-PTSD
#: cut-off (33, ref §4.3).
BASELINE_RANGE = {"PHQ-9": (15, 23), "GAD-7": (10, 18), "PCL-5": (38, 58)}


def plan_courses(ctx: Any, sessions: Mapping[int, int]) -> dict[int, Course]:
    """The course of every patient in treatment, maintenance or discharged, given how many dosing
    sessions each has had (patient id -> count). Same input, same plan: the sessions and measures demos
    both call it. Assigns one relapse (the maintenance patient with the most sessions), two
    non-responders (the last active patient on the therapist's caseload, the first discharged patient)
    and responders or remitters to everyone else."""
    treated = [p for p in ctx.patients if p.pathway_status in TREATED]
    ids = [p.pk for p in treated]
    caseload = set(
        CareTeamMember.objects.filter(patient_id__in=ids, user=ctx.staff["therapist"]).values_list(
            "patient_id", flat=True
        )
    )
    dx: dict[int, set[str]] = {}
    for pid, code in Diagnosis.objects.filter(patient_id__in=ids, status="active").values_list(
        "patient_id", "icd10"
    ):
        dx.setdefault(pid, set()).add(code)
    settings = {key: services.outcome_settings_for(ctx.clinic, key) for key in BASELINE_RANGE}

    def count(p: Any) -> int:
        return sessions.get(p.pk, 0)

    maintenance = [p for p in treated if p.pathway_status == PathwayStatus.MAINTENANCE and count(p) >= 4]
    relapse = max(maintenance, key=lambda p: (count(p), -p.pk)) if maintenance else None
    active = [
        p
        for p in treated
        if p.pathway_status == PathwayStatus.ACTIVE
        and p != ctx.demo_patient
        and p.pk in caseload
        and count(p) >= 3
    ]
    discharged = [p for p in treated if p.pathway_status == PathwayStatus.DISCHARGED and count(p) >= 3]
    non_responders = {p.pk for p in (active[-1:] + discharged[:1])}

    courses: dict[int, Course] = {}
    for p in treated:
        rng = ctx.rng_for("measures-course", p.mrn)
        n = count(p)
        chosen = rng.choice([2, 3, 3, 4])  # sessions before the first response
        r: int | None = chosen
        relapse_at: int | None = None
        if p == ctx.demo_patient:
            kind, r = RESPONDER, 3
        elif p.pk in non_responders:
            kind, r = NON_RESPONDER, None
        elif p == relapse:
            kind = RELAPSE
            relapse_at = n - 1  # the PHQ-9 before the last (maintenance) session
            r = max(1, min(chosen, relapse_at - 2))
        else:
            kind = REMITTER if rng.random() < 0.4 else RESPONDER
        if r is not None and n >= 3:
            r = min(r, n - 1)
        keys = ["PHQ-9"]
        codes = dx.get(p.pk, set())
        if p == ctx.demo_patient or "F41.1" in codes or rng.random() < 0.5:
            keys.append("GAD-7")
        if any(c.startswith("F43.1") for c in codes):
            keys.append("PCL-5")  # "if trauma history" (ref §6.3)
        course = Course(kind, r, n)
        for key in keys:
            low, high = BASELINE_RANGE[key]
            course.baseline[key] = rng.randint(low, high)
            course.totals[key] = _trajectory(
                key, course.baseline[key], course, relapse_at, settings[key], rng
            )
        if p == ctx.demo_patient:
            course.baseline["PHQ-9"] = DEMO_PHQ9_BASELINE
            course.totals["PHQ-9"] = tuple(DEMO_PHQ9[min(s, len(DEMO_PHQ9) - 1)] for s in range(n + 1))
        courses[p.pk] = course
    return courses


# ---------------------------------------------------------------- the seeder


def _intake_time(patient: Any, first_dose: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    """The intake assessment (the paper baselines are entered there), before any dosing session."""
    done = Assessment.objects.filter(patient=patient).values_list("clinician_completed_at", flat=True).first()
    latest = (first_dose - dt.timedelta(days=1)) if first_dose else now - dt.timedelta(hours=1)
    return min(done, latest) if done else min(latest, now - dt.timedelta(days=21))


def seed(ctx: Any) -> None:
    # Pre-session PHQ-9s from the sessions demo (emailed link, portal) already exist: the marker of this
    # seeder is its paper forms.
    if InstrumentResponse.objects.filter(clinic=ctx.clinic, source="paper").exists():
        return
    now = clock.now()
    nurse = ctx.staff_actor("nurse")
    entered_by = ctx.staff["nurse"]
    link = Actor(user=None, clinic=ctx.clinic, role="patient_link", request_id="seed-demo")
    treated = [p for p in ctx.patients if p.pathway_status in TREATED]
    doses = hooks.dosing_times([p.pk for p in treated])
    courses = plan_courses(ctx, {pid: len(times) for pid, times in doses.items()})
    minute = dt.timedelta(minutes=1)

    def store(
        patient: Any, key: str, total: int, at: dt.datetime, rng: random.Random, paper: bool, item9: int = 0
    ) -> None:
        with at_time(at + 5 * minute):  # every stamp (audit, timeline, alert) dated when it was entered
            submit(
                nurse if paper else link,
                patient,
                key,
                total,
                at,
                rng,
                source="paper" if paper else "email_link",
                entered_by=entered_by if paper else None,
                item9=item9,
            )

    for patient in treated:
        course = courses[patient.pk]
        times = doses.get(patient.pk, [])
        rng = ctx.rng_for("measures-answers", patient.mrn)
        intake = _intake_time(patient, times[0] if times else None, now)
        for i, (key, total) in enumerate(course.baseline.items()):
            # Item 9 now and then at a high baseline: a historical alert, acknowledged below.
            item9 = 1 if key == "PHQ-9" and total >= 18 and rng.random() < 0.25 else 0
            store(patient, key, total, intake + i * minute, rng, paper=True, item9=item9)
        pcl5_after = min(PCL5_AFTER, len(times) - 1) if len(times) >= 4 else None
        for s, dose in enumerate(times):  # s sessions came before this one
            evening = dose - PRE_SESSION_LEAD + 2 * minute  # with the emailed pre-session PHQ-9
            if "GAD-7" in course.totals and s in GAD7_AFTER:
                store(patient, "GAD-7", course.total("GAD-7", s), evening, rng, paper=False)
            if "PCL-5" in course.totals and s == pcl5_after:
                store(patient, "PCL-5", course.total("PCL-5", s), evening + minute, rng, paper=False)
        if patient.pathway_status == PathwayStatus.DISCHARGED and times:
            review = times[-1] + DISCHARGE_REVIEW_AFTER
            if review < now - dt.timedelta(hours=1):
                for i, key in enumerate(course.totals):
                    total = course.total(key, len(times))
                    store(patient, key, total, review + i * minute, rng, paper=True)

    # Every historical alert was acknowledged a few hours after it was raised.
    for alert in SafetyAlert.objects.filter(clinic=ctx.clinic, acknowledged_at__isnull=True).select_related(
        "patient"
    ):
        on_caseload = alert.patient.care_team.filter(user=ctx.staff["therapist"]).exists()
        actor = ctx.staff_actor("therapist" if on_caseload else "prescriber")
        with at_time(min(alert.raised_at + dt.timedelta(hours=3), now - minute)):
            services.alert_acknowledge(
                actor, alert, action="called_patient", note="Synthetic demo follow-up call."
            )
    # Today's open urgent alert: a non-responder on the therapist's caseload with no session today
    # answered item 9 with "more than half the days" two hours ago.
    # An open alert blocks the PHQ-9 item of a dosing gate: prefer someone with no dosing booked.
    booked = set(hooks.next_dosing([p.pk for p in treated]))
    candidates = [
        p
        for p in treated
        if courses[p.pk].kind == NON_RESPONDER
        and p.pathway_status == PathwayStatus.ACTIVE
        and p.care_team.filter(user=ctx.staff["therapist"]).exists()
    ]
    candidates.sort(key=lambda p: (p.pk in booked, p.pk))
    if candidates:
        patient = candidates[0]
        at = now - dt.timedelta(hours=2)
        rng = ctx.rng_for("measures-alert", patient.mrn)
        s = len(doses.get(patient.pk, []))
        store(patient, "PHQ-9", courses[patient.pk].total("PHQ-9", s), at, rng, paper=False, item9=2)
    if not SafetyPlan.objects.filter(patient=ctx.demo_patient).exists():
        services.safety_plan_save(
            ctx.staff_actor("therapist"),
            ctx.demo_patient,
            data={
                "warning_signs": "Staying in bed past noon; skipping meals; pulling away from friends.",
                "coping_strategies": "Walk by the river; breathing exercise from session; music playlist.",
                "people_and_places": "Sister (call or text); the public library; the climbing gym.",
                "professionals_and_crisis_lines": "Theo Therapist via the clinic line; 988 Suicide & Crisis "
                "Lifeline (call or text 988); emergency 911.",
                "making_environment_safe": "Medications kept by partner; weekly pill organiser.",
            },
            expected_version=None,
        )
