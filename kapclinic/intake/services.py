"""Writes for intake: inquiries, conversion to a patient, questionnaire, assessment, signed decisions."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from kapclinic.audit.services import field_changes, record_event
from kapclinic.clinical.eligibility import Decision, check_decision, load_rule_set
from kapclinic.clinical.eligibility.chart_medications import relevant_digest
from kapclinic.core import clock, request_cache
from kapclinic.core.actor import Actor
from kapclinic.core.concurrency import ConflictError, save_versioned
from kapclinic.core.errors import DomainError
from kapclinic.intake import selectors
from kapclinic.intake.models import Assessment, EligibilityDecision, Inquiry, InquiryStatus
from kapclinic.patients.models import Medication, PathwayStatus, Patient, TimelineCategory
from kapclinic.patients.services import add_timeline_event, patient_create

# Engineering limits for the public form (not clinical): how many inquiries one client address may
# send per window. Configurable in settings.
RATE_LIMIT_COUNT = int(getattr(settings, "KAP_INQUIRY_RATE_LIMIT", 5))
RATE_LIMIT_WINDOW = dt.timedelta(minutes=int(getattr(settings, "KAP_INQUIRY_RATE_WINDOW_MINUTES", 60)))


class RateLimitedError(DomainError):
    pass


def client_key(ip: str | None) -> str:
    """A salted hash of the client address: enough to rate-limit, without storing the address."""
    raw = f"{settings.SECRET_KEY}|inquiry|{ip or 'unknown'}".encode()
    return hashlib.sha256(raw).hexdigest()


def inquiry_submit(clinic: Any, *, ip: str | None, token: str, data: dict[str, Any]) -> tuple[Inquiry, bool]:
    """Store one inquiry. The same submission token (double submit, back-and-resubmit) never creates a
    second inquiry. Raises RateLimitedError when this address has sent too many recently."""
    existing = Inquiry.objects.filter(clinic=clinic, submission_token=token).first()
    if existing is not None:
        return existing, False
    key = client_key(ip)
    since = clock.now() - RATE_LIMIT_WINDOW
    if Inquiry.objects.filter(client_key=key, created_at__gte=since).count() >= RATE_LIMIT_COUNT:
        raise RateLimitedError(
            "We have received several messages from your connection in the last hour. Please wait a while "
            "before sending another, or call us."
        )
    actor = Actor(user=None, clinic=clinic, role="public", request_id="inquiry", ip=None)
    try:
        with transaction.atomic():
            inquiry = Inquiry.objects.create(clinic=clinic, submission_token=token, client_key=key, **data)
            record_event(actor, "create", obj=inquiry, clinic=clinic, detail="public inquiry")
    except IntegrityError:
        return Inquiry.objects.get(clinic=clinic, submission_token=token), False
    return inquiry, True


def inquiry_set_status(actor: Actor, inquiry: Inquiry, *, status: str) -> None:
    allowed = {
        InquiryStatus.NEW: {InquiryStatus.CONTACTED, InquiryStatus.CLOSED},
        InquiryStatus.CONTACTED: {InquiryStatus.CLOSED, InquiryStatus.NEW},
        InquiryStatus.CLOSED: {InquiryStatus.NEW},
        InquiryStatus.CONVERTED: set(),
    }
    if status not in allowed.get(InquiryStatus(inquiry.status), set()):
        raise DomainError(
            f"An inquiry that is '{inquiry.get_status_display()}' cannot be marked "
            f"'{InquiryStatus(status).label}'."
        )
    with transaction.atomic():
        Inquiry.objects.filter(pk=inquiry.pk).update(
            status=status, handled_by=actor.user, handled_at=clock.now()
        )
        record_event(actor, "update", obj=inquiry, detail=f"status={status}")
    inquiry.status = status


def inquiry_convert(
    actor: Actor, inquiry: Inquiry, *, existing: Patient | None = None, fields: dict[str, Any] | None = None
) -> Patient:
    """Turn an inquiry into a patient record, or merge it into ``existing`` (a human confirmed the
    match). Refuses an inquiry that is already converted."""
    with transaction.atomic():
        locked = Inquiry.objects.select_for_update().get(pk=inquiry.pk)
        if locked.status == InquiryStatus.CONVERTED:
            raise DomainError("This inquiry has already been converted; open the patient record instead.")
        if existing is not None:
            if existing.clinic_id != locked.clinic_id:
                raise DomainError("The matching record belongs to another clinic.")
            patient = existing
            record_event(actor, "update", patient=patient, obj=locked, detail="inquiry merged into record")
            add_timeline_event(
                patient,
                kind="intake.inquiry_merged",
                title="New inquiry linked to this record",
                category=TimelineCategory.ADMIN,
                actor=actor,
                ref=locked,
            )
        else:
            try:
                patient = patient_create(
                    actor, **{"pathway_status": PathwayStatus.ASSESSMENT, **(fields or {})}
                )
            except DomainError as exc:
                raise DomainError(str(exc)) from None
            add_timeline_event(
                patient,
                kind="intake.inquiry_converted",
                title="Record opened from a web inquiry",
                category=TimelineCategory.ADMIN,
                actor=actor,
                ref=locked,
            )
        Inquiry.objects.filter(pk=locked.pk).update(
            status=InquiryStatus.CONVERTED, patient=patient, handled_by=actor.user, handled_at=clock.now()
        )
        Assessment.objects.get_or_create(patient=patient)
    inquiry.status = InquiryStatus.CONVERTED
    inquiry.patient = patient
    return patient


def _mark_stale_if_needed(actor: Actor, patient: Patient, assessment: Assessment, was_current: bool) -> None:
    if not was_current or _decision_current(patient, assessment):
        return
    add_timeline_event(
        patient,
        kind="intake.decision_stale",
        title="Eligibility decision out of date: the intake changed after sign-off",
        actor=actor,
        ref=assessment,
    )


def _decision_current(patient: Patient, assessment: Assessment) -> bool:
    decision = selectors.current_decision(patient)
    if decision is None:
        return False
    digest = selectors.medications_digest(assessment, patient) if decision.medications_digest else None
    return not decision.is_stale_for(assessment, patient.date_of_birth, digest)


def questionnaire_submit(
    actor: Actor, patient: Patient, *, expected_version: int, answers: dict[str, str], notes: str
) -> Assessment:
    """The patient's own answers from the portal. They are copied into the checklist (the clinician
    reviews them); any change after sign-off makes the signed decision stale."""
    with transaction.atomic():
        assessment = Assessment.objects.select_for_update().get(patient=patient)
        was_current = _decision_current(patient, assessment)
        merged = dict(assessment.answers or {})
        merged.update(answers)
        assessment.answers = merged
        assessment.patient_answers = dict(answers)
        assessment.patient_notes = notes
        assessment.patient_submitted_at = clock.now()
        assessment.updated_at = clock.now()
        assessment.updated_by = actor.user
        save_versioned(
            assessment,
            expected_version,
            [
                "answers",
                "patient_answers",
                "patient_notes",
                "patient_submitted_at",
                "updated_at",
                "updated_by",
            ],
        )
        record_event(
            actor, "update", patient=patient, obj=assessment, detail="intake questionnaire submitted"
        )
        add_timeline_event(
            patient,
            kind="intake.questionnaire",
            title="Intake questionnaire submitted by the patient",
            actor=actor,
            ref=assessment,
        )
        _mark_stale_if_needed(actor, patient, assessment, was_current)
    return assessment


#: The assessment fields the clinician types on the assessment form (its ModelForm's Meta.fields).
ASSESSMENT_FORM_FIELDS = (
    "psychiatric_history",
    "substance_use_history",
    "adequate_failed_trials",
    "prior_psychotherapy",
    "prior_ect",
    "prior_tms",
    "prior_treatment_notes",
    "medications_reviewed",
    "benzodiazepine_dz_eq_mg_day",
    "systolic_bp",
    "diastolic_bp",
    "heart_rate",
    "spo2",
    "weight_kg",
    "height_cm",
)
#: Everything assessment_update may change: those, the checklist answers and the confirmed
#: interaction classes (both gathered by other forms on the same page).
ASSESSMENT_FIELDS = ("answers", *ASSESSMENT_FORM_FIELDS, "medication_classes")


def _add_chart_medications(
    actor: Actor, patient: Patient, new_medications: list[dict[str, str]]
) -> list[Medication]:
    """Medications named in the assessment go on the chart's list (the one list); audited by the caller."""
    added = []
    for m in new_medications:
        med = Medication.objects.create(
            patient=patient,
            name=m["name"].strip()[:120],
            dose=m.get("dose", "").strip()[:80],
            drug_class=m.get("drug_class") or "other",
            recorded_by=actor.require_user(),
            recorded_at=clock.now(),
        )
        add_timeline_event(
            patient,
            kind="medication.added",
            title=f"Medication recorded: {med.name}",
            actor=actor,
            ref=med,
        )
        added.append(med)
    if added:
        request_cache.forget()  # the rest of this request reads the new medication list
    return added


