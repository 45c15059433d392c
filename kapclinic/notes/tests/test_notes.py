from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from kapclinic.audit.models import AuditEvent
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.notes import services
from kapclinic.notes.models import Note, NoteStatus
from kapclinic.notes.templates_data import builtin_templates
from kapclinic.portal.models import JournalEntry
from kapclinic.testing.factories import actor_for

pytestmark = pytest.mark.django_db


def therapist(world: Any) -> Any:
    return actor_for(world.therapist, world.clinic)


def test_builtin_templates_cover_the_issue_and_cite_the_reference() -> None:
    t = builtin_templates()
    assert {"preparation", "dosing_experience", "integration", "soap", "dap"} <= set(t)
    labels = " ".join(s.label for s in t["preparation"].sections)
    for word in ("Intention", "Expectations", "Fears", "signals", "supportive touch"):
        assert word in labels
    labels = " ".join(s.label for s in t["integration"].sections)
    for word in ("Experience review", "Themes", "intention", "Translation", "homework", "Safety", "next"):
        assert word in labels
    assert all(s.source for s in t["integration"].sections)


def test_lifecycle_draft_sign_addendum_and_edit_after_sign_refused(world: Any, clock_frozen: Any) -> None:
    actor = therapist(world)
    note = services.note_create(actor, world.patient, template_key="soap")
    assert note.status == NoteStatus.DRAFT
    with pytest.raises(DomainError, match="needs some text"):
        services.note_sign(actor, note, expected_version=note.version)
    note = services.note_save_draft(
        actor, note, expected_version=note.version, texts={"subjective": "Sleeping better."}
    )
    note = services.note_sign(actor, note, expected_version=note.version, texts={"plan": "Continue."})
    note.refresh_from_db()
    assert note.is_signed and note.signed_by == world.therapist
    assert [s["text"] for s in note.sections] == ["Sleeping better.", "", "", "Continue."]
    with pytest.raises(DomainError, match="signed on 2026-03-02 09:00 and can no longer be changed"):
        services.note_save_draft(actor, note, expected_version=note.version, texts={"subjective": "changed"})
    with pytest.raises(DomainError):
        services.note_sign(actor, note, expected_version=note.version)
    add = services.addendum_add(
        actor_for(world.prescriber, world.clinic), note, text="Dose review next week."
    )
    assert add.author == world.prescriber and add.created_at is not None
    note.refresh_from_db()
    assert note.sections[0]["text"] == "Sleeping better."


def test_addendum_only_on_signed_notes(world: Any, clock_frozen: Any) -> None:
    actor = therapist(world)
    note = services.note_create(actor, world.patient, template_key="dap")
    with pytest.raises(DomainError, match="signed notes"):
        services.addendum_add(actor, note, text="x")


def test_only_the_author_edits_a_draft_and_versions_are_checked(world: Any, clock_frozen: Any) -> None:
    note = services.note_create(therapist(world), world.patient, template_key="soap")
    with pytest.raises(DomainError, match="Only the author"):
        services.note_save_draft(
            actor_for(world.prescriber, world.clinic),
            note,
            expected_version=note.version,
            texts={"plan": "x"},
        )
    services.note_save_draft(therapist(world), note, expected_version=note.version, texts={"plan": "a"})
    with pytest.raises(ConflictError):
        services.note_save_draft(therapist(world), note, expected_version=1, texts={"plan": "b"})


def test_several_notes_on_the_same_day(world: Any, clock_frozen: Any, dosing_appt: Any) -> None:
    actor = therapist(world)
    services.note_create(
        actor, world.patient, template_key="dosing_experience", dosing_appointment=dosing_appt
    )
    services.note_create(actor, world.patient, template_key="integration", dosing_appointment=dosing_appt)
    services.note_create(actor, world.patient, template_key="soap")
    assert Note.objects.filter(patient=world.patient, service_date="2026-03-02").count() == 3


def test_integration_note_must_name_its_dosing_session(
    world: Any, clock_frozen: Any, dosing_appt: Any
) -> None:
    with pytest.raises(DomainError, match="must name the dosing session"):
        services.note_create(therapist(world), world.patient, template_key="integration")
    from kapclinic.scheduling.models import Appointment

    other = Appointment.objects.create(
        clinic=world.clinic, patient=world.other_patient, kind="dosing", starts_at=dosing_appt.starts_at,
        ends_at=dosing_appt.ends_at, staff=world.nurse, created_by=world.nurse,
    )  # fmt: skip
    with pytest.raises(DomainError, match="this patient's dosing sessions"):
        services.note_create(
            therapist(world), world.patient, template_key="integration", dosing_appointment=other
        )


def test_clinic_templates_are_offered(world: Any, clock_frozen: Any) -> None:
    actor = therapist(world)
    row = services.template_create(
        actor, title="Couples check-in", section_labels=["Each partner", "", "Plan", "Plan"]
    )
    assert [s["key"] for s in row.sections] == ["each_partner", "plan", "plan_2"]
    note = services.note_create(actor, world.patient, template_key=f"clinic-{row.pk}")
    assert note.kind == "custom" and len(note.sections) == 3
    with pytest.raises(DomainError, match="already has a template"):
        services.template_create(actor, title="couples check-in", section_labels=["x"])


# ---------------------------------------------------------------- views


