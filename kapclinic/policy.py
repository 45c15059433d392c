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
the asker (404). Clinic-level actions (audit log, staff management, the calendar, the controlled-substance
records, billing...) are `ClinicAction`s: `_CLINIC_RULES` lists the roles for each, `clinic_can` answers and
`require_clinic` refuses. Every permission decision is one of these two enums: views and services never
compare roles themselves, and roles are `accounts.models.Role` values, never bare strings.
Billing (fee schedule, charges, payments, superbills) is admin and front desk (docs/billing.md section 6).

Every refusal (403) is audited as "denied", once per request, naming the patient when the refused
address is about one: views refuse with `raise refuse(request, "sentence", ...)` (open_patient
and require_clinic do), and `audit.middleware.RefusalAuditMiddleware` records
any other 403 answered to a signed-in user through `audit_refusal`, so no refusal goes unrecorded.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from kapclinic.accounts.models import CLINICAL_ROLES, STAFF_ROLES, Role
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
    """Clinic-level decisions: what a role may do in its clinic, not about one patient."""

    VIEW_AUDIT = "view_audit"
    MANAGE_STAFF = "manage_staff"
    VIEW_PATIENT_LIST = "view_patient_list"
    VIEW_OUTCOMES = "view_outcomes"
    MANAGE_CLINIC = "manage_clinic"  # clinic setup: rooms, visit lengths, controlled-substance settings
    FRONT_DESK = "front_desk"
    USE_CALENDAR = "use_calendar"  # the calendar, chairs, booking and a patient's appointments
    VIEW_REMINDERS = "view_reminders"  # appointment reminders sent and their retries
    # the clinic's outgoing email and its retries: admins run the clinic's mail; prescribers carry safety
    # alerts and may need to push one through
    VIEW_MESSAGES = "view_messages"
    CLINICAL_WORK = "clinical_work"  # clinic-wide clinical work lists, protocol library, own calendar feed
    PROCESS_NOTES = "process_notes"  # psychotherapy process notes (write, read what is shared)
    MANAGE_NOTE_TEMPLATES = "manage_note_templates"
    VIEW_CLINICAL_SETTINGS = "view_clinical_settings"
    CHANGE_CLINICAL_SETTINGS = "change_clinical_settings"  # protocols, alert routing, measure settings
    RUN_SESSIONS = "run_sessions"  # start and monitor dosing sessions
    ORDER_DOSE = "order_dose"  # order, co-sign, override a failed pre-dose check
    VIEW_INVENTORY = "view_inventory"
    HANDLE_DOSES = "handle_doses"  # administer, waste, witness and count controlled substances
    CORRECT_INVENTORY = "correct_inventory"  # reverse a ledger line, resolve a discrepancy
    HANDLE_STOCK = "handle_stock"  # receive, adjust, destroy, report a loss: the clinic's stock roles
    REGISTER_DEA = "register_dea"  # the clinic's stock roles and admins
    OPEN_RECORD = "open_record"  # open a new patient record
    CONFIRM_PORTAL_ADDRESS = "confirm_portal_address"  # invite a patient to a changed email address
    VIEW_INQUIRIES = "view_inquiries"
    CONVERT_INQUIRY = "convert_inquiry"
    MANAGE_CONSENT_DOCUMENTS = "manage_consent_documents"
    CONSENT_IN_CLINIC = "consent_in_clinic"  # a patient's consents, signing on a clinic device
    SELF_SERVICE = "self_service"  # the patient portal: one's own record only
    # Fees, charges, payments, superbills (issue 16): billing staff are front desk and admins
    # (docs/billing.md section 6). They see charge codes and diagnosis codes, not clinical notes.
    BILLING = "billing"
    FILE_UPLOADS = "file_uploads"  # the queue of patients' uploads waiting to be filed (documents)
    READ_MESSAGES = "read_messages"  # the staff inbox of secure messages (conversations, issue 17)
    MESSAGING_SETTINGS = "messaging_settings"  # the expected reply time shown to patients
    NOTIFICATIONS = "notifications"  # the staff bell


ALL = "all"  # every patient of the clinic
CASELOAD = "caseload"  # care-team members only
SELF = "self"

