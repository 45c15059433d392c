"""A patient's record as FHIR R4 resources (see docs/clinical-reference.md#fhir-export, docs/fhir-api.md).

Clinical facts live in relational tables; FHIR is generated on the way out. One mapper per resource
(`patient_resource`, `condition_resource`, ...) is shared by the per-patient `collection` Bundle below
and by the FHIR API (kapclinic/fhirapi), so a record has the same shape and the same id everywhere.
Every resource is validated with fhir.resources (R4B models, structurally identical to R4 for these
resources) before it leaves. Psychotherapy process notes and journal entries are never included: they
are excluded from the right of access and from exports by design.

Over 600 lines: one mapper per FHIR resource type, each short and independent, shared with the API.
"""

from __future__ import annotations

import datetime as dt
from functools import cache, lru_cache
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
    "VitalSign": "vs",  # Observation (category vital-signs), one per stored reading value
    "Encounter": "enc",
    "Procedure": "proc",
    "MedicationAdministration": "ma",
    "CarePlan": "cp",
    "Consent": "cs",
    "AdverseEvent": "ae",
}

_GENDER = {"female": "female", "male": "male", "intersex": "other", "unknown": "unknown"}


@lru_cache(maxsize=4096)  # the Bulk export formats the same instants many times (a reading's vitals)
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


def group_resource(clinic: Any, members: int) -> dict[str, Any]:
    """The clinic's Group (the one Bulk Data `Group/g<id>/$export` exports): every patient of the clinic,
    counted in `quantity`; the members are not listed (docs/fhir-api.md, Group)."""
    return {
        "resourceType": "Group",
        "id": f"g{clinic.pk}",
        "active": bool(clinic.is_active),
        "type": "person",
        "actual": True,
        "name": f"{clinic.name}: all patients",
        "quantity": int(members),
        "managingEntity": {"reference": f"Organization/org{clinic.pk}"},
    }


def patient_group_resource(group: Any, member_ids: list[int]) -> dict[str, Any]:
    """A Group of patients a clinic admin defined (fhirapi.PatientGroup, `ag<id>`; docs/fhir-api.md#groups):
    its members listed as Patient references, counted in `quantity`; `Group/ag<id>/$export` exports them."""
    resource: dict[str, Any] = {
        "resourceType": "Group",
        "id": f"ag{group.pk}",
        "active": bool(group.active),
        "type": "person",
        "actual": True,
        "name": group.name,
        "quantity": len(member_ids),
        "managingEntity": {"reference": f"Organization/org{group.clinic_id}"},
    }
    if member_ids:
        resource["member"] = [{"entity": patient_ref(pk)} for pk in sorted(member_ids)]
    return resource


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


# --- dosing sessions (docs/fhir-api.md#sessions) ------------------------------------------------------

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
AE_SEVERITY = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
AE_OUTCOME = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"

# sessions.SessionState -> R4 EncounterStatus. An aborted session is "finished" once a dose was given
# (the encounter happened) and "cancelled" before that (it ended before it began).
ENCOUNTER_STATUS = {
    "scheduled": "planned",
    "checked_in": "arrived",
    "predose_passed": "in-progress",
    "dosing": "in-progress",
    "monitoring": "in-progress",
    "recovery": "in-progress",
    "discharged": "finished",
}
# Sessions with a dose given -> R4 EventStatus of their Procedure.
PROCEDURE_STATUS = {"discharged": "completed", "aborted": "stopped"}
ROUTE_TEXT = {"IV": "Intravenous", "IM": "Intramuscular", "SL": "Sublingual", "IN": "Intranasal"}
# sessions.AEOutcome -> R4 adverse-event-outcome; "transferred to emergency care": the outcome is not
# known to the clinic.
AE_OUTCOMES = {
    "resolved": "resolved",
    "resolving": "recovering",
    "ongoing": "ongoing",
    "transferred": "unknown",
}
# sessions.AESeverity -> R4 adverse-event-severity (mild | moderate | severe); life-threatening is severe.
AE_SEVERITIES = {"mild": "mild", "moderate": "moderate", "severe": "severe", "life_threatening": "severe"}


