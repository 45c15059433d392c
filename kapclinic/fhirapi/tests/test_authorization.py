"""The authorization matrix of the API: every resource type x every token context x own, other patient's
and other clinic's ids -> data only where policy.py allows it, otherwise 403 or 404, never data."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import pytest
from oauth2_provider.models import AccessToken

from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.fhirapi import clients
from kapclinic.fhirapi.models import ClientKind
from kapclinic.fhirapi.tests.helpers import body
from kapclinic.measures import services as measures
from kapclinic.patients import services as patients
from kapclinic.testing.factories import actor_for

# "Type" or "Type:kind" for a type served from several tables (vital-sign Observations).
TYPES = (
    "Patient",
    "Condition",
    "MedicationStatement",
    "AllergyIntolerance",
    "Observation",
    "QuestionnaireResponse",
    "Appointment",
    "Observation:vital-signs",
    "Encounter",
    "Procedure",
    "MedicationAdministration",
    "CarePlan",
    "Consent",
    "AdverseEvent",
)
CLINICAL = TYPES[1:]


def _records(world: Any, patient: Any, staff: Any, clinic: Any) -> dict[str, str]:
    actor = actor_for(staff, clinic)
    dx = patients.diagnosis_add(actor, patient, icd10="F33.1", snomed="", description="MDD")
    med = patients.medication_add(
        actor, patient, name="Sertraline", dose="50 mg", drug_class="antidepressant"
    )
    allergy = patients.allergy_add(actor, patient, substance="Latex", reaction="")
    score = measures.response_submit(
        actor,
        patient,
        instrument="PHQ-9",
        version=None,
        answers=[1] * 7 + [0, 0],
        source="paper",
        entered_by=staff,
    )
    from kapclinic.scheduling.models import Appointment

    # one hour per patient: the same clinician is never booked twice at once (PostgreSQL refuses it)
    start = dt.datetime(2026, 11, 3, 15, tzinfo=dt.UTC) + dt.timedelta(hours=Appointment.objects.count())
    appointment = Appointment.objects.create(
        clinic=clinic, patient=patient, kind="integration", starts_at=start,
        ends_at=start + dt.timedelta(hours=1), staff=staff, created_by=staff,
    )  # fmt: skip
    from kapclinic.documents.testing import session_with_monitoring, signed_consent, signed_plan
    from kapclinic.sessions.models import Observation

    session = session_with_monitoring(patient, staff, staff, clinic)
    vital = Observation.objects.filter(session=session, kind="vital").first()
    assert vital is not None
    return {
        "Observation:vital-signs": f"vs{vital.pk}",
        "Encounter": f"enc{session.pk}",
        "Procedure": f"proc{session.pk}",
        "MedicationAdministration": f"ma{session.administration.pk}",
        "CarePlan": f"cp{signed_plan(patient, staff).pk}",
        "Consent": f"cs{signed_consent(patient).pk}",
        "AdverseEvent": f"ae{session.adverse_events.get().pk}",
        "Appointment": f"ap{appointment.pk}",
        "Patient": f"p{patient.pk}",
        "Condition": f"dx{dx.pk}",
        "MedicationStatement": f"med{med.pk}",
        "AllergyIntolerance": f"al{allergy.pk}",
        "Observation": f"score{score.pk}",
        "QuestionnaireResponse": f"qr{score.pk}",
    }


def _token(app: Any, user: Any, scope: str) -> str:
    raw = secrets.token_urlsafe(24)
    AccessToken.objects.create(
        application=app, user=user, token=raw, scope=scope, expires=clock.now() + dt.timedelta(hours=1)
    )
    return raw


@pytest.fixture
def setup(world: Any) -> dict[str, Any]:
    records = {
        "own": _records(world, world.patient, world.prescriber, world.clinic),
        "other_patient": _records(world, world.other_patient, world.prescriber, world.clinic),
        "other_clinic": _records(
            world, world.other_clinic_patient, world.other_clinic_staff, world.other_clinic
        ),
    }
    system = Actor.system(world.clinic)
    app = clients.register(system, world.clinic, name="App", scopes="patient/*.rs user/*.rs launch/patient",
                           kind=ClientKind.APP, redirect_uris="https://a.example/cb")  # fmt: skip
    backend = clients.register(system, world.clinic, name="Backend", scopes="system/*.rs", jwks={"keys": []})
    other_backend = clients.register(
        Actor.system(world.other_clinic),
        world.other_clinic,
        name="Other",
        scopes="system/*.rs",
        jwks={"keys": []},
    )
    tokens = {
        "system": _token(backend.application, None, "system/*.rs"),
        "other_clinic_system": _token(other_backend.application, None, "system/*.rs"),
        "patient": _token(app.application, world.patient_user, "launch/patient patient/*.rs"),
    }
    for role in ("prescriber", "nurse", "therapist", "therapist_other", "front_desk", "admin"):
        tokens[role] = _token(app.application, getattr(world, role), "user/*.rs")
    return {"records": records, "tokens": tokens}


# context -> (own patient, other patient of the clinic, other clinic's patient), clinical types
EXPECT_CLINICAL = {
    "system": (200, 200, 404),
    "other_clinic_system": (404, 404, 200),  # its own clinic is the "other clinic" here
    "patient": (200, 404, 404),
    "prescriber": (200, 200, 404),
    "nurse": (200, 200, 404),
    "therapist": (200, 403, 404),
    "therapist_other": (403, 200, 404),
    "front_desk": (403, 403, 403),
    "admin": (403, 403, 403),
}
# Demographics (Patient): front desk and admin see every patient of their clinic.
EXPECT_PATIENT = {**EXPECT_CLINICAL, "front_desk": (200, 200, 404), "admin": (200, 200, 404)}


@pytest.mark.parametrize("context", list(EXPECT_CLINICAL))
def test_reads_by_context(setup: dict[str, Any], client: Any, context: str) -> None:
    auth = {"HTTP_AUTHORIZATION": f"Bearer {setup['tokens'][context]}"}
    failures = []
    for key in TYPES:
        resource_type = key.split(":")[0]
        expected = (EXPECT_PATIENT if resource_type == "Patient" else EXPECT_CLINICAL)[context]
        for whose, status in zip(("own", "other_patient", "other_clinic"), expected, strict=True):
            resource_id = setup["records"][whose][key]
            response = client.get(f"/fhir/{resource_type}/{resource_id}", **auth)
            data = body(response)
            if response.status_code != status:
                failures.append(f"{resource_type} {whose}: {response.status_code} != {status}")
            if status != 200 and data["resourceType"] != "OperationOutcome":
                failures.append(f"{resource_type} {whose}: data leaked")
    assert not failures, failures


@pytest.mark.parametrize("context", list(EXPECT_CLINICAL))
def test_searches_return_only_allowed_records(setup: dict[str, Any], client: Any, context: str) -> None:
    auth = {"HTTP_AUTHORIZATION": f"Bearer {setup['tokens'][context]}"}
    for key in TYPES:
        resource_type = key.split(":")[0]
        expected = (EXPECT_PATIENT if resource_type == "Patient" else EXPECT_CLINICAL)[context]
        allowed = {
            setup["records"][whose][key]
            for whose, status in zip(("own", "other_patient", "other_clinic"), expected, strict=True)
            if status == 200
        }
        response = client.get(f"/fhir/{resource_type}?_count=200", **auth)
        if not allowed and context in ("front_desk", "admin"):
            assert response.status_code == 403, resource_type
            continue
        ids = {e["resource"]["id"] for e in body(response).get("entry", [])}
        mine = {setup["records"][w][key] for w in ("own", "other_patient", "other_clinic")}
        assert ids & mine == allowed, (resource_type, ids & mine, allowed)


def test_scope_limits_types(world: Any, client: Any) -> None:
    backend = clients.register(
        Actor.system(world.clinic), world.clinic, name="B", scopes="system/Patient.r", jwks={"keys": []}
    )
    token = _token(backend.application, None, "system/Patient.r")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert client.get(f"/fhir/Patient/p{world.patient.pk}", **auth).status_code == 200
    assert client.get("/fhir/Patient", **auth).status_code == 403  # read (r) without search (s)
    assert client.get("/fhir/Observation", **auth).status_code == 403


# The clinic's Group (clinic-level, docs/fhir-api.md): system clients and clinic managers (admin) only.
EXPECT_GROUP = {
    "system": (200, 404),
    "other_clinic_system": (404, 200),
    "patient": (403, 403),
    "prescriber": (403, 403),
    "nurse": (403, 403),
    "therapist": (403, 403),
    "therapist_other": (403, 403),
    "front_desk": (403, 403),
    "admin": (200, 404),
}


def test_group_by_context(setup: dict[str, Any], client: Any, world: Any) -> None:
    from kapclinic.audit.models import AuditEvent
    from kapclinic.fhirapi import groups
    from kapclinic.testing.factories import actor_for, make_staff

    # each clinic's Group (g<id>) and a Group its admin defined (ag<id>): the same rule for both
    mine = groups.group_create(
        actor_for(world.admin, world.clinic), name="Mine", description="", member_ids=[world.patient.pk]
    )
    other_admin = actor_for(make_staff(world.other_clinic, "admin"), world.other_clinic)
    theirs = groups.group_create(
        other_admin, name="Theirs", description="", member_ids=[world.other_clinic_patient.pk]
    )
    pairs = [(f"g{world.clinic.pk}", f"g{world.other_clinic.pk}"), (f"ag{mine.pk}", f"ag{theirs.pk}")]
    failures: list[str] = []
    for context, expected in EXPECT_GROUP.items():
        auth = {"HTTP_AUTHORIZATION": f"Bearer {setup['tokens'][context]}"}
        for own, other in pairs:
            _group_reads(client, auth, context, own, other, expected, failures)
        searched = client.get("/fhir/Group", **auth)
        allowed = {own for own, _ in pairs if expected[0] == 200} | {
            o for _, o in pairs if expected[1] == 200
        }
        if not allowed:
            if searched.status_code != 403:
                failures.append(f"{context} search: {searched.status_code} != 403")
            continue
        ids = {e["resource"]["id"] for e in body(searched).get("entry", [])}
        if ids != allowed:
            failures.append(f"{context} search: {ids} != {allowed}")
    assert not failures, failures
    denied = AuditEvent.objects.filter(action="denied", object_type="fhir", detail__contains="type=Group")
    assert denied.exists()


def _group_reads(
    client: Any, auth: dict[str, str], context: str, own: str, other: str, expected: Any, failures: list[str]
) -> None:
    for group_id, status in zip((own, other), expected, strict=True):
        response = client.get(f"/fhir/Group/{group_id}", **auth)
        data = body(response)
        if response.status_code != status:
            failures.append(f"{context} {group_id}: {response.status_code} != {status}")
        if status != 200 and data["resourceType"] != "OperationOutcome":
            failures.append(f"{context} {group_id}: data leaked")