_RULES: dict[str, dict[str, str]] = {
    Role.ADMIN: {
        Action.VIEW_DEMOGRAPHICS: ALL,
        Action.EDIT_DEMOGRAPHICS: ALL,
        Action.SCHEDULE: ALL,
        Action.MANAGE_CARE_TEAM: ALL,
    },
    Role.PRESCRIBER: {
        Action.VIEW_DEMOGRAPHICS: ALL,
        Action.EDIT_DEMOGRAPHICS: ALL,
        Action.VIEW_CLINICAL: ALL,
        Action.EDIT_CLINICAL: ALL,
        Action.PRESCRIBE: ALL,
        Action.MONITOR_SESSION: ALL,
        Action.SCHEDULE: ALL,
        Action.MANAGE_CARE_TEAM: ALL,
    },
    Role.THERAPIST: {
        Action.VIEW_DEMOGRAPHICS: CASELOAD,
        Action.EDIT_DEMOGRAPHICS: CASELOAD,
        Action.VIEW_CLINICAL: CASELOAD,
        Action.EDIT_CLINICAL: CASELOAD,
        Action.SCHEDULE: CASELOAD,
    },
    Role.NURSE: {
        Action.VIEW_DEMOGRAPHICS: ALL,
        Action.VIEW_CLINICAL: ALL,
        Action.EDIT_CLINICAL: ALL,
        Action.MONITOR_SESSION: ALL,
        Action.SCHEDULE: ALL,
    },
    Role.FRONT_DESK: {
        Action.VIEW_DEMOGRAPHICS: ALL,
        Action.EDIT_DEMOGRAPHICS: ALL,
        Action.SCHEDULE: ALL,
        Action.MANAGE_CARE_TEAM: ALL,
    },
    # Patients reach their own record only through the portal (SELF_SERVICE), never staff pages.
    Role.PATIENT: {
        Action.SELF_SERVICE: SELF,
    },
}

_ADMIN, _PRESCRIBER, _THERAPIST, _NURSE, _FRONT_DESK = (
    Role.ADMIN,
    Role.PRESCRIBER,
    Role.THERAPIST,
    Role.NURSE,
    Role.FRONT_DESK,
)

# Which roles may take each clinic-level action. HANDLE_STOCK and REGISTER_DEA also depend on the
# clinic's inventory setting (its stock roles): see `clinic_roles`.
_CLINIC_RULES: dict[ClinicAction, frozenset[str]] = {
    ClinicAction.VIEW_AUDIT: frozenset({_ADMIN}),
    ClinicAction.MANAGE_STAFF: frozenset({_ADMIN}),
    ClinicAction.VIEW_PATIENT_LIST: frozenset({_ADMIN, _PRESCRIBER, _THERAPIST, _NURSE, _FRONT_DESK}),
    ClinicAction.VIEW_OUTCOMES: frozenset({_ADMIN, _PRESCRIBER, _THERAPIST}),
    ClinicAction.MANAGE_CLINIC: frozenset({_ADMIN}),
    ClinicAction.FRONT_DESK: frozenset({_FRONT_DESK}),
    ClinicAction.USE_CALENDAR: STAFF_ROLES,
    ClinicAction.VIEW_REMINDERS: frozenset({_ADMIN, _FRONT_DESK, _PRESCRIBER, _NURSE}),
    ClinicAction.VIEW_MESSAGES: frozenset({_ADMIN, _PRESCRIBER}),
    ClinicAction.CLINICAL_WORK: CLINICAL_ROLES,
    ClinicAction.PROCESS_NOTES: frozenset({_PRESCRIBER, _THERAPIST}),
    ClinicAction.MANAGE_NOTE_TEMPLATES: frozenset({_PRESCRIBER, _THERAPIST}),
    ClinicAction.VIEW_CLINICAL_SETTINGS: frozenset({_PRESCRIBER, _NURSE, _ADMIN}),
    ClinicAction.CHANGE_CLINICAL_SETTINGS: frozenset({_PRESCRIBER}),
    ClinicAction.RUN_SESSIONS: frozenset({_PRESCRIBER, _NURSE}),
    ClinicAction.ORDER_DOSE: frozenset({_PRESCRIBER}),
    ClinicAction.VIEW_INVENTORY: frozenset({_ADMIN, _NURSE, _PRESCRIBER}),
    ClinicAction.HANDLE_DOSES: frozenset({_NURSE, _PRESCRIBER}),
    ClinicAction.CORRECT_INVENTORY: frozenset({_PRESCRIBER}),
    ClinicAction.HANDLE_STOCK: frozenset(),  # the clinic's setting
    ClinicAction.REGISTER_DEA: frozenset({_ADMIN}),  # and the clinic's stock roles
    ClinicAction.OPEN_RECORD: frozenset({_ADMIN, _FRONT_DESK, _PRESCRIBER}),
    # a clinician who knows the patient, never front desk or admin alone
    ClinicAction.CONFIRM_PORTAL_ADDRESS: frozenset({_PRESCRIBER, _THERAPIST}),
    ClinicAction.VIEW_INQUIRIES: STAFF_ROLES,
    ClinicAction.CONVERT_INQUIRY: frozenset({_ADMIN, _FRONT_DESK, _PRESCRIBER}),
    ClinicAction.MANAGE_CONSENT_DOCUMENTS: frozenset({_ADMIN, _PRESCRIBER}),
    ClinicAction.CONSENT_IN_CLINIC: STAFF_ROLES,
    ClinicAction.SELF_SERVICE: frozenset({Role.PATIENT}),
    ClinicAction.BILLING: frozenset({_ADMIN, _FRONT_DESK}),
    ClinicAction.FILE_UPLOADS: STAFF_ROLES,
    ClinicAction.READ_MESSAGES: CLINICAL_ROLES,
    ClinicAction.MESSAGING_SETTINGS: frozenset({_ADMIN, _PRESCRIBER}),
    ClinicAction.NOTIFICATIONS: STAFF_ROLES,
}
_STOCK_ACTIONS = frozenset({ClinicAction.HANDLE_STOCK, ClinicAction.REGISTER_DEA})


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


