"""Issue 13: audit events carry a namespaced action and JSON data with the old and new values of what
changed, and the hash chain covers both."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from typing import Any

import pytest
from django.db import connection

from kapclinic.audit.models import AuditEvent
from kapclinic.audit.services import MAX_VALUE_CHARS, default_name, field_changes, record_event, verify_chains
from kapclinic.audit.tests.test_chain_integrity import triggers_bypassed
from kapclinic.patients.services import patient_update_demographics
from kapclinic.testing.factories import actor_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("action", "object_type", "name"),
    [
        ("update", "scheduling.appointment", "appointment.update"),
        ("view", "chart", "chart.view"),
        ("list", "schedule_day", "schedule_day.list"),
        ("login", "", "account.login"),
        ("login_failed", "", "account.login_failed"),
        ("admin", "", "clinic.admin"),
        ("denied", "", "clinic.denied"),
        ("export", "fhir.Bundle", "bundle.export"),
    ],
)
def test_every_event_gets_a_namespaced_name(action: str, object_type: str, name: str) -> None:
    assert default_name(action, object_type) == name


def test_a_name_must_be_dotted_lowercase_words(world: Any) -> None:
    actor = actor_for(world.prescriber, world.clinic)
    for bad in ("update", "Session.Transition", "session..x", "session.transition!", ".x"):
        with pytest.raises(ValueError, match="dotted lowercase"):
            record_event(actor, "update", patient=world.patient, name=bad)
    assert not AuditEvent.objects.filter(detail="x").exists()


def test_field_changes_lists_old_and_new_and_hides_secrets() -> None:
    before = {"phone": "555-0100", "email": "a@example.org", "city": "Springfield", "password": "old"}
    after = {"phone": "555-0199", "email": "a@example.org", "city": "Shelbyville", "password": "new"}
    assert field_changes(before, after, secret={"password"}) == {
        "phone": {"old": "555-0100", "new": "555-0199"},
        "city": {"old": "Springfield", "new": "Shelbyville"},
        "password": {"changed": True},
    }
    assert field_changes(before, before) == {}


def test_data_is_stored_as_plain_json_and_the_chain_still_verifies(world: Any) -> None:
    actor = actor_for(world.prescriber, world.clinic)
    data = {
        "changes": {
            "dose_mg": {"old": decimal.Decimal("35.00"), "new": decimal.Decimal("40.50")},
            "date_of_birth": {"old": dt.date(1980, 1, 2), "new": dt.date(1980, 2, 1)},
            "goal": {"old": "x" * (MAX_VALUE_CHARS + 20), "new": "short"},
        },
        "n": 3,
        "ratio": 0.25,
    }
    event = record_event(actor, "update", patient=world.patient, name="plan.update", data=data)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.name == "plan.update"
    assert stored.data["changes"]["dose_mg"] == {"old": "35.00", "new": "40.50"}
    assert stored.data["changes"]["date_of_birth"]["new"] == "1980-02-01"
    assert stored.data["changes"]["goal"]["old"].endswith("… (+20 characters)")
    assert stored.data["n"] == 3 and stored.data["ratio"] == "0.25"
    assert stored.compute_hash() == stored.hash
    assert verify_chains() == []


def test_an_event_with_neither_name_nor_data_keeps_the_old_payload(world: Any) -> None:
    actor = actor_for(world.prescriber, world.clinic)
    event = record_event(actor, "view", patient=world.patient)
    assert event.name == "patient.view"
    assert len(json.loads(event.payload())) == 16
    event.name, event.data = "", {}
    assert len(json.loads(event.payload())) == 14  # an event written before names existed


@pytest.mark.parametrize(
    ("column", "value"),
    [("name", "patient.view"), ("data", '{"changes": {"phone": {"old": "1", "new": "2"}}}')],
)
def test_rewriting_the_name_or_the_data_is_found(world: Any, column: str, value: str) -> None:
    actor = actor_for(world.prescriber, world.clinic)
    event = record_event(
        actor,
        "update",
        patient=world.patient,
        name="patient.update",
        data={"changes": {"phone": {"old": "1", "new": "3"}}},
    )
    with triggers_bypassed(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE audit_auditevent SET {column} = %s WHERE id = %s", [value, event.pk])
    assert verify_chains() == [
        f"Chain {event.chain}: event #{event.seq} (id {event.pk}) was altered after it was written."
    ]


def test_a_demographics_change_records_what_changed_from_what_to_what(world: Any) -> None:
    actor = actor_for(world.front_desk, world.clinic)
    patient = world.patient
    old_phone = patient.phone
    patient_update_demographics(
        actor,
        patient,
        expected_version=patient.version,
        changes={"phone": "+1 555 0199", "legal_first_name": patient.legal_first_name},
    )
    event = AuditEvent.objects.filter(patient=patient, action="update").latest("id")
    assert event.name == "patient.update"
    assert event.data == {"changes": {"phone": {"old": old_phone, "new": "+1 555 0199"}}}
    assert verify_chains() == []


def test_the_log_page_shows_the_name_and_which_fields_changed_never_the_values(
    world: Any, client: Any
) -> None:
    front_desk = actor_for(world.front_desk, world.clinic)
    patient = world.patient
    patient_update_demographics(
        front_desk, patient, expected_version=patient.version, changes={"phone": "+1 555 0142"}
    )
    record_event(actor_for(world.prescriber, world.clinic), "view", patient=patient)
    client.force_login(world.admin)
    body = client.get("/audit/").content.decode()
    assert "<code>patient.update</code>" in body and "changed: phone" in body
    assert "+1 555 0142" not in body
    assert [e["name"] for e in client.get("/audit/", {"event": "patient."}).context["events"]] == [
        "patient.view",
        "patient.update",
    ]
    only = client.get("/audit/", {"event": "patient.update"})
    assert [e["name"] for e in only.context["events"]] == ["patient.update"]
    bad = client.get("/audit/", {"event": "Patient Update"})
    assert "Lowercase letters" in bad.content.decode()
