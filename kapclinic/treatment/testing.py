"""Test support (not used by the running app): take a patient to "ready to dose" through the real services.

``make_dosing_ready(patient, prescriber)`` completes an intake assessment on which no rule fires, has the
prescriber sign an 'eligible' decision, publishes the clinic's consent document when it has none, has the
patient sign it, and has the prescriber create and sign a plan on ``protocol``. Nothing is faked: the
objects are the ones the gate, scheduling and the chart read.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kapclinic.accounts.models import Membership, Role
from kapclinic.clinical.protocols import get_protocol
from kapclinic.clinical.terminology import BY_ICD10
from kapclinic.consent import services as consent_services
from kapclinic.consent.models import ConsentSignature, SignatureChannel
from kapclinic.consent.selectors import current_document
from kapclinic.core.actor import Actor
from kapclinic.intake import services as intake_services
from kapclinic.intake.models import Assessment
from kapclinic.intake.testing import complete_assessment
from kapclinic.treatment import services as treatment_services
from kapclinic.treatment.models import TreatmentPlan


def _actor(user: Any, clinic: Any, role: str) -> Actor:
    return Actor(user=user, clinic=clinic, role=role, request_id="test-factory")


def sign_eligible(patient: Any, prescriber: Any, **assessment: Any) -> Any:
    complete_assessment(patient, **assessment)
    return intake_services.decision_sign(
        _actor(prescriber, patient.clinic, Role.PRESCRIBER),
        patient,
        shown_version=Assessment.objects.get(patient=patient).version,
        decision="eligible",
        reason="No exclusion; benefits and risks discussed.",
        rationales={},
    )


def publish_consent(clinic: Any, *, title: str = "Consent to KAP", body: str = "Synthetic text.") -> Any:
    admin = Membership.objects.filter(clinic=clinic, role__in=[Role.ADMIN, Role.PRESCRIBER]).first()
    return consent_services.document_publish(
        _actor(admin.user if admin else None, clinic, Role.ADMIN), title=title, body=body
    )


def sign_consent(patient: Any, witness: Any = None) -> ConsentSignature:
    doc = current_document(patient.clinic_id) or publish_consent(patient.clinic)
    channel = SignatureChannel.PORTAL if patient.user_id else SignatureChannel.IN_CLINIC
    user = patient.user if patient.user_id else witness
    return consent_services.consent_sign(
        _actor(user, patient.clinic, Role.PATIENT if patient.user_id else Role.NURSE),
        patient,
        document_id=doc.pk,
        typed_name=patient.legal_name,
        agreed=True,
        ip="127.0.0.1",
        channel=channel,
    )


def sign_plan(
    patient: Any, prescriber: Any, protocol: str = "esketamine-in-trd", *, sessions: int = 6
) -> TreatmentPlan:
    proto = get_protocol(protocol)
    actor = _actor(prescriber, patient.clinic, Role.PRESCRIBER)
    per_week = proto.sessions.phases[0].sessions_per_week if proto.sessions.phases else ()
    plan = treatment_services.plan_create(
        actor,
        patient,
        protocol=proto,
        indication=BY_ICD10["F33.1"],
        goals="Feel like myself again",
        modality="cbt",
        modality_other="",
        dosing_sessions=proto.sessions.count.value or sessions,
        sessions_per_week=per_week[0] if per_week else Decimal(1),
        targets=[{"instrument": "PHQ-9", "comparator": "lt", "value": 10, "timepoint": "after induction"}],
    )
    treatment_services.plan_sign(actor, plan, expected_version=plan.version)
    plan.refresh_from_db()
    return plan


def make_dosing_ready(
    patient: Any, prescriber: Any, protocol: str = "esketamine-in-trd", **assessment: Any
) -> TreatmentPlan:
    """Signed eligibility, current consent and a signed plan on ``protocol`` for ``patient``."""
    sign_eligible(patient, prescriber, **assessment)
    sign_consent(patient, witness=prescriber)
    return sign_plan(patient, prescriber, protocol)
