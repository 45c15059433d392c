from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction
from django.urls import reverse

from kapclinic.audit.services import field_changes, record_event
from kapclinic.core import clock, request_cache
from kapclinic.core.actor import Actor
from kapclinic.core.concurrency import save_versioned
from kapclinic.core.errors import DomainError
from kapclinic.patients.models import (
    Allergy,
    CareTeamMember,
    Diagnosis,
    Medication,
    Patient,
    TimelineCategory,
    TimelineEvent,
)
from kapclinic.patients.selectors import forget_caseload_counts
from kapclinic.policy import ClinicAction, clinic_can, forget_care_team

#: The demographics staff edit (DemographicsForm shows these; a new record all but pathway_status).
DEMOGRAPHIC_FIELDS = (
    "legal_first_name",
    "legal_last_name",
    "preferred_name",
    "pronouns",
    "date_of_birth",
    "sex_at_birth",
    "gender_identity",
    "email",
    "phone",
    "address",
    "emergency_contact_name",
    "emergency_contact_relationship",
    "emergency_contact_phone",
    "pathway_status",
)


def add_timeline_event(
    patient: Patient,
    *,
    kind: str,
    title: str,
    at: dt.datetime | None = None,
    category: str = TimelineCategory.CLINICAL,
    url_name: str = "",
    url_kwargs: dict[str, Any] | None = None,
    actor: Actor | None = None,
    ref: Any = None,
) -> TimelineEvent:
    """Add a line to the patient's chart timeline. `title` is shown to everyone who may see the
    category: keep clinical detail out of ADMIN events (front desk sees those).

    The line links to ``reverse(url_name, kwargs=url_kwargs)``, built when the timeline is shown (a
    stored path would go stale when a URL changes); a name that does not reverse fails here, at write."""
    url_kwargs = dict(url_kwargs or {})
    if url_name:
        reverse(url_name, kwargs=url_kwargs)  # NoReverseMatch now rather than a broken chart later
    return TimelineEvent.objects.create(
        patient=patient,
        at=at or clock.now(),
        kind=kind,
        category=category,
        title=title[:200],
        url_name=url_name,
        url_kwargs=url_kwargs,
        actor=actor.user if actor else None,
        ref_type=ref._meta.label_lower if ref is not None else "",
        ref_id=str(ref.pk) if ref is not None else "",
    )


def _staff(actor: Actor) -> Any:
    if actor.user is None:
        raise ValueError("Clinical entries need a signed-in staff member.")
    return actor.user


def next_mrn(clinic_id: int) -> str:
    last = Patient.objects.filter(clinic_id=clinic_id).order_by("-id").values_list("mrn", flat=True).first()
    number = int(last.split("-")[-1]) + 1 if last and last.split("-")[-1].isdigit() else 1
    return f"K-{number:06d}"


ON_CALL_MISSING = (
    "Set the clinic's on-call prescriber (Clinic settings, Safety alerts) before enrolling patients: "
    "safety alerts of a patient without a care team go to them."
)


def patient_create(actor: Actor, **fields: Any) -> Patient:
    """Open a new record. Refused (DomainError) while the clinic has no on-call prescriber, so a
    safety alert always reaches someone."""
    assert actor.clinic is not None
    from kapclinic.accounts.models import Clinic

    if not Clinic.objects.filter(pk=actor.clinic.pk, on_call_prescriber__isnull=False).exists():
        raise DomainError(ON_CALL_MISSING)
    for _attempt in range(5):
        try:
            with transaction.atomic():
                patient = Patient.objects.create(clinic=actor.clinic, mrn=next_mrn(actor.clinic.pk), **fields)
                record_event(actor, "create", patient=patient, obj=patient)
                add_timeline_event(
                    patient,
                    kind="patient.created",
                    title="Record opened",
                    category=TimelineCategory.ADMIN,
                    actor=actor,
                )
                return patient
        except IntegrityError:
            continue
    raise RuntimeError("Could not allocate a record number; try again.")


