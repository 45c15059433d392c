from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F

from kapclinic.audit.services import record_event
from kapclinic.clinical.eligibility import ReportStatus
from kapclinic.clinical.protocols import Protocol
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.concurrency import save_versioned
from kapclinic.core.errors import DomainError
from kapclinic.intake import selectors as intake_selectors
from kapclinic.patients.models import PathwayStatus, Patient
from kapclinic.patients.selectors import forget_caseload_counts
from kapclinic.patients.services import add_timeline_event
from kapclinic.treatment.models import PlanStatus, PlanTarget, ProposedAppointment, TreatmentPlan
from kapclinic.treatment.planning import propose_series
from kapclinic.treatment.selectors import plan_protocol, protocol_gaps


def protocol_findings(patient: Patient, protocol: Protocol) -> Any:
    """The eligibility report with the protocol's own rules applied (e.g. esketamine age >= 18)."""
    assessment = intake_selectors.assessment_for(patient)
    return intake_selectors.eligibility_report(assessment, patient, protocol)


def _check_usable(patient: Patient, protocol: Protocol) -> None:
    """A protocol missing a value the medical director must set (a maximum dose, an alert threshold...)
    cannot be used in a plan: the refusal names the values and the settings page."""
    gaps = protocol_gaps(patient.clinic_id, protocol.id, protocol.version)
    if gaps:
        raise DomainError(gaps)


def _check_eligibility(patient: Patient, protocol: Protocol) -> Any:
    state = intake_selectors.eligibility_state(patient)
    if not state.current_eligible:
        raise DomainError(
            (state.refusal or "There is no current eligibility decision.")
            + " A treatment plan needs a current decision of 'eligible'."
        )
    report = protocol_findings(patient, protocol)
    if report.status is ReportStatus.HARD_STOP:
        titles = ", ".join(f.title for f in report.hard_stops)
        raise DomainError(
            f"The protocol '{protocol.title}' cannot be used for this patient: hard stop ({titles})."
        )
    if report.status is ReportStatus.INCOMPLETE:
        titles = ", ".join(f.title for f in report.unanswered_hard_stops)
        raise DomainError(
            f"The protocol '{protocol.title}' needs an answer first to a hard-stop question: {titles}."
        )
    return state, report


def extra_review_items(patient: Patient, protocol: Protocol) -> list[Any]:
    """Review findings the chosen protocol adds to the signed general report."""
    state = intake_selectors.eligibility_state(patient)
    signed = set()
    if state.decision is not None:
        signed = {f["rule_id"] for f in state.decision.report.get("findings", [])}
    report = protocol_findings(patient, protocol)
    return [f for f in report.reviews if f.rule_id not in signed]


def plan_create(
    actor: Actor,
    patient: Patient,
    *,
    protocol: Protocol,
    indication: Any,
    goals: str,
    modality: str,
    modality_other: str,
    dosing_sessions: int,
    sessions_per_week: Decimal,
    targets: list[dict[str, Any]],
) -> TreatmentPlan:
    _check_usable(patient, protocol)
    state, _report = _check_eligibility(patient, protocol)
    series = propose_series(dosing_sessions, sessions_per_week)
    with transaction.atomic():
        plan = TreatmentPlan.objects.create(
            patient=patient,
            indication_icd10=indication.icd10,
            indication_snomed=indication.snomed,
            indication_text=indication.description,
            goals=goals.strip(),
            modality=modality,
            modality_other=modality_other.strip(),
            protocol_id=protocol.id,
            protocol_version=protocol.version,
            protocol_title=protocol.title,
            dosing_sessions=dosing_sessions,
            sessions_per_week=sessions_per_week,
            eligibility_decision=state.decision,
            created_by=actor.require_user(),
            created_at=clock.now(),
        )
        PlanTarget.objects.bulk_create(PlanTarget(plan=plan, **t) for t in targets)
        ProposedAppointment.objects.bulk_create(
            ProposedAppointment(plan=plan, sequence=p.sequence, kind=p.kind, week=p.week, label=p.label)
            for p in series
        )
        record_event(actor, "create", patient=patient, obj=plan, detail=f"protocol={protocol.key}")
        add_timeline_event(
            patient,
            kind="treatment.plan_drafted",
            title=f"Treatment plan drafted: {protocol.title}",
            actor=actor,
            ref=plan,
        )
    return plan


def plan_sign(
    actor: Actor, plan: TreatmentPlan, *, expected_version: int, protocol_rationale: str = ""
) -> None:
    """The prescriber signs the plan. Refused (a sentence) when the eligibility decision is missing,
    stale or not 'eligible', when the protocol hits a hard stop, or when a review item the protocol
    adds has no rationale."""
    patient = plan.patient
    if plan.status != PlanStatus.DRAFT:
        raise DomainError(f"Only a draft plan can be signed; this plan is '{plan.get_status_display()}'.")
    protocol = plan_protocol(plan)
    if protocol is None:
        raise DomainError(
            f"The protocol {plan.protocol_id} v{plan.protocol_version} is no longer in the library."
        )
    _check_usable(patient, protocol)
    state, _report = _check_eligibility(patient, protocol)
    extra = extra_review_items(patient, protocol)
    if extra and not protocol_rationale.strip():
        titles = ", ".join(f.title for f in extra)
        raise DomainError(f"The protocol adds review items that need your written rationale: {titles}.")
    with transaction.atomic():
        TreatmentPlan.objects.filter(patient=patient, status=PlanStatus.SIGNED).update(
            status=PlanStatus.SUPERSEDED, version=F("version") + 1
        )
        plan.status = PlanStatus.SIGNED
        plan.signed_by = actor.user
        plan.signed_at = clock.now()
        plan.eligibility_decision = state.decision
        plan.protocol_rationale = protocol_rationale.strip()
        save_versioned(
            plan,
            expected_version,
            ["status", "signed_by", "signed_at", "eligibility_decision", "protocol_rationale"],
        )
        # A patient in assessment starts treatment; one in maintenance (a new plan for the next series)
        # or already active keeps their stage.
        if Patient.objects.filter(
            pk=patient.pk, pathway_status__in=[PathwayStatus.INQUIRY, PathwayStatus.ASSESSMENT]
        ).update(pathway_status=PathwayStatus.ACTIVE, version=F("version") + 1):
            forget_caseload_counts(patient)
        detail = f"plan signed; proposals={plan.proposals.count()}" + (
            "; protocol rationale" if extra else ""
        )
        record_event(actor, "sign", patient=patient, obj=plan, detail=detail)
        add_timeline_event(
            patient,
            kind="treatment.plan_signed",
            title=(
                f"Treatment plan signed: {plan.protocol_title}; "
                f"{plan.proposals.count()} appointments proposed"
            ),
            actor=actor,
            ref=plan,
        )
