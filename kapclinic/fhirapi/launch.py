"""The staff patient picker of a user-context app launch (`launch/patient`, docs/fhir-api.md#patient-picker).

A staff member who authorises an app asking `launch/patient` chooses the patient the app gets, among the
patients policy.py lets them open clinically (a therapist: their caseload); the token then reads that one
patient (a patient-context grant that still only sees what the staff member may see)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from kapclinic import policy
from kapclinic.accounts.models import Membership, Role
from kapclinic.audit.services import record_event
from kapclinic.core.actor import Actor
from kapclinic.core.errors import DomainError
from kapclinic.patients.models import Patient

PICKER_SIZE = 25  # patients shown at once (server policy): narrow with the search box


def staff_actor(user: Any, application: Any, request_id: str = "") -> Actor | None:
    """The user as staff of the app's clinic, or None (a patient, or not of that clinic)."""
    registered = getattr(application, "fhir_client", None)
    if registered is None or user is None or not user.is_authenticated:
        return None
    membership = Membership.objects.filter(user=user, clinic=registered.clinic, is_active=True).first()
    if membership is None or membership.role == Role.PATIENT:
        return None
    return Actor(user=user, clinic=registered.clinic, role=membership.role, request_id=request_id)


def wants_patient(scopes: str | list[str] | None) -> bool:
    names = scopes.split() if isinstance(scopes, str) else list(scopes or [])
    return "launch/patient" in names


def _visible(actor: Actor) -> QuerySet[Patient]:
    return policy.visible_patients(actor, policy.Action.VIEW_CLINICAL)


def choices(actor: Actor, query: str = "") -> list[Patient]:
    """Up to PICKER_SIZE patients the staff member may open clinically, matching `query` (name or MRN);
    audited as a list."""
    qs = _visible(actor)
    query = query.strip()[:60]
    if query:
        qs = qs.filter(
            Q(legal_last_name__icontains=query)
            | Q(legal_first_name__icontains=query)
            | Q(preferred_name__icontains=query)
            | Q(mrn__iexact=query)
        )
    found = list(qs.order_by("legal_last_name", "legal_first_name", "pk")[:PICKER_SIZE])
    record_event(actor, "list", object_type="fhir:launch-picker", detail=f"n={len(found)}")
    return found


def chosen(actor: Actor, raw: str) -> Patient:
    """The patient picked, if the staff member may open them clinically; DomainError otherwise."""
    if not raw.strip().isdigit():
        raise DomainError("Choose the patient whose record the app may read.")
    patient = _visible(actor).filter(pk=int(raw)).first()
    if patient is None:
        record_event(actor, "denied", object_type="fhir:launch-picker", detail="patient not visible")
        raise DomainError("You cannot open that patient's record, so you cannot give it to an app.")
    return patient
