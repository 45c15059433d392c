"""A patient's record as a FHIR R4 `collection` Bundle (see docs/clinical-reference.md#fhir-export).

Clinical facts live in relational tables; FHIR is generated on the way out. Every resource is
validated with fhir.resources (R4B models, structurally identical to R4 for these resources) before
it leaves. Psychotherapy process notes and journal entries are never included: they are excluded
from the right of access and from exports by design.
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

# Total-score codes from docs/clinical-reference.md#instrument-loinc (§4.6):
# PHQ-9 44261-6 [S43c], GAD-7 70274-6 [S44a].
# PCL-5 LOINC codes are UNCONFIRMED in the reference, so a local code is used.
SCORE_CODES: dict[str, tuple[str, str, str]] = {
    "PHQ-9": (LOINC, "44261-6", "PHQ-9 total score"),
    "GAD-7": (LOINC, "70274-6", "GAD-7 total score"),
    "PCL-5": (LOCAL, "pcl5-total", "PCL-5 total score"),
}

_GENDER = {"female": "female", "male": "male", "intersex": "other", "unknown": "unknown"}


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="seconds")


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
    return {"reference": f"Patient/p{patient.pk}"}


def communication_resources(patient: Patient) -> list[dict[str, Any]]:
    """Every secure message about the patient (conversations app) as a FHIR Communication: the
    patient's threads with the care team and the staff threads about them (both part of the record;
    the staff ones are never shown in the portal but are not withheld from the export)."""
    from kapclinic.conversations.models import Message, ThreadKind

    out: list[dict[str, Any]] = []
    rows = (
        Message.objects.filter(thread__patient=patient)
        .select_related("thread", "author")
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
                "payload": [{"contentString": m.body}],
                "note": [{"text": f"Thread {m.thread_id}"}],
            }
        )
    return out


def build_bundle(patient: Patient, *, scores: list[Any] | None = None) -> dict[str, Any]:
    """The Bundle as a JSON-ready dict, validated by fhir.resources."""
    system = f"urn:kapclinic:clinic:{patient.clinic.slug}:mrn"
    resources: list[dict[str, Any]] = [patient_resource(patient, system)]
    for dx in patient.diagnoses.all():
        codings = [{"system": ICD10, "code": dx.icd10, "display": dx.description}]
        if dx.snomed:
            codings.append({"system": SNOMED, "code": dx.snomed})
        resources.append(
            {
                "resourceType": "Condition",
                "id": f"dx{dx.pk}",
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                            "code": "active" if dx.status == "active" else "resolved",
                        }
                    ]
                },
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                "code": "problem-list-item",
                            }
                        ]
                    }
                ],
                "code": {"coding": codings, "text": dx.description},
                "subject": _subject(patient),
                "recordedDate": _iso(dx.recorded_at),
            }
        )
    for med in patient.medications.all():
        resources.append(
            {
                "resourceType": "MedicationStatement",
                "id": f"med{med.pk}",
                "status": "active" if med.active else "stopped",
                "medicationCodeableConcept": {"text": med.name},
                "subject": _subject(patient),
                "dateAsserted": _iso(med.recorded_at),
                **({"dosage": [{"text": med.dose}]} if med.dose else {}),
            }
        )
    for allergy in patient.allergies.all():
        resources.append(
            {
                "resourceType": "AllergyIntolerance",
                "id": f"al{allergy.pk}",
                "code": {"text": allergy.substance},
                "patient": _subject(patient),
                "recordedDate": _iso(allergy.recorded_at),
                **(
                    {"reaction": [{"manifestation": [{"text": allergy.reaction}]}]}
                    if allergy.reaction
                    else {}
                ),
            }
        )
    for score in scores or []:
        system_code = SCORE_CODES.get(score.instrument)
        if system_code is None:
            continue
        code_system, code, display = system_code
        resources.append(
            {
                "resourceType": "Observation",
                "id": f"score{score.pk}",
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "survey",
                            }
                        ]
                    }
                ],
                "code": {"coding": [{"system": code_system, "code": code, "display": display}]},
                "subject": _subject(patient),
                "effectiveDateTime": _iso(score.completed_at),
                "valueQuantity": {"value": score.total, "unit": "{score}", "system": UCUM, "code": "{score}"},
                "method": {"text": f"{score.instrument} version {score.instrument_version}"},
            }
        )
    resources.extend(communication_resources(patient))
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": _iso(dt.datetime.now(dt.UTC)),
        "entry": [
            {"fullUrl": f"urn:kapclinic:{r['resourceType']}/{r['id']}", "resource": r} for r in resources
        ],
    }
    Bundle.model_validate(bundle)  # raises if any resource is malformed
    return bundle
