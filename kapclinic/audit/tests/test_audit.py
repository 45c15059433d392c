from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from kapclinic.audit.models import AuditEvent
from kapclinic.audit.services import record_event, verify_chains
from kapclinic.testing.factories import actor_for


def _count(**filters: Any) -> int:
    return AuditEvent.objects.filter(**filters).count()


def test_chart_view_leaves_exactly_one_event(world: Any, client: Any) -> None:
    client.force_login(world.therapist)
    before = _count(patient=world.patient)
    assert client.get(f"/patients/{world.patient.pk}/").status_code == 200
    events = list(
        AuditEvent.objects.filter(patient=world.patient).order_by("-id")[
            : _count(patient=world.patient) - before
        ]
    )
    assert [e.action for e in events] == ["view"]
    event = events[0]
    assert event.actor_id == world.therapist.pk
    assert event.actor_role == "therapist"
    assert event.request_id and event.ip == "127.0.0.1"
    assert event.clinic_id == world.clinic.pk


def test_refused_access_is_one_denied_event(world: Any, client: Any) -> None:
    client.force_login(world.therapist_other)
    assert client.get(f"/patients/{world.patient.pk}/").status_code == 403
    assert list(AuditEvent.objects.filter(patient=world.patient).values_list("action", flat=True)) == [
        "denied"
    ]


def test_other_clinic_gets_404_and_no_patient_event(world: Any, client: Any) -> None:
    client.force_login(world.other_clinic_staff)
    assert client.get(f"/patients/{world.patient.pk}/").status_code == 404
    assert _count(patient=world.patient) == 0


def test_update_leaves_one_update_event(world: Any, client: Any) -> None:
    client.force_login(world.front_desk)
    data = _form_data(world.patient)
    data["phone"] = "(555) 010-7777"
    response = client.post(f"/patients/{world.patient.pk}/edit/", data)
    assert response.status_code == 302
    assert list(AuditEvent.objects.filter(patient=world.patient).values_list("action", flat=True)) == [
        "update"
    ]


def test_create_leaves_one_create_event(world: Any, client: Any) -> None:
    client.force_login(world.front_desk)
    response = client.post(
        "/patients/new/",
        {
            "legal_first_name": "Jo",
            "legal_last_name": "Example",
            "date_of_birth": "1990-01-02",
            "sex_at_birth": "unknown",
        },
    )
    assert response.status_code == 302
    event = AuditEvent.objects.filter(action="create").get()
    assert event.patient is not None and event.patient.legal_first_name == "Jo"


def test_list_leaves_one_list_event(world: Any, client: Any) -> None:
    client.force_login(world.nurse)
    client.get("/patients/")
    events = AuditEvent.objects.filter(actor=world.nurse).exclude(action="login")
    assert list(events.values_list("action", flat=True)) == ["list"]


def _form_data(patient: Any) -> dict[str, Any]:
    return {
        "legal_first_name": patient.legal_first_name,
        "legal_last_name": patient.legal_last_name,
        "date_of_birth": patient.date_of_birth.isoformat(),
        "sex_at_birth": patient.sex_at_birth,
        "pathway_status": patient.pathway_status,
        "version": patient.version,
    }


def test_events_cannot_be_changed_or_deleted_by_the_application(world: Any) -> None:
    event = record_event(actor_for(world.admin, world.clinic), "view", patient=world.patient)
    event.detail = "changed"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(detail="x")
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).delete()


