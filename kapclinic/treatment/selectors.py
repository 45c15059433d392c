"""Reads for treatment plans, and the dosing-readiness check other apps call."""

from __future__ import annotations

from kapclinic.clinical.protocols import Protocol, UnknownProtocol, get_protocol
from kapclinic.patients.models import Patient
from kapclinic.treatment.models import PlanStatus, TreatmentPlan


def signed_plan(patient: Patient) -> TreatmentPlan | None:
    return (
        TreatmentPlan.objects.filter(patient=patient, status=PlanStatus.SIGNED)
        .select_related("signed_by")
        .order_by("-signed_at", "-id")
        .first()
    )


def plans_for(patient: Patient) -> list[TreatmentPlan]:
    return list(
        TreatmentPlan.objects.filter(patient=patient)
        .select_related("created_by", "signed_by")
        .order_by("-created_at")[:20]
    )


def plan_protocol(plan: TreatmentPlan) -> Protocol | None:
    try:
        return get_protocol(plan.protocol_id, plan.protocol_version)
    except UnknownProtocol:
        return None


def dosing_readiness(patient: Patient) -> tuple[bool, list[str]]:
    """May this patient be dosed? Needs a signed treatment plan, current consent (the clinic's current
    version) and a current eligibility decision of 'eligible' (not made stale by an intake change).

    Returns (ok, reasons); each reason is a sentence saying what is missing. Used by scheduling and
    sessions before booking or starting a dosing session."""
    from kapclinic.consent.selectors import consent_state
    from kapclinic.intake.selectors import eligibility_state

    reasons: list[str] = []
    eligibility = eligibility_state(patient)
    if not eligibility.current_eligible:
        reasons.append(eligibility.refusal or "There is no current eligibility decision.")
    consent = consent_state(patient)
    if not consent.current:
        reasons.append(consent.refusal or "Consent is not current.")
    plan = signed_plan(patient)
    if plan is None:
        reasons.append("There is no signed treatment plan.")
    return (not reasons, reasons)
