"""Demo intake data: inquiries in the queue, assessments and signed eligibility decisions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kapclinic.clinical.eligibility import load_rule_set
from kapclinic.core import clock
from kapclinic.intake import services
from kapclinic.intake.models import Assessment, ContactTime, Inquiry
from kapclinic.patients.models import Patient

STRUGGLES = [
    "Depression that has not lifted despite two medications.",
    "Anxiety and low mood since a difficult year.",
    "My doctor mentioned ketamine therapy and I would like to know more.",
    "Trauma-related symptoms; therapy alone has not been enough.",
]


@contextmanager
def at_time(when: dt.datetime) -> Iterator[None]:
    """Run the real services as if it were ``when`` (every stamp, audit and timeline row is dated then),
    then put the application clock back where it was."""
    delta = when - clock.now()
    clock.advance(delta)
    try:
        yield
    finally:
        clock.advance(-delta)


def treatment_start(patient: Patient, now: dt.datetime) -> dt.datetime:
    """When the demo pathway was signed off for a patient in treatment: eligibility at this time, consent
    a day later, the plan two days later, all before the first seeded dosing session (10-13 days ago)."""
    return max(patient.created_at + dt.timedelta(hours=1), now - dt.timedelta(days=24))


def seed(ctx: Any) -> None:
    if Inquiry.objects.filter(clinic=ctx.clinic).exists():
        return
    for i in range(6):
        Inquiry.objects.create(
            clinic=ctx.clinic,
            name=ctx.faker.name(),
            email=ctx.faker.safe_email(),
            phone=ctx.faker.numerify("(555) 01#-####"),
            preferred_contact_time=ctx.rng.choice(ContactTime.values),
            message=ctx.rng.choice(STRUGGLES),
            consent_to_contact=True,
            submission_token=f"demo-{i}",
            client_key=f"demo-{i}",
            created_at=clock.now() - clock_days(ctx.rng.randint(0, 6)),
        )
    prescriber = ctx.staff_actor("prescriber")
    now = clock.now()
    for n, patient in enumerate(ctx.patients):
        if patient.pathway_status == "inquiry":
            continue
        answers = dict.fromkeys(load_rule_set().question_ids, "no")
        if patient.pathway_status == "assessment" and n % 3 == 0:
            answers.pop("bp_rise_serious_hazard")  # an unanswered hard-stop question
        if patient.pathway_status == "assessment" and n % 3 == 1:
            answers["psychosis_family_history"] = "yes"
        treated = patient.pathway_status in ("active", "maintenance", "discharged")
        done = treatment_start(patient, now) - dt.timedelta(hours=2) if treated else now
        assessment = Assessment.objects.create(
            patient=patient,
            answers=answers,
            patient_answers={k: v for k, v in answers.items() if k != "bp_rise_serious_hazard"},
            patient_submitted_at=done,
            adequate_failed_trials=3 if patient == ctx.demo_patient else ctx.rng.choice([1, 2, 2, 3, 4]),
            prior_psychotherapy="yes",
            prior_ect="no",
            prior_tms=ctx.rng.choice(["no", "no", "yes"]),
            medications_reviewed="yes",
            systolic_bp=ctx.rng.randint(108, 138),
            diastolic_bp=ctx.rng.randint(66, 88),
            heart_rate=ctx.rng.randint(58, 90),
            spo2=ctx.rng.randint(96, 99),
            weight_kg=ctx.rng.randint(52, 105),
            height_cm=ctx.rng.randint(155, 192),
            updated_by=ctx.staff["prescriber"],
            clinician_completed_at=done,
            updated_at=done,
        )
        if treated:
            with at_time(treatment_start(patient, now)):
                services.decision_sign(
                    prescriber,
                    patient,
                    shown_version=assessment.version,
                    decision="eligible",
                    reason="No exclusion; benefits discussed and outweigh risks.",
                    rationales={},
                )


def clock_days(days: int) -> Any:
    return dt.timedelta(days=days, hours=days * 3)