def test_database_triggers_refuse_raw_update_and_delete(world: Any) -> None:
    from importlib import import_module

    triggers = import_module("kapclinic.audit.migrations.0002_append_only_triggers")
    event = record_event(actor_for(world.admin, world.clinic), "view", patient=world.patient)
    up = {"sqlite": triggers.SQLITE_UP, "postgresql": triggers.PG_UP}[connection.vendor]
    down = {"sqlite": triggers.SQLITE_DOWN, "postgresql": triggers.PG_DOWN}[connection.vendor]
    with connection.cursor() as cursor:
        for statement in up:
            cursor.execute(statement)
    for sql in (
        "UPDATE audit_auditevent SET detail = 'x' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [event.pk])
    with connection.cursor() as cursor:
        for statement in down:
            cursor.execute(statement)


def _tamper(sql: str, params: list[Any]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _events(world: Any, n: int) -> list[AuditEvent]:
    actor = actor_for(world.prescriber, world.clinic)
    return [record_event(actor, "view", patient=world.patient, detail=f"i={i}") for i in range(n)]


def test_verify_passes_on_an_intact_chain(world: Any, capsys: Any) -> None:
    _events(world, 5)
    assert verify_chains() == []
    call_command("audit_verify")
    assert "intact" in capsys.readouterr().out


def test_verify_names_an_altered_row(world: Any) -> None:
    events = _events(world, 5)
    _tamper("UPDATE audit_auditevent SET actor_role = 'admin' WHERE id = %s", [events[2].pk])
    problems = verify_chains()
    assert len(problems) == 1
    assert f"#{events[2].seq} (id {events[2].pk}) was altered" in problems[0]
    with pytest.raises(CommandError):
        call_command("audit_verify")


def test_verify_names_a_deleted_row(world: Any) -> None:
    events = _events(world, 5)
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[1].pk])
    problems = verify_chains()
    assert len(problems) == 1
    assert f"event #{events[1].seq} is missing" in problems[0]


def test_verify_notices_a_removed_tail(world: Any) -> None:
    events = _events(world, 4)
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[-1].pk])
    problems = verify_chains()
    assert len(problems) == 1 and "newest event(s)" in problems[0]


def test_verify_notices_a_rehashed_forgery(world: Any) -> None:
    """An attacker who edits a row and recomputes its own hash still breaks the link to the next one."""
    events = _events(world, 3)
    forged = AuditEvent.objects.get(pk=events[0].pk)
    forged.detail = "forged"
    new_hash = forged.compute_hash()
    _tamper("UPDATE audit_auditevent SET detail = 'forged', hash = %s WHERE id = %s", [new_hash, forged.pk])
    problems = verify_chains()
    assert len(problems) == 1 and f"#{events[1].seq}" in problems[0] and "does not link" in problems[0]


def test_each_clinic_has_its_own_chain(world: Any) -> None:
    record_event(actor_for(world.prescriber, world.clinic), "view", patient=world.patient)
    record_event(
        actor_for(world.other_clinic_staff, world.other_clinic), "view", patient=world.other_clinic_patient
    )
    chains = set(AuditEvent.objects.values_list("chain", flat=True))
    assert chains == {world.clinic.pk, world.other_clinic.pk}
    assert verify_chains() == []


def test_admin_audit_log_filters(world: Any, client: Any) -> None:
    _events(world, 3)
    record_event(actor_for(world.prescriber, world.clinic), "view", patient=world.other_patient)
    client.force_login(world.admin)
    response = client.get("/audit/", {"mrn": world.other_patient.mrn})
    assert response.status_code == 200
    assert len(response.context["events"]) == 1
    response = client.get("/audit/", {"action": "denied"})
    assert len(response.context["events"]) == 0


def test_audit_log_query_count_is_constant(
    world: Any, client: Any, django_assert_max_num_queries: Any
) -> None:
    client.force_login(world.admin)
    _events(world, 1)
    with django_assert_max_num_queries(12):
        client.get("/audit/")
    _events(world, 60)
    with django_assert_max_num_queries(12):
        response = client.get("/audit/")
    assert len(response.context["events"]) == 50
    assert response.context["next_before"] is not None


#: The log's row template before issue #7 (model instances, |date, |default, get_action_display and
#: |truncatechars per row; since issue 13 with the event's name): the rows the page prints now must read
#: exactly the same.
_ROWS_BEFORE = """{% for e in events %}<tr>
<td>{{ e.at|date:"Y-m-d H:i:s" }}</td><td>{{ e.actor.email|default:"system" }}{% if e.actor_role %} \
<span class="muted">({{ e.actor_role }})</span>{% endif %}</td>
<td>{% if e.action == "denied" %}<span class="badge danger">{{ e.get_action_display }}</span>{% else %}\
{{ e.get_action_display }}{% endif %}{% if e.name %}<br><code>{{ e.name }}</code>{% endif %}</td>
<td>{{ e.patient.mrn|default:"—" }}</td><td>{{ e.object_type }} {{ e.object_id }}</td>\
<td><code>{{ e.request_id|truncatechars:12 }}</code></td><td>{{ e.ip }}</td>
</tr>{% endfor %}"""


