"""The resource types the API serves: where each comes from, its search parameters, its mapper.

The mappers are kapclinic/interop/fhir.py's, shared with the per-patient export. Search parameter
names and types follow the R4 base specification (docs/fhir-api.md#search); a parameter not listed for
a type is refused with 400 (strict handling).
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
    # Clinic-level types (Practitioner, Organization): the rows of the grant's clinic, whoever asks;
    # no patient is involved. None for patient data.
    clinic_filter: Callable[[Any], Q] | None = None

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


def _ids(prefix: str) -> Handler:
    return lambda name, value: any_of(value, lambda v: Q(pk=parse_id(name, v, prefix)))


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


def _common(spec_prefix: str, updated: str) -> dict[str, SearchParam]:
    return {
        "_id": SearchParam("_id", "token", _ids(spec_prefix), "The resource id."),
        "_lastUpdated": SearchParam("_lastUpdated", "date", _date(updated), "meta.lastUpdated, ge/le."),
    }


def _patient_params() -> dict[str, SearchParam]:
    return {
        "patient": SearchParam("patient", "reference", _patient_ref("patient"), "Patient/p<id>."),
    }


def _subject_params() -> dict[str, SearchParam]:
    return {
        **_patient_params(),
        "subject": SearchParam("subject", "reference", _patient_ref("patient"), "Patient/p<id>."),
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


# --- rendering --------------------------------------------------------------------------------------


def _with_meta(resource: dict[str, Any], updated: Any) -> dict[str, Any]:
    resource["meta"] = {"lastUpdated": fhir.iso(updated)}
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
            **_common("score", "completed_at"),
            **_subject_params(),
            "date": SearchParam("date", "date", _date("completed_at"), "effectiveDateTime, eq/ge/le/gt/lt."),
            "code": SearchParam("code", "token", _score_code, "LOINC total-score code, e.g. 44261-6."),
            "category": SearchParam(
                "category", "token", _fixed_token(fhir.OBSERVATION_CATEGORY, "survey"), "survey."
            ),
            "status": SearchParam("status", "token", _fixed_token("", "final"), "final."),
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

# Prefetches a page needs (one extra query per page, whatever its size).
PREFETCH: dict[str, tuple[str, ...]] = {"QuestionnaireResponse": ("answers",)}


def row_patient(spec: Spec, row: Model) -> Any:
    return row if spec.patient_field == "pk" else row.patient  # type: ignore[attr-defined]
