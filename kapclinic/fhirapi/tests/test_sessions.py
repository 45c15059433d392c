"""Dosing sessions, plans and consents through the API (docs/fhir-api.md#sessions): vital-sign
Observations, Encounter, Procedure, MedicationAdministration, CarePlan, Consent, AdverseEvent.
Shapes, search parameters, keyset paging across the two Observation tables, constant query counts,
scopes, Bulk export; process notes never appear. The access matrix of these types (other clinic's and
other patient's ids) is in test_authorization.py."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from fhir.resources.R4B import get_fhir_model_class

from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.documents.testing import session_with_monitoring, signed_consent, signed_plan
from kapclinic.fhirapi import clients
from kapclinic.fhirapi.tests.helpers import backend_token, body, phq9, register_backend
from kapclinic.sessions.models import DosingSession, Observation, SessionEvent
from kapclinic.testing.factories import actor_for

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
NEW_TYPES = ("Encounter", "Procedure", "MedicationAdministration", "CarePlan", "Consent", "AdverseEvent")


def _session(world: Any, patient: Any = None) -> DosingSession:
    session: DosingSession = session_with_monitoring(
        patient or world.patient, world.prescriber, world.nurse, world.clinic
    )
    return session


def _scheduled(world: Any) -> DosingSession:
    return DosingSession.objects.create(
        clinic=world.clinic, patient=world.patient, protocol_id="esketamine-in-trd", protocol_version="1.0.0",
        scheduled_for=clock.now() + dt.timedelta(days=2), created_by=world.prescriber,
    )  # fmt: skip


def test_vital_signs_are_loinc_coded_ucum_observations(world: Any, client: Any) -> None:
    session = _session(world)
    client.force_login(world.prescriber)
    hr = Observation.objects.get(session=session, code="8867-4")
    obs = body(client.get(f"/fhir/Observation/vs{hr.pk}"))
    assert obs["category"][0]["coding"][0]["code"] == "vital-signs"
    assert obs["code"]["coding"][0] == {"system": LOINC, "code": "8867-4", "display": "Heart rate"}
    assert obs["valueQuantity"] == {"value": 72, "unit": "/min", "system": UCUM, "code": "/min"}
    assert obs["encounter"] == {"reference": f"Encounter/enc{session.pk}"}
    assert obs["subject"] == {"reference": f"Patient/p{world.patient.pk}"}

    def total(query: str) -> int:
        return int(body(client.get(f"/fhir/Observation?{query}"))["total"])

    # four vitals (blood pressure is one panel); the MOAA/S rating of the same session is not a vital sign
    # and is not served
    assert total(f"category=vital-signs&patient=p{world.patient.pk}") == 4
    assert total(f"code={LOINC}|8867-4") == 1
    assert total("code=59408-5,9279-1") == 2
    assert total("category=survey") == 0
    assert total(f"_id=vs{hr.pk}") == 1
    assert total(f"_id=vs{hr.pk},score1") == 1
    assert total("date=ge2000-01-01&status=final") == 4
    assert total("date=le2000-01-01") == 0


def test_blood_pressure_is_one_panel_with_two_components(world: Any, client: Any) -> None:
    """docs/fhir-api.md#observation: LOINC 85354-9 with systolic 8480-6 and diastolic 8462-4 in mm[Hg]
    (codes: docs/clinical-reference.md §5.1)."""
    session = _session(world)
    client.force_login(world.prescriber)
    systolic = Observation.objects.get(session=session, code="8480-6")
    diastolic = Observation.objects.get(session=session, code="8462-4")
    panel = body(client.get(f"/fhir/Observation/vs{systolic.pk}"))
    assert panel["code"]["coding"][0]["system"] == LOINC and panel["code"]["coding"][0]["code"] == "85354-9"
    assert panel["meta"]["profile"] == ["http://hl7.org/fhir/StructureDefinition/bp"]
    assert "valueQuantity" not in panel
    assert [
        (c["code"]["coding"][0]["code"], c["valueQuantity"]["value"], c["valueQuantity"]["code"])
        for c in panel["component"]
    ] == [("8480-6", systolic.value, "mm[Hg]"), ("8462-4", diastolic.value, "mm[Hg]")]
    assert all(c["valueQuantity"]["system"] == UCUM for c in panel["component"])
    assert panel["effectiveDateTime"] and panel["encounter"] == {"reference": f"Encounter/enc{session.pk}"}
    # the diastolic value is inside the panel, not a resource of its own
    assert client.get(f"/fhir/Observation/vs{diastolic.pk}").status_code == 404

    def ids(query: str) -> list[str]:
        return [e["resource"]["id"] for e in body(client.get(f"/fhir/Observation?{query}")).get("entry", [])]

    assert ids(f"code={LOINC}|85354-9") == [f"vs{systolic.pk}"]
    assert ids("code=8480-6,8462-4") == []  # components, not Observation.code (R4 `code` search)
    assert ids(f"_id=vs{diastolic.pk}") == []

    # a second reading pairs its own values; a diastolic recorded alone is a one-component panel
    later = Observation.objects.create(
        session=session, kind="vital", code="8480-6", display="Systolic blood pressure", value=150,
        unit="mm[Hg]", at=systolic.at + dt.timedelta(minutes=20), reading=systolic.reading + 1,
        phase="recovery", recorded_by=world.nurse,
    )  # fmt: skip
    Observation.objects.create(
        session=session, kind="vital", code="8462-4", display="Diastolic blood pressure", value=95,
        unit="mm[Hg]", at=later.at, reading=later.reading, phase="recovery", recorded_by=world.nurse,
    )  # fmt: skip
    alone = Observation.objects.create(
        session=session, kind="vital", code="8462-4", display="Diastolic blood pressure", value=70,
        unit="mm[Hg]", at=later.at + dt.timedelta(minutes=20), reading=later.reading + 1, phase="recovery",
        recorded_by=world.nurse,
    )  # fmt: skip
    second = body(client.get(f"/fhir/Observation/vs{later.pk}"))
    assert [c["valueQuantity"]["value"] for c in second["component"]] == [150, 95]
    lone = body(client.get(f"/fhir/Observation/vs{alone.pk}"))
    assert [c["code"]["coding"][0]["code"] for c in lone["component"]] == ["8462-4"]
    assert "profile" not in lone["meta"]  # the bp profile needs both components
    assert len(ids(f"code={LOINC}|85354-9&_sort=date")) == 3


def test_observation_pages_merge_scores_and_vitals_by_keyset(world: Any, client: Any) -> None:
    for day in range(1, 4):
        phq9(world, days_ago=day)
    _session(world)
    phq9(world)
    client.force_login(world.prescriber)
    everything = body(client.get("/fhir/Observation?_count=200"))
    assert everything["total"] == 8  # four scores, four vital signs (blood pressure one panel)
    want = {e["resource"]["id"] for e in everything["entry"]}
    for sort in ("_id", "date", "-date", "_lastUpdated", "-_id"):
        url: str | None = f"/fhir/Observation?_count=2&_sort={sort}"
        seen: list[dict[str, Any]] = []
        while url:
            bundle = body(client.get(url))
            assert bundle["resourceType"] == "Bundle", (sort, bundle)
            seen += [e["resource"] for e in bundle.get("entry", [])]
            nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
            url = "/" + nxt[0].split("://", 1)[1].split("/", 1)[1] if nxt else None
        ids = [r["id"] for r in seen]
        assert len(ids) == len(set(ids)) and set(ids) == want, sort
        if sort.endswith("date"):
            times = [r["effectiveDateTime"] for r in seen]
            assert times == sorted(times, reverse=sort.startswith("-")), sort


def test_encounter_and_procedure_for_dosing_sessions(world: Any, client: Any) -> None:
    session = _session(world)
    planned = _scheduled(world)
    client.force_login(world.therapist)
    encounter = body(client.get(f"/fhir/Encounter/enc{session.pk}"))
    assert encounter["status"] == "finished"
    assert encounter["class"]["code"] == "AMB"
    assert encounter["period"]["end"] and encounter["meta"]["lastUpdated"] == encounter["period"]["end"]
    assert body(client.get(f"/fhir/Encounter/enc{planned.pk}"))["status"] == "planned"
    procedure = body(client.get(f"/fhir/Procedure/proc{session.pk}"))
    assert procedure["status"] == "completed"
    assert procedure["encounter"] == {"reference": f"Encounter/enc{session.pk}"}
    assert client.get(f"/fhir/Procedure/proc{planned.pk}").status_code == 404  # no dose given yet

    def ids(query: str) -> list[str]:
        return [e["resource"]["id"] for e in body(client.get(query)).get("entry", [])]

    assert ids("/fhir/Encounter?status=finished") == [f"enc{session.pk}"]
    assert ids("/fhir/Encounter?status=planned,arrived") == [f"enc{planned.pk}"]
    assert ids("/fhir/Encounter?_sort=-date") == [f"enc{planned.pk}", f"enc{session.pk}"]
    today = clock.now().date()
    assert ids(f"/fhir/Encounter?date=ge{today + dt.timedelta(days=1)}") == [f"enc{planned.pk}"]
    assert ids(f"/fhir/Encounter?date=le{today}") == [f"enc{session.pk}"]
    assert ids(f"/fhir/Encounter?_lastUpdated=ge{today + dt.timedelta(days=3)}") == []
    assert ids(f"/fhir/Procedure?subject=Patient/p{world.patient.pk}&status=completed") == [
        f"proc{session.pk}"
    ]
    assert ids("/fhir/Procedure?status=stopped") == []


def test_medication_administration_carries_product_route_dose_and_lot(world: Any, client: Any) -> None:
    session = _session(world)
    client.force_login(world.nurse)
    admin = session.administration
    resource = body(client.get(f"/fhir/MedicationAdministration/ma{admin.pk}"))
    assert resource["status"] == "completed"
    assert resource["contained"][0]["code"]["text"] == "Esketamine nasal spray"
    assert resource["contained"][0]["batch"]["lotNumber"] == "LOT-SYN-1"
    assert resource["medicationReference"]["reference"] == "#med"
    assert resource["dosage"]["route"]["text"] == "Intranasal"
    assert resource["dosage"]["dose"] == {"value": 56, "unit": "mg", "system": UCUM, "code": "mg"}
    assert resource["context"] == {"reference": f"Encounter/enc{session.pk}"}
    assert resource["performer"][0]["actor"] == {"reference": f"Practitioner/pr{world.nurse.pk}"}
    day = clock.now().date()
    assert body(client.get(f"/fhir/MedicationAdministration?effective-time={day}"))["total"] == 1
    assert body(client.get(f"/fhir/MedicationAdministration?date=lt{day}"))["total"] == 0
    assert body(client.get("/fhir/MedicationAdministration?status=in-progress"))["total"] == 0


def test_care_plan_consent_and_adverse_event(world: Any, client: Any) -> None:
    session = _session(world)
    plan = signed_plan(world.patient, world.prescriber)
    consent = signed_consent(world.patient)
    client.force_login(world.prescriber)
    care_plan = body(client.get(f"/fhir/CarePlan/cp{plan.pk}"))
    assert care_plan["status"] == "active" and care_plan["intent"] == "plan"
    assert "Racemic ketamine IV infusion" in care_plan["description"]
    assert body(client.get("/fhir/CarePlan?status=active"))["total"] == 1
    assert body(client.get("/fhir/CarePlan?status=revoked"))["total"] == 0
    resource = body(client.get(f"/fhir/Consent/cs{consent.pk}"))
    assert resource["scope"]["coding"][0]["code"] == "treatment" and resource["status"] == "active"
    assert resource["sourceAttachment"]["title"].startswith("Consent to ketamine")
    assert body(client.get(f"/fhir/Consent?patient=p{world.patient.pk}&status=active"))["total"] == 1
    event = session.adverse_events.get()
    ae = body(client.get(f"/fhir/AdverseEvent/ae{event.pk}"))
    assert ae["actuality"] == "actual" and ae["event"]["text"] == "Transient nausea"
    assert ae["severity"]["coding"][0]["code"] == "mild" and ae["outcome"]["coding"][0]["code"] == "resolved"
    assert (
        ae["suspectEntity"][0]["instance"]["reference"]
        == f"MedicationAdministration/ma{session.administration.pk}"
    )
    assert body(client.get("/fhir/AdverseEvent?severity=mild"))["total"] == 1
    side = SessionEvent.objects.create(session=session, kind="side_effect", code="dizziness", text="Brief",
                                       at=clock.now(), recorded_by=world.nurse)  # fmt: skip
    logged = body(client.get(f"/fhir/AdverseEvent/se{side.pk}"))
    assert logged["event"]["coding"][0]["display"] == "Dizziness"
    assert logged["event"]["text"] == "Dizziness: Brief"
    assert logged["encounter"] == {"reference": f"Encounter/enc{session.pk}"}
    assert body(client.get(f"/fhir/AdverseEvent?subject=p{world.patient.pk}"))["total"] == 2
    assert body(client.get(f"/fhir/AdverseEvent?_id=se{side.pk},ae{event.pk}"))["total"] == 2
    assert body(client.get("/fhir/AdverseEvent?severity=mild"))["total"] == 1  # side effects have none
    assert body(client.get("/fhir/AdverseEvent?severity=severe"))["total"] == 0
    assert client.get("/fhir/AdverseEvent?status=final").status_code == 400  # AdverseEvent has no status


def test_process_notes_never_appear(world: Any, client: Any) -> None:
    from kapclinic.sessions import services

    session = _session(world)
    DosingSession.objects.filter(pk=session.pk).update(state="monitoring")
    secret = "Synthetic process note: a private reflection."
    services.process_note_add(actor_for(world.therapist, world.clinic), session, text=secret)
    client.force_login(world.therapist)
    for resource_type in ("Observation", *NEW_TYPES):
        text = client.get(f"/fhir/{resource_type}?_count=200").content.decode()
        assert "private reflection" not in text, resource_type


@pytest.mark.parametrize("resource_type", [*NEW_TYPES, "Observation"])
def test_queries_per_search_do_not_grow_with_results(
    world: Any, client: Any, resource_type: str, django_assert_max_num_queries: Any
) -> None:
    client.force_login(world.prescriber)

    def records() -> None:
        _session(world)
        signed_plan(world.patient, world.prescriber)
        signed_consent(world.patient)
        phq9(world)

    records()
    url = f"/fhir/{resource_type}?_count=50&_sort=date"
    client.get(url)
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    for _ in range(3):
        records()
    with CaptureQueriesContext(connection) as large:
        assert len(body(client.get(url))["entry"]) > 1
    assert len(large) == len(small)
    # a signed-in request's own queries, then one COUNT and one SELECT per table (four for Observation:
    # scores, vital signs, weight, height; two for AdverseEvent), one prefetch (CarePlan visits), the audit
    # event: 10 to 12 on SQLite, 16 for an unfiltered Observation search
    with django_assert_max_num_queries(16 if resource_type == "Observation" else 12):
        client.get(url)


def test_weight_and_height_are_vital_sign_observations(world: Any, client: Any) -> None:
    """29463-7 kg and 8302-2 cm (docs/clinical-reference.md §5.1), effective when the gate passed them."""
    session = _session(world)
    DosingSession.objects.filter(pk=session.pk).update(weight_kg="70.5", height_cm="172.0")
    not_yet = _scheduled(world)  # gate not passed: its weight may still change, so it is not served
    DosingSession.objects.filter(pk=not_yet.pk).update(weight_kg="71.0")
    session.refresh_from_db()
    client.force_login(world.prescriber)
    weight = body(client.get(f"/fhir/Observation/wt{session.pk}"))
    assert weight["code"]["coding"][0] == {"system": LOINC, "code": "29463-7", "display": "Body weight"}
    assert weight["valueQuantity"] == {"value": 70.5, "unit": "kg", "system": UCUM, "code": "kg"}
    assert weight["category"][0]["coding"][0]["code"] == "vital-signs"
    assert weight["encounter"] == {"reference": f"Encounter/enc{session.pk}"}
    assert weight["effectiveDateTime"] == weight["meta"]["lastUpdated"]
    height = body(client.get(f"/fhir/Observation/ht{session.pk}"))
    assert height["code"]["coding"][0]["code"] == "8302-2"
    assert height["valueQuantity"] == {"value": 172, "unit": "cm", "system": UCUM, "code": "cm"}
    assert client.get(f"/fhir/Observation/wt{not_yet.pk}").status_code == 404
    assert client.get(f"/fhir/Observation/ht{not_yet.pk}").status_code == 404

    def ids(query: str) -> set[str]:
        return {e["resource"]["id"] for e in body(client.get(f"/fhir/Observation?{query}")).get("entry", [])}

    assert ids(f"code={LOINC}|29463-7") == {f"wt{session.pk}"}
    assert ids(f"code=8302-2&patient=p{world.patient.pk}") == {f"ht{session.pk}"}
    assert ids(f"_id=wt{session.pk},ht{session.pk},score1") == {f"wt{session.pk}", f"ht{session.pk}"}
    assert len(ids("category=vital-signs")) == 6  # four from the vitals table, weight and height
    assert ids(f"code={LOINC}|44261-6") == set()


def test_a_phq9_search_by_code_does_not_query_the_body_measure_tables(world: Any, client: Any) -> None:
    phq9(world)
    client.force_login(world.prescriber)
    url = f"/fhir/Observation?patient=p{world.patient.pk}&code=http://loinc.org|44261-6"
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        assert body(client.get(url))["total"] == 1
    assert not any("dosing" in q["sql"].lower() for q in queries.captured_queries)


def test_scopes_limit_the_new_types(world: Any, client: Any) -> None:
    import secrets

    from oauth2_provider.models import AccessToken

    session = _session(world)
    backend = clients.register(
        Actor.system(world.clinic), world.clinic, name="B", scopes="system/Encounter.rs", jwks={"keys": []}
    )
    raw = secrets.token_urlsafe(24)
    expires = clock.now() + dt.timedelta(hours=1)
    AccessToken.objects.create(
        application=backend.application, user=None, token=raw, scope="system/Encounter.rs", expires=expires
    )
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert client.get(f"/fhir/Encounter/enc{session.pk}", **auth).status_code == 200
    assert client.get("/fhir/Encounter", **auth).status_code == 200
    for resource_type, rid in (("Procedure", f"proc{session.pk}"), ("AdverseEvent", "ae1")):
        assert client.get(f"/fhir/{resource_type}/{rid}", **auth).status_code == 403
    assert client.get("/fhir/MedicationAdministration", **auth).status_code == 403


def test_metadata_lists_the_new_types_with_their_parameters(client: Any) -> None:
    statement = body(client.get("/fhir/metadata"))
    listed = {r["type"]: {p["name"] for p in r["searchParam"]} for r in statement["rest"][0]["resource"]}
    for resource_type in NEW_TYPES:
        assert {"_id", "_lastUpdated", "date", "_count", "_sort"} <= listed[resource_type], resource_type
        assert {"patient", "subject"} & listed[resource_type], resource_type
    assert "status" in listed["Encounter"] and "severity" in listed["AdverseEvent"]
    assert "effective-time" in listed["MedicationAdministration"]
    code_doc = next(p for r in statement["rest"][0]["resource"] if r["type"] == "Observation"
                    for p in r["searchParam"] if p["name"] == "code")  # fmt: skip
    assert "44261-6" in code_doc["documentation"] and "8867-4" in code_doc["documentation"]


@pytest.fixture
def _export_dir(settings: Any, tmp_path: Any) -> None:
    settings.FHIR_EXPORT_DIR = tmp_path / "exports"


@pytest.mark.usefixtures("_export_dir")
def test_bulk_export_includes_the_new_types(
    world: Any, client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _session(world)
    other = world.other_clinic_staff  # another clinic's session: never in this export
    session_with_monitoring(world.other_clinic_patient, other, other, world.other_clinic)
    signed_plan(world.patient, world.prescriber)
    signed_consent(world.patient)
    phq9(world)
    registered, key = register_backend(world)
    token = backend_token(client, key, registered.client_id).json()["access_token"]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    with django_capture_on_commit_callbacks(execute=True):
        kick = client.get(f"/fhir/Group/g{world.clinic.pk}/$export",
                          HTTP_PREFER="respond-async", **auth)  # fmt: skip
    path = "/" + kick["Content-Location"].split("://", 1)[1].split("/", 1)[1]
    manifest = client.get(path, **auth).json()
    counts = {o["type"]: o["count"] for o in manifest["output"]}
    assert counts["Observation"] == 5  # one score and four vital signs (blood pressure one panel)
    assert {t: counts[t] for t in NEW_TYPES} == dict.fromkeys(NEW_TYPES, 1)
    for output in manifest["output"]:
        url = "/" + output["url"].split("://", 1)[1].split("/", 1)[1]
        for line in b"".join(client.get(url, **auth).streaming_content).decode().splitlines():
            resource = json.loads(line)
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)
            subject = resource.get("subject") or resource.get("patient") or {"reference": ""}
            assert f"p{world.other_clinic_patient.pk}" not in subject["reference"]


def test_a_code_of_one_table_reads_only_that_table(world: Any, client: Any) -> None:
    """A PHQ-9 search by LOINC code never touches the vital-sign table (the bench's Observation search):
    as many queries as a one-table search."""
    _session(world)
    phq9(world)
    client.force_login(world.prescriber)
    client.get("/fhir/Condition?code=F33.1")
    with CaptureQueriesContext(connection) as one_table:
        client.get("/fhir/Condition?code=F33.1")
    with CaptureQueriesContext(connection) as scores:
        bundle = body(
            client.get(f"/fhir/Observation?code=http://loinc.org|44261-6&patient=p{world.patient.pk}")
        )
    assert bundle["total"] == 1
    assert len(scores) == len(one_table)
