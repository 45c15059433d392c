"""FHIR read and search (docs/fhir-api.md): shapes, paging, strict parameters, query counts, audit."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from kapclinic.audit.models import AuditEvent
from kapclinic.fhirapi.resources import SPECS
from kapclinic.fhirapi.search import MAX_COUNT
from kapclinic.fhirapi.tests.helpers import body, phq9
from kapclinic.patients import services as patients
from kapclinic.testing.factories import actor_for

PHQ9_LOINC = "http://loinc.org|44261-6"


def test_metadata_lists_exactly_the_implemented_types(client: Any) -> None:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    statement = body(response)
    CapabilityStatement.model_validate(statement)
    assert statement["kind"] == "instance" and statement["fhirVersion"] == "4.0.1"
    listed = {r["type"]: {p["name"] for p in r["searchParam"]} for r in statement["rest"][0]["resource"]}
    assert set(listed) == {*SPECS, "Questionnaire"}
    assert {"patient", "code", "date", "category", "_count", "_sort"} <= listed["Observation"]


def test_anonymous_gets_401_operation_outcome(client: Any) -> None:
    response = client.get("/fhir/Patient")
    assert response.status_code == 401
    assert body(response)["resourceType"] == "OperationOutcome"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_read_patient_is_valid_stable_and_audited(world: Any, client: Any) -> None:
    client.force_login(world.therapist)
    url = f"/fhir/Patient/p{world.patient.pk}"
    first, second = body(client.get(url)), body(client.get(url))
    assert first["id"] == second["id"] == f"p{world.patient.pk}"
    assert first["meta"]["lastUpdated"]
    events = AuditEvent.objects.filter(
        patient=world.patient, actor=world.therapist, object_type="fhir:Patient"
    )
    assert events.count() == 2
    assert events.first().detail == "client=session"  # type: ignore[union-attr]


def test_observation_is_a_survey_score_derived_from_its_response(world: Any, client: Any) -> None:
    response = phq9(world)
    client.force_login(world.prescriber)
    obs = body(client.get(f"/fhir/Observation/score{response.pk}"))
    assert obs["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "44261-6",
        "display": "PHQ-9 total score",
    }
    assert obs["category"][0]["coding"][0]["code"] == "survey"
    assert obs["derivedFrom"] == [{"reference": f"QuestionnaireResponse/qr{response.pk}"}]
    qr = body(client.get(f"/fhir/QuestionnaireResponse/qr{response.pk}"))
    assert qr["status"] == "completed" and len(qr["item"]) == 9
    assert qr["questionnaire"].startswith("https://kapclinic.org/fhir/Questionnaire/phq-9|")
    questionnaire = body(client.get("/fhir/Questionnaire/phq-9"))
    assert questionnaire["resourceType"] == "Questionnaire"


def test_search_phq9_by_loinc_pages_by_keyset(world: Any, client: Any) -> None:
    for day in range(5):
        phq9(world, days_ago=day)
    phq9(world, patient=world.other_patient)
    client.force_login(world.prescriber)
    url = f"/fhir/Observation?patient=Patient/p{world.patient.pk}&code={PHQ9_LOINC}&_count=2&_sort=-date"
    seen: list[str] = []
    dates: list[str] = []
    pages = 0
    while url:
        bundle = body(client.get(url.removeprefix("http://testserver")))
        Bundle.model_validate(bundle)
        assert bundle["type"] == "searchset" and bundle["total"] == 5
        seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
        dates += [e["resource"]["effectiveDateTime"] for e in bundle.get("entry", [])]
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        url = links.get("next", "")
        assert ("_offset" not in url and "_cursor" in url) or not url
        url = url.split("://", 1)[-1].split("/", 1)[-1] if url else ""
        url = "/" + url if url else ""
        pages += 1
    assert pages == 3 and len(seen) == len(set(seen)) == 5
    assert dates == sorted(dates, reverse=True)


def test_date_category_status_and_other_code_filters(world: Any, client: Any) -> None:
    for day in range(3):
        phq9(world, days_ago=day)
    client.force_login(world.prescriber)

    def total(query: str) -> int:
        return int(body(client.get(f"/fhir/Observation?{query}"))["total"])

    assert total("date=ge2026-11-02") == 2
    assert total("date=ge2026-11-02&date=le2026-11-02") == 1
    assert total("date=2026-11") == 3
    assert total("category=survey&status=final") == 3
    assert total("category=laboratory") == 0
    assert total("code=http://loinc.org|70274-6") == 0  # GAD-7
    assert total("code=44261-6") == 3
    assert total("_lastUpdated=lt2026-11-01T10:00:00Z") == 1


def test_condition_search_by_icd10_and_status(world: Any, client: Any) -> None:
    actor = actor_for(world.prescriber, world.clinic)
    patients.diagnosis_add(actor, world.patient, icd10="F33.1", snomed="", description="MDD, recurrent")
    client.force_login(world.nurse)
    found = body(
        client.get("/fhir/Condition?code=http://hl7.org/fhir/sid/icd-10-cm|F33.1&clinical-status=active")
    )
    assert found["total"] == 1
    assert body(client.get("/fhir/Condition?clinical-status=resolved"))["total"] == 0


@pytest.mark.parametrize(
    "query",
    [
        "flavour=mint",
        "code:text=phq",
        "date=yesterday",
        "date=2026-13-01",
        "date=ap2026-01-01",
        "date=2026-01-01T10:00",
        "patient=Practitioner/pr1",
        "patient=p-1",
        "_id=p1",
        "_count=-1",
        "_count=abc",
        "_sort=code",
        "_cursor=forged",
        "_format=xml",
    ],
)
def test_bad_search_input_is_400_operation_outcome(world: Any, client: Any, query: str) -> None:
    client.force_login(world.prescriber)
    response = client.get(f"/fhir/Observation?{query}")
    assert response.status_code == 400, query
    outcome = body(response)
    assert outcome["resourceType"] == "OperationOutcome"
    assert "entry" not in outcome
    assert AuditEvent.objects.filter(action="denied", detail__contains="invalid-search").count() == 1


def test_huge_count_is_clamped_with_a_warning(world: Any, client: Any) -> None:
    phq9(world)
    client.force_login(world.prescriber)
    bundle = body(client.get("/fhir/Observation?_count=1000000000"))
    outcomes = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcomes) == 1
    assert str(MAX_COUNT) in outcomes[0]["resource"]["issue"][0]["diagnostics"]


def test_count_zero_answers_the_total_only(world: Any, client: Any) -> None:
    phq9(world)
    client.force_login(world.prescriber)
    bundle = body(client.get("/fhir/Observation?_count=0"))
    assert bundle["total"] == 1 and "entry" not in bundle


@pytest.mark.parametrize("resource_type", ["Observation", "QuestionnaireResponse", "Patient"])
def test_queries_per_search_do_not_grow_with_results(world: Any, client: Any, resource_type: str) -> None:
    client.force_login(world.prescriber)
    phq9(world)
    url = f"/fhir/{resource_type}?_count=50"
    client.get(url)
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    for day in range(1, 8):
        phq9(world, days_ago=day)
    with CaptureQueriesContext(connection) as large:
        assert client.get(url).status_code == 200
    assert len(large) == len(small)


def test_unknown_type_and_unknown_id_are_404(world: Any, client: Any) -> None:
    client.force_login(world.prescriber)
    assert client.get("/fhir/Basic").status_code == 404
    assert client.get("/fhir/Patient/p999999").status_code == 404
    assert client.get("/fhir/Patient/nonsense").status_code == 404


def test_appointments_read_and_search_by_date_and_status(world: Any, client: Any) -> None:
    import datetime as dt

    from kapclinic.scheduling.models import Appointment

    start = dt.datetime(2026, 11, 3, 15, tzinfo=dt.UTC)
    appointment = Appointment.objects.create(
        clinic=world.clinic, patient=world.patient, kind="integration", starts_at=start,
        ends_at=start + dt.timedelta(hours=1), staff=world.therapist, created_by=world.prescriber,
    )  # fmt: skip
    client.force_login(world.therapist)
    resource = body(client.get(f"/fhir/Appointment/ap{appointment.pk}"))
    assert resource["status"] == "booked"
    assert resource["participant"][0]["actor"] == {"reference": f"Patient/p{world.patient.pk}"}
    assert body(client.get("/fhir/Appointment?date=2026-11-03&status=booked"))["total"] == 1
    assert body(client.get("/fhir/Appointment?status=fulfilled"))["total"] == 0


def test_practitioner_and_organization_are_the_clinics_own(world: Any, client: Any) -> None:
    client.force_login(world.patient_user)
    assert body(client.get(f"/fhir/Practitioner/pr{world.therapist.pk}"))["name"][0]["text"]
    assert client.get(f"/fhir/Practitioner/pr{world.other_clinic_staff.pk}").status_code == 404
    assert client.get(f"/fhir/Practitioner/pr{world.patient_user.pk}").status_code == 404  # not staff
    organization = body(client.get(f"/fhir/Organization/org{world.clinic.pk}"))
    assert organization["name"] == world.clinic.name
    assert client.get(f"/fhir/Organization/org{world.other_clinic.pk}").status_code == 404
    staff = body(client.get("/fhir/Practitioner?_count=50"))
    ids = {e["resource"]["id"] for e in staff["entry"]}
    assert f"pr{world.prescriber.pk}" in ids and f"pr{world.other_clinic_staff.pk}" not in ids


def test_include_patient_returns_it_once_with_include_mode(world: Any, client: Any) -> None:
    for day in range(3):
        phq9(world, days_ago=day)
    phq9(world, patient=world.other_patient)
    client.force_login(world.prescriber)
    url = (
        f"/fhir/Observation?patient=p{world.patient.pk}&code={PHQ9_LOINC}"
        "&_include=Observation:patient&_count=2"
    )
    bundle = body(client.get(url))
    Bundle.model_validate(bundle)
    modes = [(e["search"]["mode"], e["resource"]["resourceType"]) for e in bundle["entry"]]
    assert modes == [("match", "Observation"), ("match", "Observation"), ("include", "Patient")]
    patient = bundle["entry"][-1]
    assert patient["resource"]["id"] == f"p{world.patient.pk}"
    assert patient["fullUrl"].endswith(f"/fhir/Patient/p{world.patient.pk}")
    assert bundle["total"] == 3  # included resources are not counted
    next_url = {link["relation"]: link["url"] for link in bundle["link"]}["next"]
    assert "_include=Observation%3Apatient" in next_url
    # Two patients' observations: each patient once.
    both = body(client.get("/fhir/Observation?_include=Observation:subject&_count=50"))
    included = [e["resource"]["id"] for e in both["entry"] if e["search"]["mode"] == "include"]
    assert sorted(included) == sorted([f"p{world.patient.pk}", f"p{world.other_patient.pk}"])
    event = AuditEvent.objects.filter(object_type="fhir:Observation", action="list").order_by("-pk").first()
    assert event is not None and "included=2" in event.detail


def test_include_adds_one_query_whatever_the_page_size(world: Any, client: Any) -> None:
    client.force_login(world.prescriber)
    phq9(world)
    url = "/fhir/Observation?_include=Observation:patient&_count=50"
    client.get(url)
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    for day in range(1, 8):
        phq9(world, days_ago=day)
    phq9(world, patient=world.other_patient)
    with CaptureQueriesContext(connection) as large:
        assert client.get(url).status_code == 200
    with CaptureQueriesContext(connection) as plain:
        assert client.get("/fhir/Observation?_count=50").status_code == 200
    assert len(large) == len(small) == len(plain) + 1


@pytest.mark.parametrize(
    "query",
    [
        "Observation?_include=Observation:performer",
        "Observation?_include=*",
        "Observation?_include=Observation:patient:Practitioner",
        "Observation?_include=Condition:patient",
        "Patient?_include=Patient:organization",
        "Practitioner?_include=Practitioner:patient",
        "Questionnaire?_include=Questionnaire:patient",
        "Appointment?_include=Appointment:subject",
    ],
)
def test_unsupported_include_is_400(world: Any, client: Any, query: str) -> None:
    client.force_login(world.prescriber)
    response = client.get(f"/fhir/{query}")
    assert response.status_code == 400, query
    assert body(response)["resourceType"] == "OperationOutcome"


def test_metadata_lists_the_supported_includes(client: Any) -> None:
    statement = body(client.get("/fhir/metadata"))
    by_type = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert by_type["Observation"]["searchInclude"] == ["Observation:patient", "Observation:subject"]
    assert by_type["Appointment"]["searchInclude"] == ["Appointment:patient"]
    assert "searchInclude" not in by_type["Patient"] and "searchInclude" not in by_type["Practitioner"]


def test_include_needs_patient_access(world: Any, client: Any) -> None:
    from kapclinic.fhirapi.tests.helpers import backend_token, register_backend

    phq9(world)
    registered, key = register_backend(world, scopes="system/Observation.rs")
    answer = backend_token(client, key, registered.client_id, scope="system/Observation.rs")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {answer.json()['access_token']}"}
    assert client.get("/fhir/Observation", **auth).status_code == 200
    refused = client.get("/fhir/Observation?_include=Observation:patient", **auth)
    assert refused.status_code == 403
    assert "entry" not in body(refused)
    assert AuditEvent.objects.filter(action="denied", detail__contains="type=Patient include").count() == 1
