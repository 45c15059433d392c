from __future__ import annotations

import json
from typing import Any

from kapclinic.audit.models import AuditEvent
from kapclinic.patients import services
from kapclinic.testing.factories import actor_for


def test_bundle_is_valid_fhir_and_audited_as_export(world: Any, client: Any) -> None:
    actor = actor_for(world.prescriber, world.clinic)
    services.diagnosis_add(
        actor, world.patient, icd10="F33.1", snomed="310496002", description="MDD, recurrent, moderate"
    )
    services.medication_add(
        actor, world.patient, name="Sertraline", dose="50 mg daily", drug_class="antidepressant"
    )
    services.allergy_add(actor, world.patient, substance="Latex", reaction="Rash")
    client.force_login(world.therapist)
    response = client.get(f"/interop/patients/{world.patient.pk}/fhir/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    bundle = json.loads(response.content)
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert types == ["Patient", "Condition", "MedicationStatement", "AllergyIntolerance"]
    condition = bundle["entry"][1]["resource"]
    assert {
        "system": "http://hl7.org/fhir/sid/icd-10-cm",
        "code": "F33.1",
        "display": "MDD, recurrent, moderate",
    } in (condition["code"]["coding"])
    events = AuditEvent.objects.filter(patient=world.patient, actor=world.therapist)
    assert list(events.values_list("action", "object_type")) == [("export", "fhir_bundle")]


def test_scores_become_survey_observations(world: Any) -> None:
    import datetime as dt
    from types import SimpleNamespace

    from kapclinic.interop.fhir import build_bundle

    score = SimpleNamespace(
        pk=7,
        instrument="PHQ-9",
        instrument_version="1.0",
        total=14,
        completed_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
    )
    bundle = build_bundle(world.patient, scores=[score])
    obs = bundle["entry"][-1]["resource"]
    assert obs["code"]["coding"][0]["code"] == "44261-6"
    assert obs["valueQuantity"] == {
        "value": 14,
        "unit": "{score}",
        "system": "http://unitsofmeasure.org",
        "code": "{score}",
    }


def test_bundle_carries_dosing_sessions_plans_and_consents(world: Any, client: Any) -> None:
    from kapclinic.documents.testing import session_with_monitoring, signed_consent, signed_plan

    session = session_with_monitoring(world.patient, world.prescriber, world.nurse, world.clinic)
    signed_plan(world.patient, world.prescriber)
    signed_consent(world.patient)
    session_with_monitoring(world.other_patient, world.prescriber, world.nurse, world.clinic)
    client.force_login(world.prescriber)
    bundle = json.loads(client.get(f"/interop/patients/{world.patient.pk}/fhir/").content)
    ids = [e["resource"]["id"] for e in bundle["entry"]]
    assert f"enc{session.pk}" in ids and f"proc{session.pk}" in ids
    assert f"ma{session.administration.pk}" in ids
    # four vital signs: blood pressure is one panel (docs/fhir-api.md#observation)
    assert sum(i.startswith("vs") for i in ids) == 4 and sum(i.startswith("ae") for i in ids) == 1
    assert sum(i.startswith(("cp", "cs")) for i in ids) == 2
    subjects = {
        json.dumps(e["resource"].get("subject") or e["resource"].get("patient")) for e in bundle["entry"][1:]
    }
    assert all(f"p{world.other_patient.pk}" not in s for s in subjects)