def clinic_roles(action: ClinicAction, clinic: Any) -> frozenset[str]:
    """The roles that may take `action` in `clinic` (stock handling is a clinic setting)."""
    roles = _CLINIC_RULES[action]
    if action in _STOCK_ACTIONS:
        from kapclinic.inventory.services import stock_roles

        roles = roles | stock_roles(clinic)
    return roles


def clinic_can(actor: Actor, action: ClinicAction) -> bool:
    """May the signed-in `actor` take this clinic-level action in their clinic?"""
    if actor.user is None or actor.role is None or actor.clinic is None:
        return False
    return actor.role in clinic_roles(action, actor.clinic)


def require_clinic(request: HttpRequest, action: ClinicAction) -> Actor:
    """The signed-in actor, when they may take `action` in their clinic; else 403, audited as "denied"
    with the refused page's URL name as the detail (it names the page, and each page has one rule)."""
    actor = actor_from_request(request)
    if not clinic_can(actor, action):
        raise refuse(request, "Your role does not allow this page.")
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
    if actor.role == Role.PATIENT:
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


#: ``open_patient(..., audit=ON_READ)`` for a page that shows a form and takes its POST: a "view" event
#: when the request reads the page (every method but POST), none on a POST, whose service writes its own
#: event (or the view records the refused form), so each request leaves exactly one.
ON_READ: Final = "on_read"


def read_audit(request: HttpRequest, audit: str | None) -> str | None:
    """The event `audit` stands for on this request: `ON_READ` becomes "view", or None on a POST."""
    if audit == ON_READ:
        return None if request.method == "POST" else "view"
    return audit


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
    that follows writes its own event (a create or update), so each request leaves exactly one, and
    `audit=ON_READ` for a page that is read on GET and written on POST (see `read_audit`).
    """
    from kapclinic.audit.services import record_event
    from kapclinic.patients.models import Patient

    actor = actor_from_request(request)
    if actor.clinic is None or actor.user is None:
        raise Http404
    # a patient's own record, loaded by ClinicContextMiddleware
    own: Patient | None = getattr(request, "patient", None)
    try:
        if own is not None and actor.role == Role.PATIENT and own.pk == int(patient_id):
            patient = own
        else:
            patient = Patient.objects.select_related("clinic").get(pk=int(patient_id), clinic=actor.clinic)
    except (Patient.DoesNotExist, ValueError, TypeError):
        raise Http404 from None
    if actor.role == Role.PATIENT and patient.user_id != actor.user_id:
        raise Http404
    if not can(actor, action, patient):
        raise refuse(
            request,
            "Your role does not allow this for this patient.",
            patient=patient,
            object_type=object_type,
            detail=str(action),
        )
    audit = read_audit(request, audit)
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


def document_action(category: str, *, write: bool = False) -> Action:
    """The action a chart document needs (kapclinic.documents): an administrative document (ID card,
    administrative form or letter) is demographics, front desk and admins included; every other
    category is clinical data."""
    from kapclinic.documents.models import is_clinical

    if is_clinical(category):
        return Action.EDIT_CLINICAL if write else Action.VIEW_CLINICAL
    return Action.EDIT_DEMOGRAPHICS if write else Action.VIEW_DEMOGRAPHICS