def encounter_ref(session_id: int) -> dict[str, str]:
    return {"reference": f"Encounter/enc{session_id}"}


def _quantity(value: Any, ucum: str) -> dict[str, Any]:
    number = float(value)
    return {
        "value": int(number) if number == int(number) else number,
        "unit": ucum,
        "system": UCUM,
        "code": ucum,
    }


BP_PROFILE = "http://hl7.org/fhir/StructureDefinition/bp"


def _coded(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


@cache
def _vital_codes() -> tuple[Any, Any, Any, dict[str, Any]]:
    """The systolic and diastolic codes, the panel, and each vital's code by its LOINC (the first)."""
    from kapclinic.clinical.vitals import BP_PANEL, Vital
    from kapclinic.clinical.vitals import LOINC as VITAL_CODES

    by_loinc: dict[str, Any] = {}
    for code in VITAL_CODES.values():
        by_loinc.setdefault(code.loinc, code)
    return VITAL_CODES[Vital.SBP], VITAL_CODES[Vital.DBP], BP_PANEL, by_loinc


def vital_sign_resource(observation: Any, patient_id: int, diastolic: Any = None) -> dict[str, Any]:
    """A stored vital sign (sessions.Observation, kind "vital") as an R4 vital-signs Observation: category
    vital-signs, the LOINC code and UCUM unit of clinical/vitals.py (docs/clinical-reference.md §5.1), the
    session's Encounter, the nurse who recorded it as performer.

    Blood pressure is one panel (docs/fhir-api.md#observation): the systolic row carries it, code 85354-9
    with a systolic (8480-6) and a diastolic (8462-4) component in mm[Hg] (`diastolic`: the value taken
    with it), and claims the R4 `bp` profile when both are there; a diastolic value stored alone is a
    panel with that one component. A panel has no valueQuantity."""
    systolic, diastolic_code, panel, by_loinc = _vital_codes()
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"vs{observation.pk}",
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "vital-signs"}]}],
    }
    components: list[tuple[Any, Any]] = []
    if observation.code_system == LOINC and observation.code == systolic.loinc:
        components = [(systolic, observation.value), (diastolic_code, diastolic)]
    elif observation.code_system == LOINC and observation.code == diastolic_code.loinc:
        components = [(diastolic_code, observation.value)]
    if components:
        components = [(part, value) for part, value in components if value is not None]
        if len(components) == 2:
            resource["meta"] = {"profile": [BP_PROFILE]}
        resource["code"] = _coded(LOINC, panel.loinc, panel.display)
    else:
        code = by_loinc.get(observation.code)
        resource["code"] = _coded(
            observation.code_system, observation.code, code.display if code else observation.display
        )
    resource |= {
        "subject": patient_ref(patient_id),
        "encounter": encounter_ref(observation.session_id),
        "effectiveDateTime": iso(observation.at),
        "performer": [{"reference": f"Practitioner/pr{observation.recorded_by_id}"}],
    }
    if components:
        resource["component"] = [
            {"code": _coded(LOINC, part.loinc, part.display), "valueQuantity": _quantity(value, part.ucum)}
            for part, value in components
        ]
    else:
        resource["valueQuantity"] = _quantity(observation.value, code.ucum if code else observation.unit)
    return resource


def body_measure_resource(session: Any, prefix: str, code: Any, value: Any) -> dict[str, Any]:
    """A dosing session's weight or height (29463-7 kg, 8302-2 cm; docs/clinical-reference.md §5.1) as a
    vital-signs Observation, effective when the pre-dose gate passed it (docs/fhir-api.md#observation)."""
    return {
        "resourceType": "Observation",
        "id": f"{prefix}{session.pk}",
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "vital-signs"}]}],
        "code": _coded(LOINC, code.loinc, code.display),
        "subject": patient_ref(session.patient_id),
        "encounter": encounter_ref(session.pk),
        "effectiveDateTime": iso(session.predose_passed_at),
        "valueQuantity": _quantity(value, code.ucum),
    }


