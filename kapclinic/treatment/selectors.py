"""Reads for treatment plans, and the dosing-readiness check other apps call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from django.db.models import Case, Value, When
from django.utils import timezone

from kapclinic.clinical.protocols import Protocol, UnknownProtocol, get_protocol
from kapclinic.core.sentinel import NOT_READ
from kapclinic.patients.models import Patient
from kapclinic.treatment.models import PlanStatus, TreatmentPlan

if TYPE_CHECKING:
    from kapclinic.consent.selectors import ConsentState
    from kapclinic.intake.selectors import EligibilityState


def signed_plan(patient: Patient) -> TreatmentPlan | None:
    return (
        TreatmentPlan.objects.filter(patient=patient, status=PlanStatus.SIGNED)
        .select_related("signed_by")
        .order_by("-signed_at", "-id")
        .first()
    )


#: What the chart's pathway panel shows of a plan and the readiness sentence reads of the signed one.
_SUMMARY_FIELDS = (
    "id",
    "patient_id",
    "status",
    "protocol_id",
    "protocol_version",
    "protocol_title",
    "created_at",
    "signed_at",
    "signed_by__full_name",
    "signed_by__email",
)


def recent_and_signed_plans(
    patient: Patient, recent: int = 3
) -> tuple[list[TreatmentPlan], TreatmentPlan | None]:
    """The ``recent`` newest plans (newest first) and ``signed_plan(patient)``, for the chart's pathway
    panel, in one query of at most ``recent + 1`` rows with only the shown columns.

    The signed plan sorts first, then the others newest first: signing a plan supersedes the previous
    signed one, so those rows hold the signed plan and every plan among the newest. Should two signed
    plans ever be found, the two plain queries answer instead."""
    signed_first = Case(When(status=PlanStatus.SIGNED, then=Value(0)), default=Value(1))
    rows = list(
        TreatmentPlan.objects.filter(patient_id=patient.pk)
        .select_related("signed_by")
        .only(*_SUMMARY_FIELDS)
        .order_by(signed_first, "-created_at")[: recent + 1]
    )
    if len(rows) > 1 and rows[1].status == PlanStatus.SIGNED:
        newest = TreatmentPlan.objects.filter(patient_id=patient.pk).only("id", "status", "protocol_title")
        return list(newest.order_by("-created_at")[:recent]), signed_plan(patient)
    signed = rows[0] if rows and rows[0].status == PlanStatus.SIGNED else None
    return sorted(rows, key=lambda p: p.created_at, reverse=True)[:recent], signed


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


def clinic_protocol(clinic_id: int, protocol_id: str, version: str | None = None) -> Protocol:
    """The protocol with the clinic's medical-director settings applied (sessions owns those values)."""
    from kapclinic.sessions.services import clinic_protocol as with_settings

    return with_settings(clinic_id, protocol_id, version=version)


def protocol_gaps(clinic_id: int, protocol_id: str, version: str | None = None) -> str | None:
    """A sentence naming what the medical director must still set before the protocol can be used in a
    plan, a booking or a dosing session (None when it is usable); it names the settings page."""
    from kapclinic.sessions.services import protocol_gaps_sentence

    try:
        protocol = clinic_protocol(clinic_id, protocol_id, version)
    except UnknownProtocol:
        return f"The protocol {protocol_id} v{version} is no longer in the library."
    return protocol_gaps_sentence(protocol)


@dataclass(frozen=True)
class ReadinessItem:
    """One of the three things a dosing session needs: ``ok`` and a sentence saying why (or why not)."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class DosingReadiness:
    """Signed plan, current consent and current eligibility, each with its reason; plus the plan itself."""

    signed_plan: ReadinessItem
    consent_current: ReadinessItem
    eligibility_current: ReadinessItem
    plan: TreatmentPlan | None

    @property
    def ok(self) -> bool:
        return self.signed_plan.ok and self.consent_current.ok and self.eligibility_current.ok

    @property
    def reasons(self) -> list[str]:
        items = (self.eligibility_current, self.consent_current, self.signed_plan)
        return [i.detail for i in items if not i.ok]


def readiness_detail(
    patient: Patient,
    *,
    eligibility: EligibilityState | None = None,
    consent: ConsentState | None = None,
    plan: TreatmentPlan | object | None = NOT_READ,  # not None: None is "no signed plan"
) -> DosingReadiness:
    """Item by item: is there a signed treatment plan, current consent (the clinic's current version) and a
    current eligibility decision of 'eligible' (not made stale by an intake change)?

    A caller that already holds ``eligibility_state(patient)`` / ``consent_state(patient)`` /
    ``signed_plan(patient)`` (None included) passes them so they are not computed twice (the chart's
    pathway panel, issue #7)."""
    from kapclinic.consent.selectors import consent_state
    from kapclinic.intake.selectors import eligibility_state

    eligibility = eligibility if eligibility is not None else eligibility_state(patient)
    if eligibility.current_eligible and eligibility.decision is not None:
        d = eligibility.decision
        elig = ReadinessItem(
            True, f"Eligible: signed by {d.signed_by} on {timezone.localtime(d.signed_at):%Y-%m-%d}."
        )
    else:
        elig = ReadinessItem(False, eligibility.refusal or "There is no current eligibility decision.")
    consent = consent if consent is not None else consent_state(patient)
    if consent.current and consent.signature is not None and consent.document is not None:
        sig = consent.signature
        cons = ReadinessItem(
            True,
            f"Consent version {consent.document.version} signed on "
            f"{timezone.localtime(sig.signed_at):%Y-%m-%d}.",
        )
    else:
        cons = ReadinessItem(False, consent.refusal or "Consent is not current.")
    plan = signed_plan(patient) if plan is NOT_READ else cast("TreatmentPlan | None", plan)
    if plan is None:
        plan_item = ReadinessItem(False, "There is no signed treatment plan.")
    else:
        when = f" on {timezone.localtime(plan.signed_at):%Y-%m-%d}" if plan.signed_at else ""
        gaps = protocol_gaps(patient.clinic_id, plan.protocol_id, plan.protocol_version)
        plan_item = (
            ReadinessItem(False, gaps)
            if gaps
            else ReadinessItem(True, f"{plan.protocol_title}: signed by {plan.signed_by}{when}.")
        )
    return DosingReadiness(plan_item, cons, elig, plan)


def dosing_readiness(patient: Patient) -> tuple[bool, list[str]]:
    """May this patient be dosed? Needs a signed treatment plan, current consent (the clinic's current
    version) and a current eligibility decision of 'eligible' (not made stale by an intake change).

    Returns (ok, reasons); each reason is a sentence saying what is missing. Used by scheduling and
    sessions before booking or starting a dosing session (sessions reads :func:`readiness_detail`)."""
    r = readiness_detail(patient)
    return (r.ok, r.reasons)


def measure_plan_dimensions(patient: Patient) -> dict[str, str]:
    """Cohort dimensions of the patient's current signed plan for the measures outcomes dashboard
    (hook read by kapclinic.measures.hooks.plan_dimensions): protocol title, route and the indication's
    ICD-10-CM code. Empty when there is no signed plan. One query."""
    plan = (
        TreatmentPlan.objects.filter(patient=patient, status=PlanStatus.SIGNED)
        .only("protocol_id", "protocol_version", "protocol_title", "indication_icd10")
        .order_by("-signed_at", "-id")
        .first()
    )
    if plan is None:
        return {}
    protocol = plan_protocol(plan)
    return {
        "protocol": plan.protocol_title,
        "route": protocol.route if protocol is not None else "",
        "indication": plan.indication_icd10,
    }
