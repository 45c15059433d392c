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

Secure messages (conversations, issue 17) are clinical data: staff read them with view_clinical and
write with edit_clinical for the thread's patient; front desk and admins do not read them (they book
and run the clinic; admins set the reply time); a patient reads and writes only the patient threads of
their own record (self_service), never the staff-only threads (conversations/selectors.visible_threads).

Prescribers and nurses cover the whole clinic (medical responsibility and whoever is in the chair);
therapists see their caseload (care-team membership). A patient of another clinic does not exist for
the asker (404). Clinic-level actions (audit log, staff management) are `clinic_can`.

Every refusal (403) is audited as "denied", once per request, naming the patient when the refused
address is about one: views refuse with `raise refuse(request, "sentence", ...)` (open_patient,
require_clinic and core.stubs.require_roles do), and `audit.middleware.RefusalAuditMiddleware` records
any other 403 answered to a signed-in user through `audit_refusal`, so no refusal goes unrecorded.
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
        raise refuse(request, "Your role does not allow this.", detail=str(action))
    return actor


# The request attribute holding the refusal recorded for it: (event id, keyword arguments of the event).
_REFUSAL = "_kap_refusal"


def refuse(
    request: HttpRequest,
    reason: str = "Your role does not allow this.",
    *,
    patient: Patient | None = None,
    obj: Any = None,
    object_type: str = "",
    detail: str = "",
) -> PermissionDenied:
    """Audit this request's refusal ("denied") and return the 403 to raise: `raise refuse(request, ...)`.

    The patient is the one given or, when not given, the one the address names (`patient_id`) if the
    asker may know it exists (see `audit_refusal`)."""
    audit_refusal(request, patient=patient, obj=obj, object_type=object_type, detail=detail)
    return PermissionDenied(reason)


def audit_refusal(
    request: HttpRequest,
    *,
    patient: Patient | None = None,
    obj: Any = None,
    object_type: str = "",
    detail: str = "",
) -> None:
    """Record one "denied" event for this request (a second call in the same request records nothing).

    Anonymous requests are not recorded (they are sent to the login page, there is nobody to name).
    `detail` defaults to the URL name (codes only, never patient data)."""
    from kapclinic.audit.services import record_event

    if getattr(request, _REFUSAL, None) is not None:
        return
    actor = actor_from_request(request)
    if actor.user is None:
        return
    if patient is None:
        patient = patient_named_by_address(request, actor)
    match = getattr(request, "resolver_match", None)
    fields: dict[str, Any] = {
        "patient": patient,
        "obj": obj,
        "object_type": object_type or ("" if obj is not None else "page"),
        "detail": detail or (match.view_name if match is not None else ""),
    }
    event = record_event(actor, "denied", **fields)
    setattr(request, _REFUSAL, (event.pk, fields))


def ensure_refusal_audited(request: HttpRequest) -> None:
    """For a request answered 403: make sure its "denied" event exists. Written here when no refusal
    was recorded (a bare PermissionDenied, a view answering 403 itself), or again when the recorded
    event is gone (rolled back with a transaction the refusal was raised in)."""
    from kapclinic.audit.models import AuditEvent

    recorded = getattr(request, _REFUSAL, None)
    if recorded is None:
        audit_refusal(request)
    elif not AuditEvent.objects.filter(pk=recorded[0]).exists():
        delattr(request, _REFUSAL)
        audit_refusal(request, **recorded[1])


def patient_named_by_address(request: HttpRequest, actor: Actor) -> Patient | None:
    """The patient the request's address names (`patient_id`), when the asker may know it exists:
    a patient of the asker's clinic for staff, only their own record for a patient."""
    from kapclinic.patients.models import Patient

    match = getattr(request, "resolver_match", None)
    raw = match.kwargs.get("patient_id") if match is not None else None
    if raw is None or actor.clinic is None:
        return None
    try:
        patient_id = int(raw)
    except (TypeError, ValueError):
        return None
    if actor.role == "patient":
        own: Patient | None = getattr(request, "patient", None)
        return own if own is not None and own.pk == patient_id else None
    return Patient.objects.select_related("clinic").filter(pk=patient_id, clinic=actor.clinic).first()


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
        raise refuse(
            request,
            "Your role does not allow this for this patient.",
            patient=patient,
            object_type=object_type,
            detail=str(action),
        )
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