def encounter_status(session: Any) -> str:
    if session.state == "aborted":
        return "finished" if session.first_dose_at is not None else "cancelled"
    return ENCOUNTER_STATUS.get(session.state, "unknown")


def encounter_resource(session: Any) -> dict[str, Any]:
    """A dosing session as an ambulatory Encounter (class v3-ActCode AMB), its period from check-in (or
    the scheduled time) to discharge or abort."""
    period: dict[str, str] = {"start": iso(session.checked_in_at or session.scheduled_for)}
    end = session.discharged_at or session.aborted_at
    if end is not None:
        period["end"] = iso(end)
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": f"enc{session.pk}",
        "status": encounter_status(session),
        "class": {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"},
        "type": [{"coding": [{"system": LOCAL, "code": "dosing-session", "display": "Dosing session"}]}],
        "subject": patient_ref(session.patient_id),
        "period": period,
        "serviceProvider": {"reference": f"Organization/org{session.clinic_id}"},
    }
    if session.appointment_id is not None:
        resource["appointment"] = [{"reference": f"Appointment/ap{session.appointment_id}"}]
    return resource


def procedure_resource(session: Any) -> dict[str, Any]:
    """The dosing procedure of a session in which a dose was given (first dose -> discharge or abort)."""
    period: dict[str, str] = {"start": iso(session.first_dose_at)}
    end = session.discharged_at or session.aborted_at
    if end is not None:
        period["end"] = iso(end)
    return {
        "resourceType": "Procedure",
        "id": f"proc{session.pk}",
        "status": PROCEDURE_STATUS.get(session.state, "in-progress"),
        "code": {
            "coding": [{"system": LOCAL, "code": "kap-dosing", "display": "Ketamine dosing session"}],
            "text": f"Dosing session ({session.protocol_id} v{session.protocol_version})",
        },
        "subject": patient_ref(session.patient_id),
        "encounter": encounter_ref(session.pk),
        "performedPeriod": period,
    }


def administration_given_mg(admin: Any, device_count: int | None = None) -> Any:
    """The dose in mg as given: the ordered dose, or for devices completed short (a partial-dose
    reason recorded) the used devices' share of it, or for an IV infusion that delivered less (stopped
    early) the amount infused."""
    infused = getattr(admin, "infused_mg", None)
    if infused is not None:
        return infused
    if admin.partial_dose_reason and admin.devices and device_count is not None:
        return admin.dose_mg * device_count / admin.devices
    return admin.dose_mg


def medication_administration_status(admin: Any, session_state: str) -> str:
    """An IV infusion still running is in progress; everything else given is completed."""
    running = session_state in ("dosing", "monitoring", "recovery")
    if admin.route == "IV" and admin.infusion_stopped_at is None and running:
        return "in-progress"
    return "completed"


