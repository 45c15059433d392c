"""The resource types the API serves: where each comes from, its search parameters, its mapper.

The mappers are kapclinic/interop/fhir.py's, shared with the per-patient export. Search parameter
names and types follow the R4 base specification (docs/fhir-api.md#search); a parameter not listed for
a type is refused with 400 (strict handling).

Over 600 lines: for each resource type its queryset, search parameters and renderer, then the registry
that names them; each piece is short and used only by the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.db.models import Model, Q, QuerySet

from kapclinic.fhirapi.search import (
    date_lookups,
    invalid,
    parse_date,
    parse_id,
    parse_reference,
    parse_token,
)
from kapclinic.interop import fhir

NOTHING = Q(pk__in=[])
Handler = Callable[[str, str], Q]


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: str  # FHIR search parameter type: token, reference, date, string
    handler: Handler
    documentation: str = ""


@dataclass(frozen=True)
class Spec:
    type: str
    prefix: str
    clinical: bool  # clinical data (VIEW_CLINICAL) or demographics (VIEW_DEMOGRAPHICS)
    queryset: Callable[[], QuerySet[Any]]
    patient_field: str  # the lookup naming the patient ("pk" for Patient)
    updated_field: str
    date_field: str | None
    render: Callable[[list[Any], Any], list[dict[str, Any]]]
    params: dict[str, SearchParam] = field(default_factory=dict)
    # Clinic-level types (Practitioner, Organization, Group): the rows of the grant's clinic, whoever asks;
    # no patient is involved. None for patient data.
    clinic_filter: Callable[[Any], Q] | None = None
    # A clinic-level type only a system client or a user who manages the clinic may read (Group).
    managers_only: bool = False

    def sort_fields(self) -> dict[str, str]:
        fields = {"_id": "pk", "_lastUpdated": self.updated_field}
        if self.date_field is not None:
            fields["date"] = self.date_field
        return fields


def any_of(value: str, one: Callable[[str], Q]) -> Q:
    """A comma-separated value is an OR of its parts (FHIR search)."""
    parts = [one(part) for part in value.split(",")]
    if any(not part for part in parts):  # an empty Q matches every row (and would vanish in an OR)
        return Q()
    result = NOTHING
    for part in parts:
        result |= part
    return result


def _ids(prefix: str, siblings: tuple[str, ...] = ()) -> Handler:
    """`_id`; for a type served from several tables (Observation) an id of a sibling table matches
    nothing here instead of being refused."""

    def one(name: str, v: str) -> Q:
        if any(v.startswith(other) and v[len(other) :].isdigit() for other in siblings):
            return NOTHING
        return Q(pk=parse_id(name, v, prefix))

    return lambda name, value: any_of(value, lambda v: one(name, v))


def _patient_ref(path: str) -> Handler:
    return lambda name, value: any_of(
        value, lambda v: Q(**{f"{path}_id": parse_reference(name, v, "Patient", "p")})
    )


def _date(path: str) -> Handler:
    def handler(name: str, value: str) -> Q:
        if "," in value:
            raise invalid(name, "a date takes one value per parameter (repeat the parameter for a range).")
        return Q(**date_lookups(path, *parse_date(name, value)))

    return handler


def _fixed_token(system: str, code: str) -> Handler:
    """A token every row of the type has (Observation category survey, status final)."""

    def one(value: str) -> Q:
        sys, c = parse_token(value)
        return Q() if c == code and sys in (None, system) else NOTHING

    return lambda name, value: any_of(value, one)


def _score_code(name: str, value: str) -> Q:
    def one(v: str) -> Q:
        sys, code = parse_token(v)
        wanted = [k for k, (s, c, _) in fhir.SCORE_CODES.items() if c == code and sys in (None, s)]
        return Q(instrument__in=wanted) if wanted else NOTHING

    return any_of(value, one)


def _condition_code(name: str, value: str) -> Q:
    def one(v: str) -> Q:
        sys, code = parse_token(v)
        if sys == fhir.ICD10:
            return Q(icd10=code)
        if sys == fhir.SNOMED:
            return Q(snomed=code)
        return Q(icd10=code) | Q(snomed=code) if sys is None else NOTHING

    return any_of(value, one)


def _condition_status(name: str, value: str) -> Q:
    def one(v: str) -> Q:
        sys, code = parse_token(v)
        if sys not in (None, fhir.CONDITION_CLINICAL):
            return NOTHING
        if code == "active":
            return Q(status="active")
        if code == "resolved":
            return ~Q(status="active")
        return NOTHING

    return any_of(value, one)


def _med_status(name: str, value: str) -> Q:
    def one(v: str) -> Q:
        return {"active": Q(active=True), "stopped": Q(active=False)}.get(parse_token(v)[1], NOTHING)

    return any_of(value, one)


def _identifier(name: str, value: str) -> Q:
    def one(v: str) -> Q:
        sys, code = parse_token(v)
        if sys and not (sys.startswith("urn:kapclinic:clinic:") and sys.endswith(":mrn")):
            return NOTHING
        q = Q(mrn=code)
        if sys:
            q &= Q(clinic__slug=sys.removeprefix("urn:kapclinic:clinic:").removesuffix(":mrn"))
        return q

    return any_of(value, one)


def _common(spec_prefix: str, updated: str, siblings: tuple[str, ...] = ()) -> dict[str, SearchParam]:
    return {
        "_id": SearchParam("_id", "token", _ids(spec_prefix, siblings), "The resource id."),
        "_lastUpdated": SearchParam("_lastUpdated", "date", _date(updated), "meta.lastUpdated, ge/le."),
    }


def _patient_params(path: str = "patient") -> dict[str, SearchParam]:
    return {
        "patient": SearchParam("patient", "reference", _patient_ref(path), "Patient/p<id>."),
    }


def _subject_params(path: str = "patient") -> dict[str, SearchParam]:
    return {
        **_patient_params(path),
        "subject": SearchParam("subject", "reference", _patient_ref(path), "Patient/p<id>."),
    }


# --- querysets (imports deferred: the registry is built at import time of the URLconf) ---------------


def _patients() -> QuerySet[Any]:
    from kapclinic.patients.models import Patient

    return Patient.objects.all()


def _scores() -> QuerySet[Any]:
    from kapclinic.measures.models import InstrumentResponse

    return InstrumentResponse.objects.filter(instrument__in=list(fhir.SCORE_CODES))


def _responses() -> QuerySet[Any]:
    from kapclinic.measures.models import InstrumentResponse

    return InstrumentResponse.objects.filter(instrument__in=list(fhir.QUESTIONNAIRE_IDS))


def _diagnoses() -> QuerySet[Any]:
    from kapclinic.patients.models import Diagnosis

    return Diagnosis.objects.all()


def _medications() -> QuerySet[Any]:
    from kapclinic.patients.models import Medication

    return Medication.objects.all()


def _allergies() -> QuerySet[Any]:
    from kapclinic.patients.models import Allergy

    return Allergy.objects.all()


def _appointments() -> QuerySet[Any]:
    from kapclinic.scheduling.models import Appointment

    return Appointment.objects.all()


def _appointment_status(name: str, value: str) -> Q:
    reverse = {v: k for k, v in fhir.APPOINTMENT_STATUS.items()}
    return any_of(value, lambda v: Q(status=reverse[v]) if v in reverse else NOTHING)


def _render_appointments(rows: list[Any], grant: Any) -> list[dict[str, Any]]:
    return [
        _with_meta(fhir.appointment_resource(a, a.get_kind_display()), a.cancelled_at or a.created_at)
        for a in rows
    ]


def _staff() -> QuerySet[Any]:
    from kapclinic.accounts.models import User

    return User.objects.all()


def _staff_of(clinic: Any) -> Q:
    from kapclinic.accounts.models import Membership

    return Q(pk__in=Membership.objects.filter(clinic=clinic, is_active=True).values("user_id"))


def _clinics() -> QuerySet[Any]:
    from kapclinic.accounts.models import Clinic

    return Clinic.objects.all()


def _patient_groups() -> QuerySet[Any]:
    from kapclinic.fhirapi.models import PatientGroup

    return PatientGroup.objects.all()


def _served_groups(clinic: Any) -> Q:
    from kapclinic.fhirapi.groups import served

    return served(clinic)


def _render_patient_groups(rows: list[Any], grant: Any) -> list[dict[str, Any]]:
    return [
        _with_meta(fhir.patient_group_resource(g, [p.pk for p in g.members.all()]), g.updated_at)
        for g in rows
    ]


def _groups() -> QuerySet[Any]:
    """The clinics as Groups: the number of patients and the latest patient added (one query)."""
    from django.db.models import Count, Max
    from django.db.models.functions import Coalesce

    from kapclinic.accounts.models import Clinic

    return Clinic.objects.annotate(
        fhir_members=Count("patients"), fhir_updated=Coalesce(Max("patients__created_at"), "created_at")
    )


# --- dosing sessions (Observation vital signs, Encounter, Procedure, MedicationAdministration,
# AdverseEvent), treatment plans (CarePlan), signed consents (Consent) ---------------------------------

# Sessions have no "updated" column: meta.lastUpdated (and _lastUpdated, _since) is the latest of the
# timestamps a session's state changes write.
_SESSION_TIMES = (
    "checked_in_at",
    "predose_passed_at",
    "first_dose_at",
    "monitoring_started_at",
    "recovery_started_at",
    "discharged_at",
    "aborted_at",
)


def _latest(base: str, *others: str) -> Any:
    from django.db.models.functions import Coalesce, Greatest

    return Greatest(base, *(Coalesce(name, base) for name in others))


def _sessions() -> QuerySet[Any]:
    from django.db.models.functions import Coalesce

    from kapclinic.sessions.models import DosingSession

    return DosingSession.objects.annotate(
        fhir_updated=_latest("created_at", *_SESSION_TIMES),
        fhir_start=Coalesce("checked_in_at", "scheduled_for"),
    )


def _dosed_sessions() -> QuerySet[Any]:
    return _sessions().filter(first_dose_at__isnull=False)


def _vital_signs() -> QuerySet[Any]:
    """Vital-sign rows, blood pressure as one panel (docs/fhir-api.md#observation): the systolic row
    carries the diastolic value taken with it (same session, reading and time; a subquery, not a query
    per row), and a diastolic row with such a systolic partner is not a resource of its own."""
    from django.db.models import Exists, OuterRef, Subquery

    from kapclinic.clinical.vitals import LOINC as VITAL_CODES
    from kapclinic.clinical.vitals import Vital
    from kapclinic.sessions.models import Observation, ObservationKind

    vitals = Observation.objects.filter(kind=ObservationKind.VITAL, code_system=fhir.LOINC)
    same_reading = {"session": OuterRef("session"), "reading": OuterRef("reading"), "at": OuterRef("at")}
    systolic = vitals.filter(code=VITAL_CODES[Vital.SBP].loinc, **same_reading)
    diastolic = vitals.filter(code=VITAL_CODES[Vital.DBP].loinc, **same_reading).order_by("pk")
    return (
        Observation.objects.filter(kind=ObservationKind.VITAL)
        .exclude(Q(code=VITAL_CODES[Vital.DBP].loinc, code_system=fhir.LOINC) & Q(Exists(systolic)))
        .annotate(bp_diastolic=Subquery(diastolic.values("value")[:1]))
        .select_related("session")
    )


def _administrations() -> QuerySet[Any]:
    from django.db.models import Count, IntegerField, OuterRef, Subquery

    from kapclinic.sessions.models import Administration, DeviceUse

    devices = (
        DeviceUse.objects.filter(administration=OuterRef("pk"))
        .values("administration")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        Administration.objects.filter(administered_at__isnull=False)
        .select_related("session")
        .annotate(
            fhir_updated=_latest("administered_at", "infusion_stopped_at", "route_recorded_at"),
            device_count=Subquery(devices, output_field=IntegerField()),
        )
    )


def _adverse_events() -> QuerySet[Any]:
    from django.db.models import F

    from kapclinic.sessions.models import AdverseEvent

    return AdverseEvent.objects.select_related("session").annotate(
        administration_id=F("session__administration__id")
    )


def _side_effects() -> QuerySet[Any]:
    from django.db.models import F

    from kapclinic.sessions.models import EventKind, SessionEvent

    return (
        SessionEvent.objects.filter(kind=EventKind.SIDE_EFFECT)
        .select_related("session")
        .annotate(administration_id=F("session__administration__id"))
    )


def _plans() -> QuerySet[Any]:
    from kapclinic.treatment.models import TreatmentPlan

    return TreatmentPlan.objects.annotate(fhir_updated=_latest("created_at", "signed_at"))


def _consents() -> QuerySet[Any]:
    from kapclinic.consent.models import ConsentSignature

    return ConsentSignature.objects.select_related("document")


def _vital_code(name: str, value: str) -> Q:
    """Observation.code: 85354-9 is the blood-pressure panel (its systolic or lone diastolic row); the
    systolic and diastolic codes are components, not codes, of a served Observation (match nothing)."""
    from kapclinic.clinical.vitals import BP_PANEL, Vital
    from kapclinic.clinical.vitals import LOINC as VITAL_CODES

    bp = {VITAL_CODES[Vital.SBP].loinc, VITAL_CODES[Vital.DBP].loinc}
    codes = {c.loinc for c in VITAL_CODES.values()} - bp

    def one(v: str) -> Q:
        sys, code = parse_token(v)
        if sys not in (None, fhir.LOINC):
            return NOTHING
        if code == BP_PANEL.loinc:
            return Q(code__in=sorted(bp), code_system=fhir.LOINC)
        return Q(code=code) if code in codes else NOTHING

    return any_of(value, one)


def _component_tokens(name: str, value: str) -> list[tuple[str | None, str]]:
    """`component-code` values, checked: each part `code` or `system|code`, both without spaces or a
    second `|`; an empty part is a 400 like any malformed search value."""
    tokens = []
    for part in value.split(","):
        sys, code = parse_token(part)
        if not code or "|" in code or any(c.isspace() for c in part):
            raise invalid(name, f"{part[:40]!r} is not a token (code or system|code).")
        tokens.append((sys, code))
    return tokens


def _vital_component_code(name: str, value: str) -> Q:
    """Observation.component.code (US Core `component-code`): the systolic (8480-6) or diastolic (8462-4)
    code finds the blood-pressure panels having that component (a systolic row has its systolic value
    and, when one was taken with it, the diastolic; a lone diastolic row only that); other codes nothing."""
    from kapclinic.clinical.vitals import LOINC as VITAL_CODES
    from kapclinic.clinical.vitals import Vital

    systolic, diastolic = VITAL_CODES[Vital.SBP].loinc, VITAL_CODES[Vital.DBP].loinc
    result = NOTHING
    for sys, code in _component_tokens(name, value):
        if sys not in (None, fhir.LOINC):
            continue
        if code == systolic:
            result |= Q(code=systolic, code_system=fhir.LOINC)
        elif code == diastolic:
            result |= Q(code=systolic, code_system=fhir.LOINC, bp_diastolic__isnull=False)
            result |= Q(code=diastolic, code_system=fhir.LOINC)
    return result


def _no_components(name: str, value: str) -> Q:
    """`component-code` on an Observation without components (scores, weight, height): checked, then
    nothing matches."""
    _component_tokens(name, value)
    return NOTHING


_COMPONENT_CODE_NONE = SearchParam("component-code", "token", _no_components, "")


def _reverse_status(mapping: dict[str, Q]) -> Handler:
    """A status token -> the rows in that FHIR status (an unknown status matches nothing)."""

    def one(v: str) -> Q:
        sys, code = parse_token(v)
        return mapping.get(code, NOTHING) if sys in (None, "") else NOTHING

    return lambda name, value: any_of(value, one)


_RUNNING = ("dosing", "monitoring", "recovery")
_ENCOUNTER_STATUS = {
    "planned": Q(state="scheduled"),
    "arrived": Q(state="checked_in"),
    "in-progress": Q(state__in=["predose_passed", *_RUNNING]),
    "finished": Q(state="discharged") | Q(state="aborted", first_dose_at__isnull=False),
    "cancelled": Q(state="aborted", first_dose_at__isnull=True),
}
_PROCEDURE_STATUS = {
    "completed": Q(state="discharged"),
    "stopped": Q(state="aborted"),
    "in-progress": ~Q(state__in=["discharged", "aborted"]),
}
_INFUSING = Q(route="IV", infusion_stopped_at__isnull=True, session__state__in=_RUNNING)
_ADMINISTRATION_STATUS = {"in-progress": _INFUSING, "completed": ~_INFUSING}
_PLAN_STATUS = {"draft": Q(status="draft"), "active": Q(status="signed"), "revoked": Q(status="superseded")}


def _ae_severity(name: str, value: str) -> Q:
    def one(v: str) -> Q:
        sys, code = parse_token(v)
        if sys not in (None, fhir.AE_SEVERITY):
            return NOTHING
        wanted = [k for k, c in fhir.AE_SEVERITIES.items() if c == code]
        return Q(severity__in=wanted) if wanted else NOTHING

    return any_of(value, one)


def _render_vital_signs(rows: list[Any], grant: Any) -> list[dict[str, Any]]:
    return [_with_meta(fhir.vital_sign_resource(o, o.session.patient_id, o.bp_diastolic), o.at) for o in rows]


def _render_encounters(rows: list[Any], grant: Any) -> list[dict[str, Any]]:
    return [_with_meta(fhir.encounter_resource(s), s.fhir_updated) for s in rows]


def _render_procedures(rows: list[Any], grant: Any) -> list[dict[str, Any]]:
    return [_with_meta(fhir.procedure_resource(s), s.fhir_updated) for s in rows]


def _render_administrations(rows: list[Any], grant: Any) -> list[dict[str, Any]]:
    return [
        _with_meta(
            fhir.medication_administration_resource(
                a, a.session.patient_id, a.session.state, a.device_count or 0
            ),
            a.fhir_updated,
        )
        for a in rows
    ]


def _render_adverse_events(rows: list[Any], grant: Any) -> list[dict[str, Any]]:
    return [
        _with_meta(fhir.adverse_event_resource(e, e.session.patient_id, e.administration_id), e.recorded_at)
        for e in rows
    ]


def _render_side_effects(rows: list[Any], grant: Any) -> list[dict[str, Any]]:
    return [
        _with_meta(fhir.side_effect_resource(e, e.session.patient_id, e.administration_id), e.at)
        for e in rows
    ]


def _render_plans(rows: list[Any], grant: Any) -> list[dict[str, Any]]:
    return [_with_meta(fhir.care_plan_resource(p, list(p.proposals.all())), p.fhir_updated) for p in rows]


def _render_consents(rows: list[Any], grant: Any) -> list[dict[str, Any]]:
    return [_with_meta(fhir.consent_resource(c), c.signed_at) for c in rows]


# --- rendering --------------------------------------------------------------------------------------


def _with_meta(resource: dict[str, Any], updated: Any) -> dict[str, Any]:
    resource["meta"] = {**resource.get("meta", {}), "lastUpdated": fhir.iso(updated)}
    return resource


@cache
def questionnaire_url(instrument: str) -> str:
    from kapclinic.clinical.instruments import questionnaire_json

    return str(questionnaire_json(instrument)["url"])


def _render_patients(rows: list[Any], grant: Any) -> list[dict[str, Any]]:
    system = fhir.mrn_system(grant.clinic.slug)
    return [_with_meta(fhir.patient_resource(p, system), p.updated_at) for p in rows]


def _render_scores(rows: list[Any], grant: Any) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        resource = fhir.score_observation_resource(row, row.patient_id)
        if resource is not None:
            out.append(_with_meta(resource, row.completed_at))
    return out


def _render_responses(rows: list[Any], grant: Any) -> list[dict[str, Any]]:
    return [
        _with_meta(
            fhir.questionnaire_response_resource(r, list(r.answers.all()), questionnaire_url(r.instrument)),
            r.completed_at,
        )
        for r in rows
    ]


def _recorded(mapper: Callable[[Any], dict[str, Any]]) -> Callable[[list[Any], Any], list[dict[str, Any]]]:
    return lambda rows, grant: [_with_meta(mapper(r), r.recorded_at) for r in rows]


SPECS: dict[str, Spec] = {
    "Patient": Spec(
        "Patient",
        "p",
        clinical=False,
        queryset=_patients,
        patient_field="pk",
        updated_field="updated_at",
        date_field=None,
        render=_render_patients,
        params={
            **_common("p", "updated_at"),
            "identifier": SearchParam("identifier", "token", _identifier, "The record number (MRN)."),
        },
    ),
    "Observation": Spec(
        "Observation",
        "score",
        clinical=True,
        queryset=_scores,
        patient_field="patient",
        updated_field="completed_at",
        date_field="completed_at",
        render=_render_scores,
        params={
            **_common("score", "completed_at", siblings=("vs", "wt", "ht")),
            **_subject_params(),
            "date": SearchParam("date", "date", _date("completed_at"), "effectiveDateTime, eq/ge/le/gt/lt."),
            "code": SearchParam("code", "token", _score_code, "LOINC total-score code, e.g. 44261-6."),
            "category": SearchParam(
                "category", "token", _fixed_token(fhir.OBSERVATION_CATEGORY, "survey"), "survey."
            ),
            "status": SearchParam("status", "token", _fixed_token("", "final"), "final."),
            "component-code": _COMPONENT_CODE_NONE,
        },
    ),
    "QuestionnaireResponse": Spec(
        "QuestionnaireResponse",
        "qr",
        clinical=True,
        queryset=_responses,
        patient_field="patient",
        updated_field="completed_at",
        date_field="completed_at",
        render=_render_responses,
        params={
            **_common("qr", "completed_at"),
            **_subject_params(),
            "authored": SearchParam("authored", "date", _date("completed_at"), "authored, eq/ge/le/gt/lt."),
            "status": SearchParam("status", "token", _fixed_token("", "completed"), "completed."),
        },
    ),
    "Condition": Spec(
        "Condition",
        "dx",
        clinical=True,
        queryset=_diagnoses,
        patient_field="patient",
        updated_field="recorded_at",
        date_field="recorded_at",
        render=_recorded(fhir.condition_resource),
        params={
            **_common("dx", "recorded_at"),
            **_subject_params(),
            "recorded-date": SearchParam("recorded-date", "date", _date("recorded_at"), "recordedDate."),
            "code": SearchParam("code", "token", _condition_code, "ICD-10-CM or SNOMED CT."),
            "category": SearchParam(
                "category", "token", _fixed_token(fhir.CONDITION_CATEGORY, "problem-list-item"), ""
            ),
            "clinical-status": SearchParam("clinical-status", "token", _condition_status, "active|resolved."),
        },
    ),
    "MedicationStatement": Spec(
        "MedicationStatement",
        "med",
        clinical=True,
        queryset=_medications,
        patient_field="patient",
        updated_field="recorded_at",
        date_field="recorded_at",
        render=_recorded(fhir.medication_statement_resource),
        params={
            **_common("med", "recorded_at"),
            **_subject_params(),
            "status": SearchParam("status", "token", _med_status, "active|stopped."),
        },
    ),
    "AllergyIntolerance": Spec(
        "AllergyIntolerance",
        "al",
        clinical=True,
        queryset=_allergies,
        patient_field="patient",
        updated_field="recorded_at",
        date_field="recorded_at",
        render=_recorded(fhir.allergy_resource),
        params={
            **_common("al", "recorded_at"),
            **_patient_params(),
            "date": SearchParam("date", "date", _date("recorded_at"), "recordedDate."),
        },
    ),
    # Scheduling data: read as clinical (front desk and admin use the schedule pages instead).
    "Appointment": Spec(
        "Appointment",
        "ap",
        clinical=True,
        queryset=_appointments,
        patient_field="patient",
        updated_field="created_at",
        date_field="starts_at",
        render=_render_appointments,
        params={
            **_common("ap", "created_at"),
            "patient": SearchParam("patient", "reference", _patient_ref("patient"), "Patient/p<id>."),
            "date": SearchParam("date", "date", _date("starts_at"), "start, eq/ge/le/gt/lt."),
            "status": SearchParam(
                "status", "token", _appointment_status, "booked|fulfilled|noshow|cancelled."
            ),
        },
    ),
    "Practitioner": Spec(
        "Practitioner",
        "pr",
        clinical=False,
        queryset=_staff,
        patient_field="pk",
        updated_field="date_joined",
        date_field=None,
        render=lambda rows, grant: [_with_meta(fhir.practitioner_resource(u), u.date_joined) for u in rows],
        params=_common("pr", "date_joined"),
        clinic_filter=_staff_of,
    ),
    # The clinic's Group (Bulk Data `Group/g<id>/$export`): system clients and clinic managers only.
    "Group": Spec(
        "Group",
        "g",
        clinical=False,
        queryset=_groups,
        patient_field="pk",
        updated_field="fhir_updated",
        date_field=None,
        render=lambda rows, grant: [
            _with_meta(fhir.group_resource(c, c.fhir_members), c.fhir_updated) for c in rows
        ],
        params=_common("g", "fhir_updated", siblings=("ag",)),
        clinic_filter=lambda clinic: Q(pk=clinic.pk),
        managers_only=True,
    ),
    "Organization": Spec(
        "Organization",
        "org",
        clinical=False,
        queryset=_clinics,
        patient_field="pk",
        updated_field="created_at",
        date_field=None,
        render=lambda rows, grant: [_with_meta(fhir.organization_resource(c), c.created_at) for c in rows],
        params=_common("org", "created_at"),
        clinic_filter=lambda clinic: Q(pk=clinic.pk),
    ),
}

# Vital signs are Observations too: one type served from two tables (docs/fhir-api.md#observation).
# Both parts take the same parameter names; a search runs on each and merges the pages by keyset.
_SESSION = "session__patient"
VITAL_SIGNS = Spec(
    "Observation",
    "vs",
    clinical=True,
    queryset=_vital_signs,
    patient_field=_SESSION,
    updated_field="at",
    date_field="at",
    render=_render_vital_signs,
    params={
        **_common("vs", "at", siblings=("score", "wt", "ht")),
        **_subject_params(_SESSION),
        "date": SearchParam("date", "date", _date("at"), "effectiveDateTime, eq/ge/le/gt/lt."),
        "code": SearchParam(
            "code", "token", _vital_code, "LOINC vital-sign code, e.g. 8867-4; blood pressure 85354-9."
        ),
        "category": SearchParam(
            "category", "token", _fixed_token(fhir.OBSERVATION_CATEGORY, "vital-signs"), "vital-signs."
        ),
        "status": SearchParam("status", "token", _fixed_token("", "final"), "final."),
        "component-code": SearchParam(
            "component-code",
            "token",
            _vital_component_code,
            "Blood-pressure panels by component: http://loinc.org|8480-6 (systolic) or 8462-4 (diastolic).",
        ),
    },
)


def _body_measure(field_name: str, prefix: str, code: Any) -> Spec:
    """Weight or height of a dosing session (DosingSession.weight_kg / height_cm) as a vital-signs
    Observation, once the pre-dose gate passed them (they cannot change after): effective at that time
    (docs/fhir-api.md#observation; LOINC 29463-7 kg and 8302-2 cm, docs/clinical-reference.md §5.1)."""

    def queryset() -> QuerySet[Any]:
        from kapclinic.sessions.models import DosingSession

        return DosingSession.objects.filter(
            **{f"{field_name}__isnull": False, "predose_passed_at__isnull": False}
        )

    def render(rows: list[Any], grant: Any) -> list[dict[str, Any]]:
        return [
            _with_meta(
                fhir.body_measure_resource(s, prefix, code, getattr(s, field_name)), s.predose_passed_at
            )
            for s in rows
        ]

    others = tuple(p for p in ("score", "vs", "wt", "ht") if p != prefix)
    return Spec(
        "Observation",
        prefix,
        clinical=True,
        queryset=queryset,
        patient_field="patient",
        updated_field="predose_passed_at",
        date_field="predose_passed_at",
        render=render,
        params={
            **_common(prefix, "predose_passed_at", siblings=others),
            **_subject_params(),
            "date": SearchParam(
                "date", "date", _date("predose_passed_at"), "effectiveDateTime, eq/ge/le/gt/lt."
            ),
            "code": SearchParam(
                "code", "token", _fixed_token(fhir.LOINC, code.loinc), f"{code.display} {code.loinc}."
            ),
            "category": SearchParam(
                "category", "token", _fixed_token(fhir.OBSERVATION_CATEGORY, "vital-signs"), "vital-signs."
            ),
            "status": SearchParam("status", "token", _fixed_token("", "final"), "final."),
            "component-code": _COMPONENT_CODE_NONE,
        },
    )


def _body_specs() -> tuple[Spec, Spec]:
    from kapclinic.clinical.vitals import BODY_HEIGHT, BODY_WEIGHT

    return _body_measure("weight_kg", "wt", BODY_WEIGHT), _body_measure("height_cm", "ht", BODY_HEIGHT)


BODY_WEIGHT_SPEC, BODY_HEIGHT_SPEC = _body_specs()

SESSION_SPECS: dict[str, Spec] = {
    "Encounter": Spec(
        "Encounter",
        "enc",
        clinical=True,
        queryset=_sessions,
        patient_field="patient",
        updated_field="fhir_updated",
        date_field="fhir_start",
        render=_render_encounters,
        params={
            **_common("enc", "fhir_updated"),
            **_subject_params(),
            "date": SearchParam("date", "date", _date("fhir_start"), "period start, eq/ge/le/gt/lt."),
            "status": SearchParam(
                "status",
                "token",
                _reverse_status(_ENCOUNTER_STATUS),
                "planned|arrived|in-progress|finished|cancelled.",
            ),
        },
    ),
    "Procedure": Spec(
        "Procedure",
        "proc",
        clinical=True,
        queryset=_dosed_sessions,
        patient_field="patient",
        updated_field="fhir_updated",
        date_field="first_dose_at",
        render=_render_procedures,
        params={
            **_common("proc", "fhir_updated"),
            **_subject_params(),
            "date": SearchParam("date", "date", _date("first_dose_at"), "performed (first dose)."),
            "status": SearchParam(
                "status", "token", _reverse_status(_PROCEDURE_STATUS), "in-progress|completed|stopped."
            ),
        },
    ),
    "MedicationAdministration": Spec(
        "MedicationAdministration",
        "ma",
        clinical=True,
        queryset=_administrations,
        patient_field=_SESSION,
        updated_field="fhir_updated",
        date_field="administered_at",
        render=_render_administrations,
        params={
            **_common("ma", "fhir_updated"),
            **_subject_params(_SESSION),
            "effective-time": SearchParam(
                "effective-time", "date", _date("administered_at"), "effective start, eq/ge/le/gt/lt."
            ),
            "date": SearchParam("date", "date", _date("administered_at"), "The same as effective-time."),
            "status": SearchParam(
                "status", "token", _reverse_status(_ADMINISTRATION_STATUS), "in-progress|completed."
            ),
        },
    ),
    "CarePlan": Spec(
        "CarePlan",
        "cp",
        clinical=True,
        queryset=_plans,
        patient_field="patient",
        updated_field="fhir_updated",
        date_field="created_at",
        render=_render_plans,
        params={
            **_common("cp", "fhir_updated"),
            **_subject_params(),
            "date": SearchParam("date", "date", _date("created_at"), "created, eq/ge/le/gt/lt."),
            "status": SearchParam("status", "token", _reverse_status(_PLAN_STATUS), "draft|active|revoked."),
        },
    ),
    "Consent": Spec(
        "Consent",
        "cs",
        clinical=True,
        queryset=_consents,
        patient_field="patient",
        updated_field="signed_at",
        date_field="signed_at",
        render=_render_consents,
        params={
            **_common("cs", "signed_at"),
            **_patient_params(),
            "date": SearchParam("date", "date", _date("signed_at"), "dateTime (signed), eq/ge/le/gt/lt."),
            "status": SearchParam("status", "token", _fixed_token("", "active"), "active."),
        },
    ),
    "AdverseEvent": Spec(
        "AdverseEvent",
        "ae",
        clinical=True,
        queryset=_adverse_events,
        patient_field=_SESSION,
        updated_field="recorded_at",
        date_field="onset_at",
        render=_render_adverse_events,
        params={
            **_common("ae", "recorded_at", siblings=("se",)),
            **_subject_params(_SESSION),
            "date": SearchParam("date", "date", _date("onset_at"), "date (onset), eq/ge/le/gt/lt."),
            "severity": SearchParam("severity", "token", _ae_severity, "mild|moderate|severe."),
        },
    ),
}
SPECS.update(SESSION_SPECS)

# Side effects logged during a session (nausea, dizziness...) are AdverseEvents too, with no severity.
SIDE_EFFECTS = Spec(
    "AdverseEvent",
    "se",
    clinical=True,
    queryset=_side_effects,
    patient_field=_SESSION,
    updated_field="at",
    date_field="at",
    render=_render_side_effects,
    params={
        **_common("se", "at", siblings=("ae",)),
        **_subject_params(_SESSION),
        "date": SearchParam("date", "date", _date("at"), "date (when logged), eq/ge/le/gt/lt."),
        "severity": SearchParam("severity", "token", lambda name, value: NOTHING, "(side effects have none)"),
    },
)

# Groups a clinic admin defines (docs/fhir-api.md#groups): `ag<id>`, members listed; the same access
# and parameters as the clinic's Group, served next to it; a deactivated one is not served.
PATIENT_GROUPS = Spec(
    "Group",
    "ag",
    clinical=False,
    queryset=_patient_groups,
    patient_field="pk",
    updated_field="updated_at",
    date_field=None,
    render=_render_patient_groups,
    params=_common("ag", "updated_at", siblings=("g",)),
    clinic_filter=_served_groups,
    managers_only=True,
)

# Every table behind each type, in the order a search merges them (the first is SPECS[type]).
PARTS: dict[str, tuple[Spec, ...]] = {name: (spec,) for name, spec in SPECS.items()}
PARTS["Observation"] = (SPECS["Observation"], VITAL_SIGNS, BODY_WEIGHT_SPEC, BODY_HEIGHT_SPEC)
PARTS["AdverseEvent"] = (SPECS["AdverseEvent"], SIDE_EFFECTS)
PARTS["Group"] = (SPECS["Group"], PATIENT_GROUPS)

# Prefetches a page needs (one extra query per page, whatever its size).
PREFETCH: dict[str, tuple[str, ...]] = {"QuestionnaireResponse": ("answers",), "CarePlan": ("proposals",)}


def prefetch(spec: Spec) -> tuple[Any, ...]:
    if spec is PATIENT_GROUPS:  # the members' ids only
        from django.db.models import Prefetch

        from kapclinic.patients.models import Patient

        return (Prefetch("members", queryset=Patient.objects.only("pk")),)
    return PREFETCH.get(spec.type, ())


def part_for_id(resource_type: str, resource_id: str) -> Spec | None:
    """The table an id belongs to (`score12` or `vs7` for an Observation), or None."""
    for spec in PARTS.get(resource_type, ()):
        rest = resource_id[len(spec.prefix) :]
        if resource_id.startswith(spec.prefix) and rest.isdigit():
            return spec
    return None


def _walk(row: Any, path: str) -> Any:
    for name in path.split("__"):
        row = getattr(row, name)
    return row


def row_patient(spec: Spec, row: Model) -> Any:
    return row if spec.patient_field == "pk" else _walk(row, spec.patient_field)


def row_patient_id(spec: Spec, row: Any) -> int:
    if spec.patient_field == "pk":
        return int(row.pk)
    *parents, last = spec.patient_field.split("__")
    holder = _walk(row, "__".join(parents)) if parents else row
    return int(getattr(holder, f"{last}_id"))