def assessment_update(
    actor: Actor,
    patient: Patient,
    *,
    expected_version: int,
    changes: dict[str, Any],
    new_medications: list[dict[str, str]] | None = None,
) -> tuple[Assessment, list[str]]:
    """Save the clinician assessment; medications it names are added to the chart's list.
    Raises ConflictError if someone saved first."""
    with transaction.atomic():
        assessment = Assessment.objects.select_for_update().get(patient=patient)
        if assessment.version != expected_version:
            raise ConflictError()
        was_current = _decision_current(patient, assessment)
        changed = [f for f in ASSESSMENT_FIELDS if f in changes and getattr(assessment, f) != changes[f]]
        added = _add_chart_medications(actor, patient, new_medications or [])
        if not changed:
            if added:
                record_event(
                    actor, "update", patient=patient, obj=assessment, detail=f"chart_medications+{len(added)}"
                )
                _mark_stale_if_needed(actor, patient, assessment, was_current)
                return assessment, [f"medications+{len(added)}"]
            return assessment, []
        before = {name: getattr(assessment, name) for name in changed}
        for name in changed:
            setattr(assessment, name, changes[name])
        assessment.updated_at = clock.now()
        assessment.updated_by = actor.user
        assessment.clinician_completed_at = assessment.clinician_completed_at or clock.now()
        save_versioned(
            assessment, expected_version, [*changed, "updated_at", "updated_by", "clinician_completed_at"]
        )
        record_event(
            actor,
            "update",
            patient=patient,
            obj=assessment,
            detail=f"fields={len(changed)}" + (f";chart_medications+{len(added)}" if added else ""),
            name="assessment.update",
            data={
                "changes": field_changes(before, {name: changes[name] for name in changed}),
                "chart_medications_added": len(added),
            },
        )
        add_timeline_event(
            patient, kind="intake.assessment", title="Intake assessment updated", actor=actor, ref=assessment
        )
        _mark_stale_if_needed(actor, patient, assessment, was_current)
    return assessment, changed