def medication_administration_resource(
    admin: Any, patient_id: int, session_state: str, device_count: int | None = None
) -> dict[str, Any]:
    """The dose given: product (a contained Medication carrying the lot and expiry, as R4 puts batch
    details on Medication), route, dose in mg (UCUM), the session's Encounter, who gave it."""
    medication: dict[str, Any] = {"resourceType": "Medication", "id": "med", "code": {"text": admin.product}}
    if admin.lot_number:
        medication["batch"] = {"lotNumber": admin.lot_number}
        if admin.expiry_date is not None:
            medication["batch"]["expirationDate"] = iso(
                dt.datetime.combine(admin.expiry_date, dt.time(), tzinfo=dt.UTC)
            )
    period: dict[str, str] = {"start": iso(admin.administered_at)}
    if admin.infusion_stopped_at is not None:
        period["end"] = iso(admin.infusion_stopped_at)
    resource: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": f"ma{admin.pk}",
        "contained": [medication],
        "status": medication_administration_status(admin, session_state),
        "medicationReference": {"reference": "#med", "display": admin.product},
        "subject": patient_ref(patient_id),
        "context": encounter_ref(admin.session_id),
        "effectivePeriod": period,
        "dosage": {
            "route": {
                "coding": [
                    {
                        "system": LOCAL,
                        "code": admin.route,
                        "display": ROUTE_TEXT.get(admin.route, admin.route),
                    }
                ],
                "text": ROUTE_TEXT.get(admin.route, admin.route),
            },
            "dose": _quantity(administration_given_mg(admin, device_count), "mg"),
        },
    }
    if admin.administered_by_id is not None:
        resource["performer"] = [{"actor": {"reference": f"Practitioner/pr{admin.administered_by_id}"}}]
    return resource


def care_plan_resource(plan: Any, proposals: list[Any]) -> dict[str, Any]:
    """A treatment plan: the protocol, the indication, the patient's goals, the proposed visits."""
    status = {"draft": "draft", "signed": "active", "superseded": "revoked"}.get(plan.status, "unknown")
    indication = [{"system": ICD10, "code": plan.indication_icd10, "display": plan.indication_text}]
    if plan.indication_snomed:
        indication.append({"system": SNOMED, "code": plan.indication_snomed})
    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": f"cp{plan.pk}",
        "status": status,
        "intent": "plan",
        "category": [
            {"coding": [{"system": LOCAL, "code": "kap-treatment-plan", "display": "Treatment plan"}]}
        ],
        "title": plan.protocol_title,
        "description": (
            f"{plan.protocol_title} ({plan.protocol_id} v{plan.protocol_version}): {plan.dosing_sessions} "
            f"dosing sessions, {plan.sessions_per_week} a week; "
            f"adjunct psychotherapy: {plan.modality_label}. "
            f"Indication: {plan.indication_text} ({plan.indication_icd10})."
        ),
        "subject": patient_ref(plan.patient_id),
        "created": iso(plan.created_at),
        "author": {"reference": f"Practitioner/pr{plan.signed_by_id or plan.created_by_id}"},
    }
    if plan.goals.strip():
        resource["note"] = [{"text": f"Goals (the patient's own words): {plan.goals.strip()}"}]
    activities = []
    for p in sorted(proposals, key=lambda p: p.sequence):
        activities.append(
            {
                "detail": {
                    "kind": "Appointment",
                    "code": {"coding": [{"system": LOCAL, "code": f"visit-{p.kind}"}], "text": p.label},
                    "status": "scheduled" if p.booked_ref else "not-started",
                    "description": f"Week {p.week}",
                }
            }
        )
    if activities:
        resource["activity"] = activities
    return resource


def consent_resource(signature: Any) -> dict[str, Any]:
    """A signed treatment consent: the exact text signed (as an attachment), the time, the clinic."""
    import base64

    document = signature.document
    return {
        "resourceType": "Consent",
        "id": f"cs{signature.pk}",
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "treatment"}]},
        "category": [
            {
                "coding": [{"system": LOCAL, "code": "kap-treatment-consent"}],
                "text": f"{document.title} (version {document.version})",
            }
        ],
        "patient": patient_ref(signature.patient_id),
        "dateTime": iso(signature.signed_at),
        "organization": [{"reference": f"Organization/org{document.clinic_id}"}],
        "sourceAttachment": {
            "contentType": "text/plain; charset=utf-8",
            "data": base64.b64encode(signature.signed_text.encode()).decode(),
            "title": f"{document.title} (version {document.version})",
            "creation": iso(signature.signed_at),
        },
        "policy": [{"uri": f"urn:kapclinic:consent-document:{document.pk}"}],
        "provision": {"type": "permit"},
    }


