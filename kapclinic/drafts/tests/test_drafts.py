"""Issue #18: the long forms keep a server-side draft for their author only; saving the form clears it."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.urls import reverse

from kapclinic.audit.models import AuditEvent
from kapclinic.consent import services as consent_services
from kapclinic.core.actor import Actor
from kapclinic.drafts.models import Draft
from kapclinic.intake.tests.helpers import assessment_post, complete_assessment
from kapclinic.patients.models import CareTeamMember
from kapclinic.testing.factories import make_staff

pytestmark = pytest.mark.django_db

TYPED = "Synthetic: two failed SSRI trials, sertraline 2023"


def _url(key: str, object_id: int = 0, name: str = "drafts:draft") -> str:
    return reverse(name, kwargs={"key": key, "object_id": object_id})


def _save(client: Any, key: str, object_id: int, data: Any) -> Any:
    return client.post(_url(key, object_id), json.dumps({"data": data}), content_type="application/json")


def test_author_saves_and_finds_the_draft_again_with_its_time(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    client.force_login(world.prescriber)
    assert client.get(_url("intake.assessment", world.patient.pk)).status_code == 204
    data = {"prior_treatment_notes": TYPED, "q_pregnant": "no", "prior_ect": "no", "ic-cls_1": ["a", "b"]}
    saved = _save(client, "intake.assessment", world.patient.pk, data)
    assert saved.status_code == 200
    # 2026-03-02 14:00 UTC is 09:00 in the clinic's time zone (America/New_York).
    assert saved.json() == {"saved_at": "09:00"}
    found = client.get(_url("intake.assessment", world.patient.pk))
    assert found.status_code == 200 and found.json() == {"saved_at": "09:00", "data": data}
    # Saving again replaces the one draft.
    _save(client, "intake.assessment", world.patient.pk, {"prior_treatment_notes": "changed"})
    assert Draft.objects.get().data == {"prior_treatment_notes": "changed"}


def test_another_user_never_sees_someones_draft(world: Any, client: Any) -> None:
    client.force_login(world.prescriber)
    _save(client, "intake.assessment", world.patient.pk, {"prior_treatment_notes": TYPED})
    colleague = make_staff(world.clinic, "prescriber")
    CareTeamMember.objects.create(patient=world.patient, user=colleague, role="prescriber")
    client.force_login(colleague)
    response = client.get(_url("intake.assessment", world.patient.pk))
    assert response.status_code == 204 and TYPED not in response.content.decode()
    # Their discard touches only their own (absent) draft.
    assert client.post(_url("intake.assessment", world.patient.pk, "drafts:discard")).status_code == 204
    assert Draft.objects.filter(user=world.prescriber).count() == 1
    # Another clinic's staff: the record does not exist for them; a patient may not fill the form in.
    client.force_login(world.other_clinic_staff)
    assert client.get(_url("intake.assessment", world.patient.pk)).status_code == 404
    client.force_login(world.patient_user)
    assert _save(client, "intake.assessment", world.patient.pk, {"x": "y"}).status_code == 403


def test_saves_and_reads_are_audited_without_the_values(world: Any, client: Any) -> None:
    client.force_login(world.prescriber)
    before = AuditEvent.objects.count()
    _save(client, "intake.assessment", world.patient.pk, {"prior_treatment_notes": TYPED})
    client.get(_url("intake.assessment", world.patient.pk))
    events = list(AuditEvent.objects.order_by("seq")[before:])
    assert [(e.action, e.object_type, e.patient_id) for e in events] == [
        ("update", "draft", world.patient.pk),
        ("view", "draft", world.patient.pk),
    ]
    assert all(TYPED not in e.detail for e in events)


def test_draft_values_are_never_logged(world: Any, client: Any, caplog: Any) -> None:
    client.force_login(world.prescriber)
    with caplog.at_level(logging.DEBUG):
        _save(client, "intake.assessment", world.patient.pk, {"prior_treatment_notes": TYPED})
        client.get(_url("intake.assessment", world.patient.pk))
    assert TYPED not in caplog.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "not valid JSON"),
        (json.dumps({"values": {}}), '{"data"'),
        (json.dumps({"data": ["a"]}), "object of field names"),
        (json.dumps({"data": {"a": 3}}), "is not text"),
        (json.dumps({"data": {"a": "x" * 50_001}}), "longer than 50000"),
    ],
)
def test_bad_drafts_are_refused_with_a_sentence(world: Any, client: Any, body: str, message: str) -> None:
    client.force_login(world.prescriber)
    response = client.post(_url("intake.assessment", world.patient.pk), body, content_type="application/json")
    assert response.status_code == 400 and message in response.json()["error"]
    assert not Draft.objects.exists()


def test_unknown_form_is_404(world: Any, client: Any) -> None:
    client.force_login(world.prescriber)
    assert client.get(_url("notes.anything", 1)).status_code == 404
    assert client.get(_url("intake.questionnaire", 0)).status_code == 403  # staff: the patients' form
    client.force_login(world.patient_user)
    assert client.get(_url("intake.questionnaire", 5)).status_code == 404  # about no particular object


def test_saving_the_assessment_clears_the_authors_draft_only(world: Any, client: Any) -> None:
    complete_assessment(world.patient)
    client.force_login(world.therapist)
    _save(client, "intake.assessment", world.patient.pk, {"prior_treatment_notes": "therapist's"})
    client.force_login(world.prescriber)
    _save(client, "intake.assessment", world.patient.pk, {"prior_treatment_notes": TYPED})
    page = client.get(reverse("intake:assessment", args=[world.patient.pk])).content.decode()
    assert "data-draft-restore" in page and "Restored your unsaved draft from" in page
    url = reverse("intake:assessment", args=[world.patient.pk])
    response = client.post(url, assessment_post(world.patient))
    assert response.status_code == 302
    assert list(Draft.objects.values_list("user_id", flat=True)) == [world.therapist.pk]


def test_a_refused_save_keeps_the_draft_and_does_not_restore_over_the_posted_values(
    world: Any, client: Any
) -> None:
    complete_assessment(world.patient)
    client.force_login(world.prescriber)
    _save(client, "intake.assessment", world.patient.pk, {"prior_treatment_notes": TYPED})
    url = reverse("intake:assessment", args=[world.patient.pk])
    response = client.post(url, assessment_post(world.patient, systolic_bp="abc"))
    assert response.status_code == 400
    assert "data-draft-restore" not in response.content.decode()
    assert Draft.objects.count() == 1


def test_questionnaire_and_consent_drafts_clear_on_send(world: Any, client: Any) -> None:
    from kapclinic.intake.models import Assessment

    Assessment.objects.create(patient=world.patient)
    doc = consent_services.document_publish(
        Actor(world.prescriber, world.clinic, "prescriber"), title="KAP consent", body="Synthetic text."
    )
    client.force_login(world.patient_user)
    assert _save(client, "consent.sign", 0, {"typed_name": "Draft Name"}).status_code == 200
    assert "data-draft-restore" in client.get(reverse("consent:sign")).content.decode()
    signed = {"document_id": doc.pk, "agreed": "on", "typed_name": world.patient.legal_name}
    response = client.post(reverse("consent:sign"), signed)
    assert response.status_code == 302 and not Draft.objects.exists()
    assert _save(client, "intake.questionnaire", 0, {"notes": "Synthetic"}).status_code == 200
    assert "data-draft-url" in client.get(reverse("intake:questionnaire")).content.decode()


def test_consent_document_draft_holds_no_patient_and_clears_on_publish(world: Any, client: Any) -> None:
    client.force_login(world.admin)
    before = AuditEvent.objects.count()
    assert _save(client, "consent.document", 0, {"title": "v2", "body": "Synthetic body"}).status_code == 200
    assert Draft.objects.get().patient_id is None and AuditEvent.objects.count() == before
    response = client.post(reverse("consent:document_new"), {"title": "v2", "body": "Synthetic body"})
    assert response.status_code == 302 and not Draft.objects.exists()
    client.force_login(world.nurse)
    assert client.get(_url("consent.document")).status_code == 403
