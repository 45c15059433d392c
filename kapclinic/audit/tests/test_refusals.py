"""Every refusal (403) leaves exactly one "denied" audit event, naming the patient when the address is
about one the asker may know. The access-matrix walk checks every URL x persona; these pin the paths."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.test import RequestFactory
from django.urls import resolve, reverse

from kapclinic import policy
from kapclinic.accounts.models import User
from kapclinic.audit.models import AuditEvent


def _new_events(before: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(pk__gt=before).order_by("pk"))


def _last() -> int:
    last = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    return last or 0


def test_nurse_refused_process_notes_is_one_denied_event_naming_the_patient(world: Any, client: Any) -> None:
    # The probe's example: the role gate (require_clinic) refused before open_patient, with no trace.
    client.force_login(world.nurse)
    before = _last()
    url = reverse("notes:process_list", kwargs={"patient_id": world.patient.pk})
    assert client.get(url).status_code == 403
    events = _new_events(before)
    assert [(e.action, e.patient_id, e.actor_id, e.actor_role) for e in events] == [
        ("denied", world.patient.pk, world.nurse.pk, "nurse")
    ]
    assert events[0].detail == "notes:process_list" and events[0].object_type == "page"


def test_clinic_level_refusal_is_audited_without_a_patient(world: Any, client: Any) -> None:
    client.force_login(world.nurse)
    before = _last()
    assert client.get(reverse("audit:log")).status_code == 403
    events = _new_events(before)
    assert [(e.action, e.patient_id, e.clinic_id, e.detail) for e in events] == [
        ("denied", None, world.clinic.pk, "audit:log")
    ]


def test_patient_refused_a_staff_page_about_another_patient_is_not_named(world: Any, client: Any) -> None:
    # A patient must not have another patient's record attached to their own refusal.
    client.force_login(world.other_patient_user)
    before = _last()
    url = reverse("notes:process_list", kwargs={"patient_id": world.patient.pk})
    assert client.get(url).status_code == 403
    assert [(e.action, e.patient_id) for e in _new_events(before)] == [("denied", None)]


def test_a_page_answering_403_itself_is_audited_by_the_middleware(client: Any, db: Any) -> None:
    # Signed in but with no clinic membership and no patient record: home answers 403 without raising.
    user = User.objects.create_user(email="nobody@test.kapclinic.test", full_name="No One", password="x" * 16)
    client.force_login(user)
    before = _last()
    assert client.get(reverse("core:home")).status_code == 403
    events = _new_events(before)
    assert [(e.action, e.actor_id, e.detail) for e in events] == [("denied", user.pk, "core:home")]


def test_a_refusal_rolled_back_with_its_transaction_is_recorded_again(world: Any) -> None:
    request: Any = RequestFactory().get(f"/notes/patient/{world.patient.pk}/process/")
    request.user, request.clinic, request.role, request.request_id = (
        world.nurse,
        world.clinic,
        "nurse",
        "r1",
    )
    request.resolver_match = resolve(request.path)
    before = _last()
    with pytest.raises(PermissionDenied), transaction.atomic():
        raise policy.refuse(request, "no")  # rolls back the denied event it recorded
    assert _new_events(before) == []
    policy.ensure_refusal_audited(request)
    policy.ensure_refusal_audited(request)  # a second look records nothing more
    events = _new_events(before)
    assert [(e.action, e.patient_id, e.detail) for e in events] == [
        ("denied", world.patient.pk, "notes:process_list")
    ]