def patient_update_demographics(
    actor: Actor, patient: Patient, *, expected_version: int, changes: dict[str, Any]
) -> None:
    """Save demographic changes unless someone else saved first (raises ConflictError).

    A new email address withdraws a portal invitation that has not been accepted yet: the link went
    to the old address, and the account must only ever go to an address the patient controls."""
    changed = [
        name for name in DEMOGRAPHIC_FIELDS if name in changes and getattr(patient, name) != changes[name]
    ]
    with transaction.atomic():
        before = {name: getattr(patient, name) for name in changed}
        for name in changed:
            setattr(patient, name, changes[name])
        patient.updated_at = clock.now()
        save_versioned(patient, expected_version, [*changed, "updated_at"])
        data: dict[str, Any] = {"changes": field_changes(before, {n: changes[n] for n in changed})}
        detail = "fields=" + ",".join(changed)
        if "email" in changed and portal_state(patient) == PORTAL_PENDING:
            _portal_unlink(patient)
            detail += " portal_invite_revoked"
            data["portal_invite_revoked"] = True
            add_timeline_event(
                patient,
                kind="portal.revoked",
                title="Portal invitation withdrawn (email address changed)",
                category=TimelineCategory.ADMIN,
                actor=actor,
            )
        record_event(
            actor, "update", patient=patient, obj=patient, detail=detail, name="patient.update", data=data
        )
        if "pathway_status" in changed:
            forget_caseload_counts(patient)
            add_timeline_event(
                patient,
                kind="patient.pathway",
                title=f"Pathway status: {patient.get_pathway_status_display()}",
                category=TimelineCategory.ADMIN,
                actor=actor,
            )


def care_team_add(actor: Actor, patient: Patient, *, user: Any, role: str) -> CareTeamMember:
    with transaction.atomic():
        member, _created = CareTeamMember.objects.get_or_create(
            patient=patient, user=user, defaults={"role": role}
        )
        forget_care_team(patient)
        forget_caseload_counts(patient)
        record_event(actor, "update", patient=patient, obj=member, detail=f"care_team add {role}")
        add_timeline_event(
            patient,
            kind="care_team.added",
            title=f"{user} joined the care team ({role})",
            category=TimelineCategory.ADMIN,
            actor=actor,
        )
    return member


def care_team_remove(actor: Actor, patient: Patient, *, member: CareTeamMember) -> None:
    with transaction.atomic():
        forget_caseload_counts(patient)  # before the member goes, so their census is forgotten too
        record_event(actor, "update", patient=patient, obj=member, detail="care_team remove")
        add_timeline_event(
            patient,
            kind="care_team.removed",
            title=f"{member.user} left the care team",
            category=TimelineCategory.ADMIN,
            actor=actor,
        )
        member.delete()
        forget_care_team(patient)


def diagnosis_add(actor: Actor, patient: Patient, *, icd10: str, snomed: str, description: str) -> Diagnosis:
    with transaction.atomic():
        dx = Diagnosis.objects.create(
            patient=patient, icd10=icd10, snomed=snomed, description=description, recorded_by=_staff(actor)
        )
        record_event(actor, "create", patient=patient, obj=dx)
        add_timeline_event(
            patient, kind="diagnosis.added", title=f"Diagnosis recorded: {icd10}", actor=actor, ref=dx
        )
    return dx


def medication_add(actor: Actor, patient: Patient, *, name: str, dose: str, drug_class: str) -> Medication:
    with transaction.atomic():
        med = Medication.objects.create(
            patient=patient, name=name, dose=dose, drug_class=drug_class, recorded_by=_staff(actor)
        )
        record_event(actor, "create", patient=patient, obj=med)
        add_timeline_event(
            patient, kind="medication.added", title=f"Medication recorded: {name}", actor=actor, ref=med
        )
    request_cache.forget()  # the rest of this request reads the new list (selectors.active_medications)
    return med


def medication_stop(actor: Actor, patient: Patient, *, med: Medication) -> bool:
    """Mark ``med`` stopped; False (nothing changed, no timeline event) when it was already stopped —
    a second press of the button, or two people stopping it at once (the update is conditional)."""
    with transaction.atomic():
        if not Medication.objects.filter(pk=med.pk, active=True).update(active=False):
            record_event(actor, "view", patient=patient, obj=med, detail="already stopped")
            return False
        record_event(actor, "update", patient=patient, obj=med, detail="stopped")
        add_timeline_event(
            patient, kind="medication.stopped", title=f"Medication stopped: {med.name}", actor=actor
        )
    request_cache.forget()  # the rest of this request reads the new list (selectors.active_medications)
    return True


def allergy_add(actor: Actor, patient: Patient, *, substance: str, reaction: str) -> Allergy:
    with transaction.atomic():
        allergy = Allergy.objects.create(
            patient=patient, substance=substance, reaction=reaction, recorded_by=_staff(actor)
        )
        record_event(actor, "create", patient=patient, obj=allergy)
        add_timeline_event(patient, kind="allergy.added", title=f"Allergy recorded: {substance}", actor=actor)
    return allergy


