"""Clinic note templates: edits make new versions (notes keep theirs), retire/reinstate, hiding built-ins,
optimistic concurrency and who may do it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from kapclinic.audit.models import AuditEvent
from kapclinic.core import clock
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.notes import services
from kapclinic.notes.models import ClinicNoteTemplate, ClinicNoteTemplateVersion, HiddenBuiltinTemplate, Note
from kapclinic.notes.templates_data import available_templates
from kapclinic.testing.factories import actor_for

pytestmark = pytest.mark.django_db

CONFLICT = "Someone else changed this record"


def therapist(world: Any) -> Any:
    return actor_for(world.therapist, world.clinic)


def make_template(world: Any) -> ClinicNoteTemplate:
    return services.template_create(
        therapist(world), title="Couples check-in", section_labels=["Each partner", "Plan"]
    )


def edit_url(row: ClinicNoteTemplate) -> str:
    return reverse("notes:template_edit", args=[row.pk])


def test_an_edit_is_a_new_version_and_an_existing_note_keeps_the_old_one(
    world: Any, client: Client, clock_frozen: Any
) -> None:
    actor = therapist(world)
    row = make_template(world)
    assert row.number == 1 and row.versions.count() == 1
    old = services.note_create(actor, world.patient, template_key=row.key)
    old = services.note_sign(
        actor, old, expected_version=old.version, texts={"each_partner": "Both attended."}
    )
    assert old.template_version == f"clinic-{row.pk}.1"

    clock.advance(dt.timedelta(days=3))
    row = services.template_update(
        actor,
        row,
        expected_version=row.version,
        title="Couples session",
        section_labels=["Partner A", "Partner B", "Plan"],
    )
    assert row.number == 2 and row.version == 2
    assert [v.number for v in row.versions.all()] == [2, 1]
    v1 = row.versions.get(number=1)
    assert v1.title == "Couples check-in" and [s["label"] for s in v1.sections] == ["Each partner", "Plan"]

    old.refresh_from_db()
    assert old.clinic_template_version == v1 and old.template_version == f"clinic-{row.pk}.1"
    assert [s["label"] for s in old.sections] == ["Each partner", "Plan"]
    assert old.title == "Couples check-in"

    new = services.note_create(actor, world.patient, template_key=row.key)
    assert new.template_key == old.template_key == row.key  # same family
    assert new.template_version == f"clinic-{row.pk}.2"
    assert new.clinic_template_version is not None and new.clinic_template_version.number == 2
    assert [s["label"] for s in new.sections] == ["Partner A", "Partner B", "Plan"]

    client.force_login(world.therapist)
    body = client.get(reverse("notes:detail", args=[world.patient.pk, old.pk])).content.decode()
    assert "Each partner" in body and "Both attended." in body and "Partner A" not in body
    assert "version 1 (the template is now at version 2" in body


def test_edit_over_http_saves_a_version_and_audits_update(
    world: Any, client: Client, clock_frozen: Any
) -> None:
    row = make_template(world)
    client.force_login(world.prescriber)  # any template role may edit the clinic's templates
    page = client.get(edit_url(row)).content.decode()
    assert "Each partner\nPlan" in page and 'name="version" value="1"' in page
    before = AuditEvent.objects.count()
    r = client.post(
        edit_url(row), {"title": "Couples check-in", "sections": "Each partner\nGoals\nPlan", "version": 1}
    )
    assert r.status_code == 302
    row.refresh_from_db()
    assert row.number == 2 and [s["key"] for s in row.sections] == ["each_partner", "goals", "plan"]
    events = list(AuditEvent.objects.order_by("id")[before:])
    assert [(e.action, e.object_type, e.object_id) for e in events] == [
        ("update", "notes.clinicnotetemplate", str(row.pk))
    ]
    assert events[0].detail == "note template version=2 sections=3"
    assert events[0].actor == world.prescriber
    listing = client.get(reverse("notes:templates")).content.decode()
    assert "version 2" in listing and "History (2 versions)" in listing and "Version 1" in listing


def test_bad_edits_re_render_and_change_nothing(world: Any, client: Client, clock_frozen: Any) -> None:
    row = make_template(world)
    services.template_create(therapist(world), title="Grief review", section_labels=["Loss"])
    client.force_login(world.therapist)
    cases = [
        ({"title": "", "sections": "A", "version": 1}, "This field is required"),
        ({"title": "X", "sections": "  \n ", "version": 1}, "This field is required"),
        (
            {"title": "grief review", "sections": "A", "version": 1},
            "already has a template called grief review",
        ),
        ({"title": "Couples check-in", "sections": "Each partner\nPlan", "version": 1}, "Nothing changed"),
        ({"title": "X", "sections": "\n".join(f"S{i}" for i in range(31)), "version": 1}, "at most 30"),
        ({"title": "X", "sections": "A"}, "reload it and make your changes again"),
    ]
    for data, message in cases:
        r = client.post(edit_url(row), data)
        assert r.status_code == 400, data
        assert message in r.content.decode(), data
    row.refresh_from_db()
    assert row.number == 1 and row.version == 1 and row.title == "Couples check-in"
    assert row.versions.count() == 1
    assert not AuditEvent.objects.filter(action="update").exists()


def test_two_people_editing_the_same_template_second_gets_409(
    world: Any, client: Client, clock_frozen: Any
) -> None:
    row = make_template(world)
    other = Client()
    client.force_login(world.therapist)
    other.force_login(world.prescriber)
    assert client.get(edit_url(row)).status_code == 200
    assert other.get(edit_url(row)).status_code == 200
    first = client.post(edit_url(row), {"title": "First", "sections": "One", "version": 1})
    assert first.status_code == 302
    second = other.post(edit_url(row), {"title": "Second", "sections": "Two", "version": 1})
    assert second.status_code == 409 and CONFLICT in second.content.decode()
    row.refresh_from_db()
    assert row.title == "First" and row.number == 2
    assert list(row.versions.values_list("title", flat=True)) == ["First", "Couples check-in"]
    # the same at the service level, and for retiring
    with pytest.raises(ConflictError):
        services.template_update(
            therapist(world), row, expected_version=1, title="Third", section_labels=["x"]
        )
    with pytest.raises(ConflictError):
        services.template_set_active(therapist(world), row, expected_version=1, active=False)
    r = client.post(reverse("notes:template_retire", args=[row.pk]), {"version": 1})
    assert r.status_code == 409 and CONFLICT in r.content.decode()
    row.refresh_from_db()
    assert row.is_active and row.version == 2


def test_retire_hides_from_new_notes_keeps_existing_and_can_be_undone(
    world: Any, client: Client, clock_frozen: Any
) -> None:
    actor = therapist(world)
    row = make_template(world)
    note = services.note_create(actor, world.patient, template_key=row.key)
    client.force_login(world.therapist)
    new_url = reverse("notes:new", args=[world.patient.pk])
    assert row.key in client.get(new_url).content.decode()

    before = AuditEvent.objects.count()
    r = client.post(reverse("notes:template_retire", args=[row.pk]), {"version": row.version})
    assert r.status_code == 302
    row.refresh_from_db()
    assert not row.is_active and row.retired_by == world.therapist and row.retired_at == clock.now()
    assert row.number == 1  # retiring is not a content version
    events = list(AuditEvent.objects.order_by("id")[before:])
    assert [(e.action, e.detail) for e in events] == [("update", "note template retired")]

    assert row.key not in available_templates(world.clinic)
    assert row.key not in client.get(new_url).content.decode()
    with pytest.raises(DomainError, match="Choose one of the clinic's note templates"):
        services.note_create(actor, world.patient, template_key=row.key)
    r = client.post(new_url, {"template": row.key, "service_date": "2026-03-02"})
    assert r.status_code == 400
    # the existing draft is still there, renders and can still be finished
    detail = client.get(reverse("notes:detail", args=[world.patient.pk, note.pk]))
    assert detail.status_code == 200 and "template since retired" in detail.content.decode()
    assert client.get(reverse("notes:edit", args=[world.patient.pk, note.pk])).status_code == 200
    services.note_sign(actor, note, expected_version=note.version, texts={"plan": "Weekly."})
    listing = client.get(reverse("notes:templates")).content.decode()
    assert "Retired" in listing and "Reinstate" in listing

    r = client.post(reverse("notes:template_retire", args=[row.pk]), {"version": row.version})
    assert r.status_code == 400 and "already retired" in r.content.decode()
    r = client.post(reverse("notes:template_reinstate", args=[row.pk]), {"version": row.version})
    assert r.status_code == 302
    row.refresh_from_db()
    assert row.is_active and row.retired_at is None and row.retired_by is None
    assert row.key in available_templates(world.clinic)
    assert AuditEvent.objects.filter(action="update", detail="note template reinstated").count() == 1


@pytest.mark.parametrize("persona", ["nurse", "front_desk", "admin", "patient_user"])
def test_roles_without_template_rights_are_refused(
    persona: str, world: Any, client: Client, clock_frozen: Any
) -> None:
    row = make_template(world)
    client.force_login(world.persona(persona))
    assert client.get(edit_url(row)).status_code == 403
    data = {"title": "Hijack", "sections": "x", "version": 1}
    assert client.post(edit_url(row), data).status_code == 403
    assert client.post(reverse("notes:template_retire", args=[row.pk]), {"version": 1}).status_code == 403
    r = client.post(reverse("notes:builtin_visibility", args=["soap"]), {"action": "hide"})
    assert r.status_code == 403
    row.refresh_from_db()
    assert row.title == "Couples check-in" and row.is_active and row.version == 1
    assert not HiddenBuiltinTemplate.objects.exists()


def test_another_clinics_template_does_not_exist_for_you(
    world: Any, client: Client, clock_frozen: Any
) -> None:
    row = make_template(world)
    client.force_login(world.other_clinic_staff)  # a prescriber, in another clinic
    assert client.get(edit_url(row)).status_code == 404
    assert client.post(edit_url(row), {"title": "X", "sections": "x", "version": 1}).status_code == 404
    assert client.post(reverse("notes:template_retire", args=[row.pk]), {"version": 1}).status_code == 404
    with pytest.raises(DomainError, match="another clinic"):
        services.template_set_active(
            actor_for(world.other_clinic_staff, world.other_clinic), row, expected_version=1, active=False
        )
    row.refresh_from_db()
    assert row.is_active and row.version == 1


def test_builtins_cannot_be_edited_but_can_be_hidden_for_this_clinic(
    world: Any, client: Client, clock_frozen: Any
) -> None:
    actor = therapist(world)
    dap_note = services.note_create(actor, world.patient, template_key="dap")
    client.force_login(world.therapist)
    listing = client.get(reverse("notes:templates")).content.decode()
    assert "A clinic cannot edit or retire them" in listing
    visibility = reverse("notes:builtin_visibility", args=["dap"])
    assert client.post(visibility, {"action": "hide"}).status_code == 302
    assert client.post(visibility, {"action": "hide"}).status_code == 302  # idempotent
    assert HiddenBuiltinTemplate.objects.filter(clinic=world.clinic, key="dap").count() == 1
    assert "dap" not in available_templates(world.clinic)
    assert "dap" in available_templates(world.other_clinic)  # only this clinic
    assert 'value="dap"' not in client.get(reverse("notes:new", args=[world.patient.pk])).content.decode()
    with pytest.raises(DomainError):
        services.note_create(actor, world.patient, template_key="dap")
    assert client.get(reverse("notes:detail", args=[world.patient.pk, dap_note.pk])).status_code == 200
    assert "Hidden here" in client.get(reverse("notes:templates")).content.decode()
    assert client.post(visibility, {"action": "show"}).status_code == 302
    assert "dap" in available_templates(world.clinic)
    assert list(
        AuditEvent.objects.filter(object_type="notes.builtin_template").values_list("action", "detail")
    ) == [
        ("update", "builtin template hidden"),
        ("update", "builtin template hidden"),
        ("update", "builtin template shown"),
    ]
    # integration notes need the integration template; unknown keys and bad actions are refused
    r = client.post(reverse("notes:builtin_visibility", args=["integration"]), {"action": "hide"})
    assert r.status_code == 400 and "cannot be hidden" in r.content.decode()
    r = client.post(reverse("notes:builtin_visibility", args=["nope"]), {"action": "hide"})
    assert r.status_code == 400 and "no built-in template" in r.content.decode()
    assert client.post(visibility, {"action": "delete"}).status_code == 400
    assert not HiddenBuiltinTemplate.objects.exists()


@pytest.mark.parametrize("n", [1, 8])
def test_template_list_constant_queries(
    n: int, world: Any, client: Client, clock_frozen: Any, django_assert_max_num_queries: Any
) -> None:
    actor = therapist(world)
    for i in range(n):
        row = services.template_create(actor, title=f"Template {i}", section_labels=["A", "B"])
        row = services.template_update(
            actor, row, expected_version=row.version, title=f"Template {i}", section_labels=["A", "C"]
        )
        if i % 2:
            services.template_set_active(actor, row, expected_version=row.version, active=False)
    services.builtin_set_hidden(actor, "soap", hidden=True)
    client.force_login(world.therapist)
    with django_assert_max_num_queries(12):  # the same for 1 and 8 templates
        r = client.get(reverse("notes:templates"))
    assert r.status_code == 200 and r.content.decode().count("History (2 versions)") == n


def test_migration_makes_existing_templates_version_1_and_links_their_notes(world: Any) -> None:
    import importlib

    from django.apps import apps

    migration = importlib.import_module(
        "kapclinic.notes.migrations.0004_template_versions_process_note_edits"
    )
    row = ClinicNoteTemplate.objects.create(
        clinic=world.clinic, title="Legacy", sections=[{"key": "a", "label": "A"}], created_by=world.therapist
    )
    note = Note.objects.create(
        clinic=world.clinic, patient=world.patient, kind="custom", template_key=f"clinic-{row.pk}",
        template_version=f"clinic-{row.pk}.1", title="Legacy", service_date=dt.date(2026, 3, 1),
        sections=[{"key": "a", "label": "A", "text": "x"}], author=world.therapist,
    )  # fmt: skip
    migration.first_versions(apps, None)
    version = ClinicNoteTemplateVersion.objects.get(template=row)
    assert version.number == 1 and version.title == "Legacy" and version.sections == row.sections
    note.refresh_from_db()
    assert note.clinic_template_version == version