def test_autosave_then_sign_then_edit_refused_over_http(world: Any, client: Any, clock_frozen: Any) -> None:
    note = services.note_create(therapist(world), world.patient, template_key="soap")
    client.force_login(world.therapist)
    url = reverse("notes:autosave", args=[world.patient.pk, note.pk])
    before = AuditEvent.objects.count()
    r = client.post(url, {"version": note.version, "s_subjective": "Feels calmer"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and "Draft saved" in r.content.decode()
    assert 'id="note-version" value="2"' in r.content.decode()
    assert AuditEvent.objects.count() == before + 1
    stale = client.post(url, {"version": 1, "s_subjective": "old tab"})
    assert stale.status_code == 409 and "Someone else changed" in stale.content.decode()
    r = client.post(
        reverse("notes:sign", args=[world.patient.pk, note.pk]),
        {"version": 2, "s_subjective": "Feels calmer."},
    )
    assert r.status_code == 302
    note.refresh_from_db()
    assert note.is_signed and note.sections[0]["text"] == "Feels calmer."
    r = client.post(url, {"version": note.version, "s_subjective": "sneaky"})
    assert r.status_code == 409 and "can no longer be changed" in r.content.decode()
    r = client.post(
        reverse("notes:edit", args=[world.patient.pk, note.pk]),
        {"version": note.version, "s_subjective": "x"},
    )
    assert r.status_code == 302
    note.refresh_from_db()
    assert note.sections[0]["text"] == "Feels calmer."
    r = client.post(
        reverse("notes:addendum", args=[world.patient.pk, note.pk]), {"text": "Correction: slept 6 h."}
    )
    assert note.addenda.count() == 1


def test_other_therapist_and_other_patient_notes_are_refused(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    note = services.note_create(therapist(world), world.patient, template_key="soap")
    client.force_login(world.therapist_other)
    assert client.get(reverse("notes:detail", args=[world.patient.pk, note.pk])).status_code == 403
    client.force_login(world.prescriber)
    assert client.get(reverse("notes:detail", args=[world.other_patient.pk, note.pk])).status_code == 404


def test_thread_shows_only_shared_journal_entries(
    world: Any, client: Any, clock_frozen: Any, dosing_appt: Any
) -> None:
    from kapclinic.core import clock

    JournalEntry.objects.create(
        patient=world.patient,
        kind="intention",
        appointment=dosing_appt,
        text="To meet my grief gently",
        shared_at=clock.now(),
    )
    JournalEntry.objects.create(
        patient=world.patient, kind="reflection", appointment=dosing_appt, text="PRIVATE reflection"
    )
    JournalEntry.objects.create(
        patient=world.patient, kind="reflection", appointment=dosing_appt, text="Withdrawn one",
        shared_at=None, share_withdrawn_at=clock.now(),
    )  # fmt: skip
    client.force_login(world.therapist)
    body = client.get(reverse("notes:thread", args=[world.patient.pk, dosing_appt.pk])).content.decode()
    assert "To meet my grief gently" in body
    assert "PRIVATE reflection" not in body and "Withdrawn one" not in body


@pytest.mark.parametrize("n", [1, 12])
def test_note_lists_constant_queries(
    n: int, world: Any, client: Any, clock_frozen: Any, django_assert_max_num_queries: Any
) -> None:
    actor = therapist(world)
    for _ in range(n):
        note = services.note_create(actor, world.patient, template_key="soap")
        services.note_sign(actor, note, expected_version=note.version, texts={"plan": "x"})
        services.addendum_add(actor, note, text="more")
    client.force_login(world.therapist)
    with django_assert_max_num_queries(22):
        assert client.get(reverse("notes:patient", args=[world.patient.pk])).status_code == 200
    with django_assert_max_num_queries(16):
        assert client.get(reverse("notes:index") + "?show=all").status_code == 200


def test_chart_panel_lists_the_five_latest_notes_with_links(
    world: Any, client: Any, clock_frozen: Any, django_assert_num_queries: Any
) -> None:
    import datetime as dt

    from django.test import RequestFactory

    from kapclinic.notes.widgets import chart_context

    actor = therapist(world)
    notes = []
    for days in range(7):
        notes.append(
            services.note_create(
                actor,
                world.patient,
                template_key="soap",
                service_date=dt.date(2026, 2, 1) + dt.timedelta(days=days),
            )
        )
    signed = notes[-1]
    signed.sections[0]["text"] = "Seen."
    services.note_sign(
        actor, signed, expected_version=signed.version, texts={s["key"]: s["text"] for s in signed.sections}
    )
    request: Any = RequestFactory().get("/")
    request.user, request.clinic, request.role, request.request_id = (
        world.prescriber,
        world.clinic,
        "prescriber",
        "t",
    )
    with django_assert_num_queries(1):
        rows = chart_context(request, world.patient)["notes"]
    assert [r["url"] for r in rows] == [
        reverse("notes:detail", args=[world.patient.pk, n.pk]) for n in reversed(notes[2:])
    ]
    assert rows[0]["day"] == "7 Feb" and rows[0]["status"] == "Signed" and rows[0]["signed"]
    assert rows[1]["status"] == "Draft" and not rows[1]["signed"]
    client.force_login(world.therapist)
    html = client.get(f"/patients/{world.patient.pk}/").content.decode()
    assert f'<a href="{rows[0]["url"]}">7 Feb {signed.title}</a> <span class="badge ok">Signed</span>' in html
