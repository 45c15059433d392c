"""Who is reading through the FHIR API, and which patients they may see (docs/fhir-api.md#authorization).

A `Grant` is the one answer for a request: a signed-in user (user context, exactly what policy.py lets
them see in the UI), one patient (patient context) or a clinic's registered backend client (system
context), with the resource types it may read. Every decision goes through policy.py: `visible_patients`
for searches and `can` for reads, so the API never shows what the UI would not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from django.db.models import QuerySet
from django.http import HttpRequest

from kapclinic import policy
from kapclinic.accounts.models import Role
from kapclinic.core.actor import Actor, actor_from_request
from kapclinic.core.request import KapRequest
from kapclinic.policy import Action, ClinicAction

if TYPE_CHECKING:
    from kapclinic.accounts.models import Clinic
    from kapclinic.patients.models import Patient

USER = "user"
PATIENT = "patient"
SYSTEM = "system"


@dataclass(frozen=True)
class Grant:
    actor: Actor
    clinic: Clinic
    context: str  # USER, PATIENT or SYSTEM
    client: str  # named in every audit event ("session" for a signed-in browser)
    patient_id: int | None = None  # the one patient of a patient-context grant
    # SMART permissions per resource type ("*" for all), e.g. {"Observation": "rs"}; None = every type
    # (a signed-in session: what policy.py allows is the only limit).
    types: dict[str, str] | None = None
    client_pk: int | None = None  # the registered FhirClient of a bearer token

    def may_read_type(self, resource_type: str, interaction: str = "r") -> bool:
        """interaction: "r" (read) or "s" (search), as in SMART v2 scopes."""
        if self.types is None:
            return True
        return interaction in self.types.get(resource_type, "") + self.types.get("*", "")

    def action_for(self, clinical: bool) -> Action:
        if self.actor.role == Role.PATIENT:
            return Action.SELF_SERVICE
        return Action.VIEW_CLINICAL if clinical else Action.VIEW_DEMOGRAPHICS

    def has_any_access(self, clinical: bool) -> bool:
        """False when the role can see no patient's data of this kind at all (front desk, clinical)."""
        if self.context == USER:
            return policy.scope(self.actor, self.action_for(clinical)) is not None
        return True

    def manages_clinic(self) -> bool:
        """May this grant read clinic-wide resources (the clinic's Group)? A system client of the clinic,
        or a user policy.py lets manage the clinic; never a patient-context token."""
        if self.context == SYSTEM:
            return True
        if self.context == USER:
            return policy.clinic_can(self.actor, ClinicAction.MANAGE_CLINIC)
        return False

    def patients(self, clinical: bool) -> QuerySet[Patient]:
        """The patients whose records this grant may read (a queryset, used as a subquery)."""
        from kapclinic.patients.models import Patient

        if self.context == SYSTEM:
            return Patient.objects.filter(clinic=self.clinic)
        if self.context == PATIENT:
            qs = Patient.objects.filter(clinic=self.clinic, pk=self.patient_id or 0)
            if self.actor.user is not None and self.actor.role != Role.PATIENT:
                # A clinician's patient-context token: still only what the clinician may see.
                return qs.filter(pk__in=policy.visible_patients(self.actor, self.action_for(clinical)))
            return qs
        return policy.visible_patients(self.actor, self.action_for(clinical))

    def exists_for(self, patient: Patient) -> bool:
        """May the asker know this patient exists? (No: 404, like policy.open_patient.)"""
        if patient.clinic_id != self.clinic.pk:
            return False
        if self.context == PATIENT and patient.pk != self.patient_id:
            return False
        return not (self.actor.role == Role.PATIENT and patient.user_id != self.actor.user_id)

    def can_read(self, patient: Patient, clinical: bool) -> bool:
        if not self.exists_for(patient):
            return False
        if self.context == SYSTEM or (self.context == PATIENT and self.actor.user is None):
            return True
        return policy.can(self.actor, self.action_for(clinical), patient)


def session_grant(request: HttpRequest) -> Grant | None:
    """A signed-in user's grant (user context), or None for an anonymous request."""
    actor = actor_from_request(request)
    clinic = cast(KapRequest, request).clinic
    if actor.user is None or clinic is None:
        return None
    return Grant(actor=actor, clinic=clinic, context=USER, client="session")