def test_audit_log_prints_what_the_event_rows_printed(world: Any, client: Any) -> None:
    from dataclasses import replace

    from django.template import Context, Template

    staff = actor_for(world.prescriber, world.clinic)
    record_event(replace(staff, request_id="a" * 32, ip="10.0.0.1"), "view", patient=world.patient)
    record_event(replace(staff, request_id="short"), "denied", patient=world.other_patient)
    record_event(replace(staff, user=None, role=None, request_id="x" * 12), "admin", clinic=world.clinic)
    record_event(staff, "export", object_type="report", object_id="7", detail="n=3")
    client.force_login(world.admin)
    for query in ({}, {"mrn": world.patient.mrn}, {"action": "denied"}, {"actor": world.prescriber.email}):
        body = client.get("/audit/", query).content.decode()
        qs = AuditEvent.objects.filter(clinic=world.clinic).select_related("actor", "patient")
        if "mrn" in query:
            qs = qs.filter(patient__mrn=query["mrn"])
        if "action" in query:
            qs = qs.filter(action=query["action"])
        if "actor" in query:
            qs = qs.filter(actor__email__iexact=query["actor"])
        events = list(qs.order_by("-id")[:50])
        assert events, query
        before = Template(_ROWS_BEFORE).render(Context({"events": events}))
        assert before in body, query
    body = client.get("/audit/").content.decode()
    assert "<code>aaaaaaaaaaa…</code>" in body and "<code>xxxxxxxxxxxx</code>" in body
    assert '<span class="badge danger">Refused access</span>' in body and "<td>system</td>" in body


def test_audit_log_pages_by_id_and_keeps_the_filter(world: Any, client: Any) -> None:
    staff = actor_for(world.prescriber, world.clinic)
    for _ in range(55):
        record_event(staff, "view", patient=world.patient)
    client.force_login(world.admin)
    first = client.get("/audit/", {"mrn": world.patient.mrn})
    ids = list(AuditEvent.objects.filter(patient=world.patient).order_by("-id").values_list("id", flat=True))
    assert [e["pk"] for e in first.context["events"]] == ids[:50]
    assert first.context["next_before"] == ids[49]
    older = f'?mrn={world.patient.mrn}&amp;before={ids[49]}">Older events</a>'
    assert older in first.content.decode()
    second = client.get("/audit/", {"mrn": world.patient.mrn, "before": ids[49]})
    assert [e["pk"] for e in second.context["events"]] == ids[50:] and second.context["next_before"] is None


def test_audit_filter_form_is_unchanged(world: Any, client: Any) -> None:
    """The action list renders exactly as Django's own select did, whichever action is chosen."""
    from django import forms

    from kapclinic.audit.models import AuditAction
    from kapclinic.audit.views import AuditFilterForm

    class Plain(AuditFilterForm):
        action = forms.ChoiceField(choices=[("", "Any action"), *AuditAction.choices], required=False)

    for data in ({}, {"action": "denied"}, {"action": "view", "mrn": "S-1"}, {"date_from": "bad"}):
        assert str(AuditFilterForm(data or None).as_div()) == str(Plain(data or None).as_div()), data


def test_audit_log_times_and_day_filters_use_the_clinic_time_zone(world: Any, client: Any) -> None:
    """03:00 UTC on March 1st is the evening of February 28th in New York (the site's zone): the page
    prints it so, says which zone it prints in, and the From/To days select it on the 28th."""
    import datetime as dt

    from django.test import override_settings

    from kapclinic.core import clock

    staff = actor_for(world.prescriber, world.clinic)
    with clock.frozen_at(dt.datetime(2026, 3, 1, 3, 0, tzinfo=dt.UTC)):
        event = record_event(staff, "view", patient=world.patient)
    client.force_login(world.admin)
    with override_settings(TIME_ZONE="America/New_York"):
        on_28th = client.get(
            "/audit/", {"mrn": world.patient.mrn, "date_from": "2026-02-28", "date_to": "2026-02-28"}
        )
        on_1st = client.get(
            "/audit/", {"mrn": world.patient.mrn, "date_from": "2026-03-01", "date_to": "2026-03-01"}
        )
    body = on_28th.content.decode()
    assert "When (America/New_York)" in body and "<td>2026-02-28 22:00:00</td>" in body
    assert [e["pk"] for e in on_28th.context["events"]] == [event.pk]
    assert on_1st.context["events"] == []