def adverse_event_resource(event: Any, patient_id: int, administration_id: int | None) -> dict[str, Any]:
    """An adverse event recorded in a dosing session, suspected to come from the dose given there."""
    resource: dict[str, Any] = {
        "resourceType": "AdverseEvent",
        "id": f"ae{event.pk}",
        "actuality": "actual",
        "event": {"text": event.description},
        "subject": patient_ref(patient_id),
        "encounter": encounter_ref(event.session_id),
        "date": iso(event.onset_at),
        "recordedDate": iso(event.recorded_at),
        "recorder": {"reference": f"Practitioner/pr{event.recorded_by_id}"},
        "severity": {
            "coding": [{"system": AE_SEVERITY, "code": AE_SEVERITIES.get(event.severity, "severe")}],
            "text": event.get_severity_display(),
        },
        "outcome": {
            "coding": [{"system": AE_OUTCOME, "code": AE_OUTCOMES.get(event.outcome, "unknown")}],
            "text": event.get_outcome_display(),
        },
    }
    if administration_id is not None:
        resource["suspectEntity"] = [
            {"instance": {"reference": f"MedicationAdministration/ma{administration_id}"}}
        ]
    return resource


def side_effect_resource(event: Any, patient_id: int, administration_id: int | None) -> dict[str, Any]:
    """A side effect logged during a dosing session (sessions.SessionEvent of kind side_effect) as an
    AdverseEvent: the clinic's code and label (sessions.models.SIDE_EFFECTS), the time it was logged."""
    from kapclinic.sessions.models import SIDE_EFFECTS

    label = dict(SIDE_EFFECTS).get(event.code, "Side effect")
    text = f"{label}: {event.text.strip()}" if event.text.strip() else label
    resource: dict[str, Any] = {
        "resourceType": "AdverseEvent",
        "id": f"se{event.pk}",
        "actuality": "actual",
        "category": [
            {"coding": [{"system": LOCAL, "code": "session-side-effect", "display": "Side effect"}]}
        ],
        "event": {
            "coding": [{"system": LOCAL, "code": f"side-effect-{event.code or 'other'}", "display": label}],
            "text": text,
        },
        "subject": patient_ref(patient_id),
        "encounter": encounter_ref(event.session_id),
        "date": iso(event.at),
        "recordedDate": iso(event.at),
        "recorder": {"reference": f"Practitioner/pr{event.recorded_by_id}"},
    }
    if administration_id is not None:
        resource["suspectEntity"] = [
            {"instance": {"reference": f"MedicationAdministration/ma{administration_id}"}}
        ]
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


# The API's types that come from dosing sessions, plans and consents, in the order the download lists them.
SESSION_TYPES = (
    "Encounter",
    "Procedure",
    "Observation",
    "MedicationAdministration",
    "AdverseEvent",
    "CarePlan",
    "Consent",
)


def session_resources(patient: Patient) -> list[dict[str, Any]]:
    """The patient's dosing sessions (Encounter, Procedure, vital signs, dose, adverse events and side
    effects), treatment plans and signed consents, with the API's own querysets and mappers
    (kapclinic/fhirapi/resources.py) so the download and the API say the same thing. Score Observations
    come from `scores` in build_bundle, so only the vital-sign part of Observation is read here."""
    from kapclinic.fhirapi.resources import PARTS, prefetch

    out: list[dict[str, Any]] = []
    for resource_type in SESSION_TYPES:
        parts = PARTS[resource_type][1:] if resource_type == "Observation" else PARTS[resource_type]
        for spec in parts:
            rows = spec.queryset().filter(**{spec.patient_field: patient}).order_by("pk")
            out.extend(spec.render(list(rows.prefetch_related(*prefetch(spec))), None))
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
    resources.extend(session_resources(patient))
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
