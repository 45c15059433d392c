"""The one place that answers: may this user do this to this patient?

Decisions depend on role x clinic x care-team membership:

| action              | admin | prescriber | therapist      | nurse | front desk | patient   |
|---------------------|-------|------------|----------------|-------|------------|-----------|
| view_demographics   | yes   | yes        | own caseload   | yes   | yes        | no        |
| edit_demographics   | yes   | yes        | own caseload   | no    | yes        | no        |
| view_clinical       | no    | yes        | own caseload   | yes   | no         | no        |
| edit_clinical       | no    | yes        | own caseload   | yes   | no         | no        |
| prescribe           | no    | yes        | no             | no    | no         | no        |
| monitor_session     | no    | yes        | no             | yes   | no         | no        |
| schedule            | yes   | yes        | own caseload   | yes   | yes        | no        |
| manage_care_team    | yes   | yes        | no             | no    | yes        | no        |
| self_service        | no    | no         | no             | no    | no         | self      |

Prescribers and nurses cover the whole clinic (medical responsibility and whoever is in the chair);
therapists see their caseload (care-team membership). A patient of another clinic does not exist for
the asker (404). Clinic-level actions (audit log, staff management) are `clinic_can`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from kapclinic.core.actor import Actor, actor_from_request

if TYPE_CHECKING:
    from kapclinic.patients.models import Patient


class Action(StrEnum):
    VIEW_DEMOGRAPHICS = "view_demographics"
    EDIT_DEMOGRAPHICS = "edit_demographics"
    VIEW_CLINICAL = "view_clinical"
    EDIT_CLINICAL = "edit_clinical"
    PRESCRIBE = "prescribe"
    MONITOR_SESSION = "monitor_session"
    SCHEDULE = "schedule"
    MANAGE_CARE_TEAM = "manage_care_team"
    SELF_SERVICE = "self_service"


class ClinicAction(StrEnum):
    VIEW_AUDIT = "view_audit"
    MANAGE_STAFF = "manage_staff"
    VIEW_PATIENT_LIST = "view_patient_list"
    VIEW_OUTCOMES = "view_outcomes"
    MANAGE_CLINIC = "manage_clinic"
    FRONT_DESK = "front_desk"


ALL = "all"  # every patient of the clinic
CASELOAD = "caseload"  # care-team members only
SELF = "self"

_RULES: dict[str, dict[str, str]] = {
    "admin": {
        Action.VIEW_DEMOGRAPHICS: ALL,
        Action.EDIT_DEMOGRAPHICS: ALL,
        Action.SCHEDULE: ALL,
        Action.MANAGE_CARE_TEAM: ALL,
    },
    "prescriber": {
        Action.VIEW_DEMOGRAPHICS: ALL,
        Action.EDIT_DEMOGRAPHICS: ALL,
        Action.VIEW_CLINICAL: ALL,
        Action.EDIT_CLINICAL: ALL,
        Action.PRESCRIBE: ALL,
        Action.MONITOR_SESSION: ALL,
        Action.SCHEDULE: ALL,
        Action.MANAGE_CARE_TEAM: ALL,
    },
    "therapist": {
        Action.VIEW_DEMOGRAPHICS: CASELOAD,
        Action.EDIT_DEMOGRAPHICS: CASELOAD,
        Action.VIEW_CLINICAL: CASELOAD,
        Action.EDIT_CLINICAL: CASELOAD,
        Action.SCHEDULE: CASELOAD,
    },
    "nurse": {
        Action.VIEW_DEMOGRAPHICS: ALL,
        Action.VIEW_CLINICAL: ALL,
        Action.EDIT_CLINICAL: ALL,
        Action.MONITOR_SESSION: ALL,
        Action.SCHEDULE: ALL,
    },
    "front_desk": {
        Action.VIEW_DEMOGRAPHICS: ALL,
        Action.EDIT_DEMOGRAPHICS: ALL,
        Action.SCHEDULE: ALL,
        Action.MANAGE_CARE_TEAM: ALL,
    },
    # Patients reach their own record only through the portal (SELF_SERVICE), never staff pages.
    "patient": {
        Action.SELF_SERVICE: SELF,
    },
}

_CLINIC_RULES: dict[str, frozenset[str]] = {
    "admin": frozenset(
        {
            ClinicAction.VIEW_AUDIT,
            ClinicAction.MANAGE_STAFF,
            ClinicAction.VIEW_PATIENT_LIST,
            ClinicAction.VIEW_OUTCOMES,
            ClinicAction.MANAGE_CLINIC,
        }
    ),
    "prescriber": frozenset({ClinicAction.VIEW_PATIENT_LIST, ClinicAction.VIEW_OUTCOMES}),
    "therapist": frozenset({ClinicAction.VIEW_PATIENT_LIST, ClinicAction.VIEW_OUTCOMES}),
    "nurse": frozenset({ClinicAction.VIEW_PATIENT_LIST}),
    "front_desk": frozenset({ClinicAction.VIEW_PATIENT_LIST, ClinicAction.FRONT_DESK}),
    "patient": frozenset(),
}


def scope(actor: Actor, action: Action) -> str | None:
    if actor.user is None or actor.role is None or actor.clinic is None:
        return None
    return _RULES.get(actor.role, {}).get(action)


def can(actor: Actor, action: Action, patient: Patient) -> bool:
    """May `actor` perform `action` on `patient`? Never true across clinic lines."""
    sc = scope(actor, action)
    if sc is None or actor.clinic is None or patient.clinic_id != actor.clinic.pk:
        return False
    if sc == ALL:
        return True
    if sc == SELF:
        return patient.user_id is not None and patient.user_id == actor.user_id
    if sc == CASELOAD:
        return on_care_team(patient, actor.user_id)
    return False


def on_care_team(patient: Patient, user_id: int | None) -> bool:
    """Is this user on the patient's care team? Remembered on the patient instance for the request:
    a chart asks it once per panel and action (13 identical queries for a therapist's chart, issue #7).
    Services that change the care team call `forget_care_team(patient)`."""
    if user_id is None:
        return False
    memo: dict[int, bool] = patient.__dict__.setdefault("_kap_care_team", {})
    if user_id not in memo:
        memo[user_id] = patient.care_team.filter(user_id=user_id).exists()
    return memo[user_id]


def forget_care_team(patient: Patient) -> None:
    patient.__dict__.pop("_kap_care_team", None)


def clinic_can(actor: Actor, action: ClinicAction) -> bool:
    if actor.user is None or actor.role is None or actor.clinic is None:
        return False
    return action in _CLINIC_RULES.get(actor.role, frozenset())


def require_clinic(request: HttpRequest, action: ClinicAction) -> Actor:
    actor = actor_from_request(request)
    if not clinic_can(actor, action):
        raise PermissionDenied("Your role does not allow this.")
    return actor


def visible_patients(actor: Actor, action: Action) -> QuerySet[Patient]:
    """The patients `actor` may `action`, as a queryset to filter and paginate further."""
    from kapclinic.patients.models import Patient

    sc = scope(actor, action)
    qs = Patient.objects.all()
    if sc is None or actor.clinic is None:
        return qs.none()
    qs = qs.filter(clinic=actor.clinic)
    assert actor.user is not None  # scope() is None for anonymous actors
    if sc == CASELOAD:
        return qs.filter(care_team__user_id=actor.user.pk).distinct()
    if sc == SELF:
        return qs.filter(user_id=actor.user.pk)
    return qs


def open_patient(
    request: HttpRequest,
    patient_id: Any,
    action: Action,
    *,
    audit: str | None = "view",
    object_type: str = "chart",
    obj: Any = None,
) -> Patient:
    """Fetch a patient for this request: 404 outside the clinic, 403 (audited) when not allowed.

    With `audit="view"` (the default) one view event is written; pass `audit=None` when the service
    that follows writes its own event (a create or update), so each request leaves exactly one.
    """
    from kapclinic.audit.services import record_event
    from kapclinic.patients.models import Patient

    actor = actor_from_request(request)
    if actor.clinic is None or actor.user is None:
        raise Http404
    own = getattr(request, "patient", None)  # a patient's own record, loaded by ClinicContextMiddleware
    try:
        if own is not None and actor.role == "patient" and own.pk == int(patient_id):
            patient = own
        else:
            patient = Patient.objects.select_related("clinic").get(pk=int(patient_id), clinic=actor.clinic)
    except (Patient.DoesNotExist, ValueError, TypeError):
        raise Http404 from None
    if actor.role == "patient" and patient.user_id != actor.user_id:
        raise Http404
    if not can(actor, action, patient):
        record_event(actor, "denied", patient=patient, object_type=object_type, detail=str(action))
        raise PermissionDenied("Your role does not allow this for this patient.")
    if audit:
        record_event(
            actor,
            audit,
            patient=patient,
            obj=obj,
            object_type=object_type if obj is None else "",
            object_id=patient.pk if obj is None else "",
        )
    return patient
