"""A patient's record as FHIR R4 resources (see docs/clinical-reference.md#fhir-export, docs/fhir-api.md).

Clinical facts live in relational tables; FHIR is generated on the way out. One mapper per resource
(`patient_resource`, `condition_resource`, ...) is shared by the per-patient `collection` Bundle below
and by the FHIR API (kapclinic/fhirapi), so a record has the same shape and the same id everywhere.
Every resource is validated with fhir.resources (R4B models, structurally identical to R4 for these
resources) before it leaves. Psychotherapy process notes and journal entries are never included: they
are excluded from the right of access and from exports by design.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from kapclinic.patients.models import Patient

LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
LOCAL = "urn:kapclinic:codes"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"

# Total-score codes from docs/clinical-reference.md#instrument-loinc (§4.6):
# PHQ-9 44261-6 [S43c], GAD-7 70274-6 [S44a].
# PCL-5 LOINC codes are UNCONFIRMED in the reference, so a local code is used.
SCORE_CODES: dict[str, tuple[str, str, str]] = {
    "PHQ-9": (LOINC, "44261-6", "PHQ-9 total score"),
    "GAD-7": (LOINC, "70274-6", "GAD-7 total score"),
    "PCL-5": (LOCAL, "pcl5-total", "PCL-5 total score"),
}

# The Questionnaire id of each instrument (the instruments' own FHIR JSON, kapclinic/clinical/instruments).
QUESTIONNAIRE_IDS: dict[str, str] = {"PHQ-9": "phq-9", "GAD-7": "gad-7", "PCL-5": "pcl-5"}

# Resource id prefixes: a record keeps the same id across calls and across the export and the API.
ID_PREFIX: dict[str, str] = {
    "Patient": "p",
    "Condition": "dx",
    "MedicationStatement": "med",
    "AllergyIntolerance": "al",
    "Observation": "score",
    "QuestionnaireResponse": "qr",
    "Appointment": "ap",
    "Practitioner": "pr",
    "Organization": "org",
}

_GENDER = {"female": "female", "male": "male", "intersex": "other", "unknown": "unknown"}


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="seconds")


_iso = iso


def _meta(updated: dt.datetime | None) -> dict[str, Any]:
    return {"meta": {"lastUpdated": iso(updated)}} if updated is not None else {}


def patient_ref(patient_id: int) -> dict[str, str]:
    return {"reference": f"Patient/p{patient_id}"}


def mrn_system(clinic_slug: str) -> str:
    return f"urn:kapclinic:clinic:{clinic_slug}:mrn"


def patient_resource(patient: Patient, system: str) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": f"p{patient.pk}",
        "identifier": [{"system": system, "value": patient.mrn}],
        "name": [{"use": "official", "family": patient.legal_last_name, "given": [patient.legal_first_name]}],
        "birthDate": patient.date_of_birth.isoformat(),
        "gender": _GENDER.get(patient.sex_at_birth, "unknown"),
    }
    if patient.preferred_name:
        resource["name"].append({"use": "usual", "given": [patient.preferred_name]})
    telecom = []
    if patient.phone:
        telecom.append({"system": "phone", "value": patient.phone})
    if patient.email:
        telecom.append({"system": "email", "value": patient.email})
    if telecom:
        resource["telecom"] = telecom
    if patient.address:
        resource["address"] = [{"text": patient.address}]
    if patient.emergency_contact_name:
        contact: dict[str, Any] = {
            "name": {"text": patient.emergency_contact_name},
            "relationship": [{"text": patient.emergency_contact_relationship or "Emergency contact"}],
        }
        if patient.emergency_contact_phone:
            contact["telecom"] = [{"system": "phone", "value": patient.emergency_contact_phone}]
        resource["contact"] = [contact]
    return resource


def _subject(patient: Patient) -> dict[str, str]:
    return patient_ref(patient.pk)


def condition_resource(dx: Any) -> dict[str, Any]:
    """A Diagnosis row as a problem-list Condition (ICD-10-CM, SNOMED CT when recorded)."""
    codings = [{"system": ICD10, "code": dx.icd10, "display": dx.description}]
    if dx.snomed:
        codings.append({"system": SNOMED, "code": dx.snomed})
    return {
        "resourceType": "Condition",
        "id": f"dx{dx.pk}",
        "clinicalStatus": {
            "coding": [
                {"system": CONDITION_CLINICAL, "code": "active" if dx.status == "active" else "resolved"}
            ]
        },
        "category": [{"coding": [{"system": CONDITION_CATEGORY, "code": "problem-list-item"}]}],
        "code": {"coding": codings, "text": dx.description},
        "subject": patient_ref(dx.patient_id),
        "recordedDate": iso(dx.recorded_at),
    }


def medication_statement_resource(med: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationStatement",
        "id": f"med{med.pk}",
        "status": "active" if med.active else "stopped",
        "medicationCodeableConcept": {"text": med.name},
        "subject": patient_ref(med.patient_id),
        "dateAsserted": iso(med.recorded_at),
        **({"dosage": [{"text": med.dose}]} if med.dose else {}),
    }


def allergy_resource(allergy: Any) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "id": f"al{allergy.pk}",
        "code": {"text": allergy.substance},
        "patient": patient_ref(allergy.patient_id),
        "recordedDate": iso(allergy.recorded_at),
        **({"reaction": [{"manifestation": [{"text": allergy.reaction}]}]} if allergy.reaction else {}),
    }


def score_observation_resource(score: Any, patient_id: int) -> dict[str, Any] | None:
    """An instrument total as a survey Observation (US Core screening-assessment shape, docs/fhir-api.md),
    `derivedFrom` the QuestionnaireResponse of the same row. None for an instrument without a code."""
    system_code = SCORE_CODES.get(score.instrument)
    if system_code is None:
        return None
    code_system, code, display = system_code
    return {
        "resourceType": "Observation",
        "id": f"score{score.pk}",
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey"}]}],
        "code": {"coding": [{"system": code_system, "code": code, "display": display}]},
        "subject": patient_ref(patient_id),
        "effectiveDateTime": iso(score.completed_at),
        "valueQuantity": {"value": score.total, "unit": "{score}", "system": UCUM, "code": "{score}"},
        "method": {"text": f"{score.instrument} version {score.instrument_version}"},
        "derivedFrom": [{"reference": f"QuestionnaireResponse/qr{score.pk}"}],
    }


def questionnaire_response_resource(
    response: Any, answers: list[Any], questionnaire_url: str
) -> dict[str, Any]:
    """A completed instrument: the item answers (integer values, by linkId) of one response row."""
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": f"qr{response.pk}",
        "questionnaire": f"{questionnaire_url}|{response.instrument_version}",
        "status": "completed",
        "subject": patient_ref(response.patient_id),
        "authored": iso(response.completed_at),
    }
    items = [
        {"linkId": a.link_id, "answer": [{"valueInteger": a.value}]}
        for a in sorted(answers, key=lambda a: a.item_number)
    ]
    if items:
        resource["item"] = items
    return resource


# Appointment status (scheduling.models.Status) -> FHIR R4 AppointmentStatus.
APPOINTMENT_STATUS = {
    "booked": "booked",
    "completed": "fulfilled",
    "no_show": "noshow",
    "cancelled": "cancelled",
}


def appointment_resource(appointment: Any, kind_label: str) -> dict[str, Any]:
    """A booked visit: the patient and the clinician as participants, start and end instants."""
    status = APPOINTMENT_STATUS.get(appointment.status, "booked")
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": f"ap{appointment.pk}",
        "status": status,
        "serviceType": [{"text": kind_label}],
        "start": iso(appointment.starts_at),
        "end": iso(appointment.ends_at),
        "created": iso(appointment.created_at),
        "participant": [
            {"actor": patient_ref(appointment.patient_id), "status": "accepted"},
            {"actor": {"reference": f"Practitioner/pr{appointment.staff_id}"}, "status": "accepted"},
        ],
    }
    return resource


def practitioner_resource(user: Any) -> dict[str, Any]:
    """A clinician of the clinic: the name only (staff contact details stay inside the clinic)."""
    return {
        "resourceType": "Practitioner",
        "id": f"pr{user.pk}",
        "active": bool(user.is_active),
        "name": [{"text": user.full_name}],
    }


def organization_resource(clinic: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Organization",
        "id": f"org{clinic.pk}",
        "active": bool(clinic.is_active),
        "name": clinic.name,
    }
    telecom = [
        {"system": system, "value": value}
        for system, value in (("phone", clinic.phone), ("email", clinic.email))
        if value
    ]
    if telecom:
        resource["telecom"] = telecom
    if clinic.address:
        resource["address"] = [{"text": clinic.address}]
    return resource


def communication_resources(patient: Patient) -> list[dict[str, Any]]:
    """Every secure message about the patient (conversations app) as a FHIR Communication: the
    patient's threads with the care team and the staff threads about them (both part of the record;
    the staff ones are never shown in the portal but are not withheld from the export)."""
    from kapclinic.conversations.models import Message, ThreadKind

    out: list[dict[str, Any]] = []
    rows = (
        Message.objects.filter(thread__patient=patient)
        .select_related("thread", "author")
        .prefetch_related("attachments")
        .order_by("thread_id", "created_at", "id")
    )
    for m in rows:
        me = _subject(patient)
        staff = {"display": m.author.full_name}
        if m.from_patient:
            sender, recipient = me, [{"display": f"{patient.clinic.name} care team"}]
        elif m.thread.kind == ThreadKind.PATIENT:
            sender, recipient = staff, [me]
        else:
            sender, recipient = staff, [{"display": f"{patient.clinic.name} care team"}]
        out.append(
            {
                "resourceType": "Communication",
                "id": f"msg{m.pk}",
                "status": "completed",
                "category": [
                    {
                        "coding": [
                            {
                                "system": LOCAL,
                                "code": f"secure-message-{m.thread.kind}",
                                "display": m.thread.get_kind_display(),
                            }
                        ]
                    }
                ],
                "subject": me,
                "topic": {"text": m.thread.subject},
                "sent": _iso(m.created_at),
                "sender": sender,
                "recipient": recipient,
                "payload": [
                    {"contentString": m.body},
                    # Files sent with the message: described (type, name, size, date); the file itself
                    # is downloaded from the thread, through the policy, where it is audited.
                    *(
                        {
                            "contentAttachment": {
                                "contentType": a.content_type,
                                "title": a.name,
                                "size": a.size,
                                "creation": _iso(a.uploaded_at),
                            }
                        }
                        for a in m.attachments.all()
                    ),
                ],
                "note": [{"text": f"Thread {m.thread_id}"}],
            }
        )
    return out


def build_bundle(patient: Patient, *, scores: list[Any] | None = None) -> dict[str, Any]:
    """The Bundle as a JSON-ready dict, validated by fhir.resources."""
    resources: list[dict[str, Any]] = [patient_resource(patient, mrn_system(patient.clinic.slug))]
    resources.extend(condition_resource(dx) for dx in patient.diagnoses.all())
    resources.extend(medication_statement_resource(med) for med in patient.medications.all())
    resources.extend(allergy_resource(allergy) for allergy in patient.allergies.all())
    for score in scores or []:
        observation = score_observation_resource(score, patient.pk)
        if observation is not None:
            resources.append(observation)
    resources.extend(communication_resources(patient))
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": iso(dt.datetime.now(dt.UTC)),
        "entry": [
            {"fullUrl": f"urn:kapclinic:{r['resourceType']}/{r['id']}", "resource": r} for r in resources
        ],
    }
    Bundle.model_validate(bundle)  # raises if any resource is malformed
    return bundle