def decision_sign(
    actor: Actor,
    patient: Patient,
    *,
    shown_version: int,
    decision: str,
    reason: str,
    rationales: dict[str, str],
    shown_medications_digest: str | None = None,
) -> EligibilityDecision:
    """Sign an eligibility decision on the report as it stands now.

    Refuses (DomainError, a sentence) when the assessment changed since the report was shown, when a
    hard stop (or an unanswered hard-stop question) would be signed eligible, or when a review item
    lacks a written rationale."""
    with transaction.atomic():
        assessment = Assessment.objects.select_for_update().get(patient=patient)
        if assessment.version != shown_version:
            raise DomainError(
                "The intake changed after you opened this report, so the report you read is out of date. "
                "Review the updated report below and sign again."
            )
        classified = selectors.classified_medications(assessment, patient)
        digest = relevant_digest(classified, load_rule_set())
        if shown_medications_digest is not None and shown_medications_digest != digest:
            raise DomainError(
                "The chart's medication list changed after you opened this report, so the report you read "
                "is out of date. Review the updated report below and sign again."
            )
        report = selectors.eligibility_report(assessment, patient, classified=classified)
        choice = Decision(decision)
        errors = check_decision(report, choice, reason, rationales)
        if errors:
            raise DomainError(" ".join(errors))
        kept = {f.rule_id: rationales.get(f.rule_id, "").strip() for f in report.reviews}
        signed = EligibilityDecision.objects.create(
            patient=patient,
            assessment=assessment,
            assessment_version=assessment.version,
            date_of_birth=patient.date_of_birth,
            decision=choice.value,
            reason=reason.strip(),
            review_rationales={k: v for k, v in kept.items() if v},
            report=report.to_dict(),
            report_status=report.status.value,
            rule_set_id=report.rule_set_id,
            rule_set_version=report.rule_set_version,
            rule_set_digest=report.rule_set_digest,
            medications_digest=digest,
            signed_by=actor.require_user(),
            signed_at=clock.now(),
        )
        record_event(actor, "sign", patient=patient, obj=signed, detail=f"decision={choice.value}")
        add_timeline_event(
            patient,
            kind="intake.decision_signed",
            title=f"Eligibility decision signed: {choice.label}",
            actor=actor,
            ref=signed,
        )
    return signed