PORTAL_NONE = "none"
PORTAL_PENDING = "pending"  # invited, the password was never chosen
PORTAL_ACTIVE = "active"


def portal_state(patient: Patient) -> str:
    if patient.user_id is None:
        return PORTAL_NONE
    user = patient.user
    assert user is not None
    return PORTAL_ACTIVE if user.has_usable_password() or user.last_login else PORTAL_PENDING


def _portal_unlink(patient: Patient) -> bool:
    """Detach the portal account from the patient. An account that was never used is deleted (its
    emailed link dies with it and the address is free again); one that was used is deactivated and
    kept, with its sessions dead at once, for the record. Returns whether the account had been used."""
    from kapclinic.accounts.models import User

    user = patient.user
    assert user is not None
    used = bool(user.has_usable_password() or user.last_login)
    Patient.objects.filter(pk=patient.pk).update(user=None)
    patient.user = None
    if used:
        User.objects.filter(pk=user.pk).update(is_active=False, deactivated_at=clock.now())
    else:
        User.objects.filter(pk=user.pk).delete()
    return used


def patient_revoke_portal(actor: Actor, patient: Patient) -> None:
    """Take the portal account away from this record (the patient says the invitation or the
    account is not theirs, or an invitation went to a wrong address). A fresh invitation can then
    be sent; the rules of patient_invite_to_portal apply to it."""
    if patient.user_id is None:
        raise DomainError("This patient has no portal account or invitation to revoke.")
    with transaction.atomic():
        used = _portal_unlink(patient)
        record_event(
            actor, "update", patient=patient, obj=patient, detail=f"portal_revoked claimed={int(used)}"
        )
        add_timeline_event(
            patient,
            kind="portal.revoked",
            title="Portal access revoked" if used else "Portal invitation withdrawn",
            category=TimelineCategory.ADMIN,
            actor=actor,
        )


def patient_invite_to_portal(actor: Actor, patient: Patient) -> None:
    """Give the patient a portal login and email them a single-use link to choose a password.

    Only to an address the patient controls: the one on file when the record was opened (or last
    confirmed). After a change of address, a clinician (ClinicAction.CONFIRM_PORTAL_ADDRESS) must send it, and
    by doing so confirms the new address. A refusal is audited as "denied"."""
    from kapclinic.accounts.models import User
    from kapclinic.accounts.services import set_password_url
    from kapclinic.messaging.models import MessageKind
    from kapclinic.messaging.services import queue

    if patient.user_id is not None:
        raise DomainError(
            "This patient already has a portal account or a pending invitation. If the patient says it "
            "is not theirs, revoke it first, then send a new invitation."
        )
    if not patient.email:
        raise DomainError("Add the patient's email address first: the invitation is sent by email.")
    email = patient.email.strip().lower()
    confirming = patient.email_changed_since_confirmed
    if confirming and not clinic_can(actor, ClinicAction.CONFIRM_PORTAL_ADDRESS):
        record_event(actor, "denied", patient=patient, obj=patient, detail="portal_invite unconfirmed_email")
        raise DomainError(
            "The email address is not the one the patient registered with or last confirmed, so a "
            "clinician on the care team must send this invitation after checking the address with the "
            "patient."
        )
    if User.objects.filter(email=email).exists():
        raise DomainError(
            "Another account already uses this email address; portal accounts need their own address."
        )
    with transaction.atomic():
        user = User.objects.create_user(email=email, full_name=patient.display_name)
        updates: dict[str, Any] = {"user": user}
        if confirming:
            updates["confirmed_email"] = patient.email
            patient.confirmed_email = patient.email
        Patient.objects.filter(pk=patient.pk).update(**updates)
        patient.user = user
        detail = "portal_invite" + (" email_confirmed_by_clinician" if confirming else "")
        record_event(actor, "update", patient=patient, obj=patient, detail=detail)
        add_timeline_event(
            patient,
            kind="portal.invited",
            title="Invited to the patient portal",
            category=TimelineCategory.ADMIN,
            actor=actor,
        )
        link = set_password_url(user)
        queue(
            kind=MessageKind.PORTAL_INVITE,
            to_email=email,
            clinic=patient.clinic,
            related=patient,
            subject=f"Your {patient.clinic.name} patient portal",
            body="Hello,\n\nYour care team has set up your patient portal, where you can see your "
            "appointments, complete questionnaires and read your treatment plan.\n"
            f"Choose your password here (the link works once):\n{link}\n\n"
            "If you did not expect this email, tell your clinic: they will close the account.\n",
        )
