from __future__ import annotations

from typing import Any

import pytest

from kapclinic.audit.models import AuditEvent
from kapclinic.core.concurrency import ConflictError
from kapclinic.patients import services
from kapclinic.patients.models import Patient, TimelineEvent
from kapclinic.testing.factories import actor_for, make_patient


def _data(patient: Patient, **changes: Any) -> dict[str, Any]:
    data = {
        "legal_first_name": patient.legal_first_name,
        "legal_last_name": patient.legal_last_name,
        "date_of_birth": patient.date_of_birth.isoformat(),
        "sex_at_birth": patient.sex_at_birth,
        "pathway_status": patient.pathway_status,
        "version": patient.version,
    }
    data.update(changes)
    return data


def test_second_concurrent_save_is_refused_not_overwritten(world: Any, client: Any) -> None:
    client.force_login(world.front_desk)
    stale = _data(world.patient)
    first = client.post(f"/patients/{world.patient.pk}/edit/", {**stale, "phone": "111"})
    assert first.status_code == 302
    second = client.post(f"/patients/{world.patient.pk}/edit/", {**stale, "phone": "222"})
    assert second.status_code == 409
    assert "Someone else changed this record" in second.content.decode()
    world.patient.refresh_from_db()
    assert world.patient.phone == "111" and world.patient.version == 2


def test_a_refused_conflicting_save_leaves_one_audit_event_without_values(world: Any, client: Any) -> None:
    client.force_login(world.front_desk)
    stale = _data(world.patient)
    assert client.post(f"/patients/{world.patient.pk}/edit/", {**stale, "phone": "111"}).status_code == 302
    before = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    second = client.post(f"/patients/{world.patient.pk}/edit/", {**stale, "phone": "555 0199"})
    assert second.status_code == 409
    events = list(AuditEvent.objects.filter(pk__gt=before))
    assert [(e.action, e.name, e.patient_id, e.actor_id, e.object_id) for e in events] == [
        ("view", "patient.update_conflict", world.patient.pk, world.front_desk.pk, str(world.patient.pk))
    ]
    assert events[0].data == {"expected_version": 1, "version": 2}  # versions only: no field values
    assert "555" not in f"{events[0].data}{events[0].detail}"


def test_service_level_conflict(world: Any) -> None:
    actor = actor_for(world.front_desk, world.clinic)
    copy_a = Patient.objects.get(pk=world.patient.pk)
    copy_b = Patient.objects.get(pk=world.patient.pk)
    services.patient_update_demographics(actor, copy_a, expected_version=1, changes={"pronouns": "they/them"})
    with pytest.raises(ConflictError):
        services.patient_update_demographics(
            actor, copy_b, expected_version=1, changes={"pronouns": "she/her"}
        )
    assert Patient.objects.get(pk=world.patient.pk).pronouns == "they/them"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("date_of_birth", "2099-01-01", "cannot be in the future"),
        ("date_of_birth", "1800-01-01", "more than 120 years ago"),
        ("date_of_birth", "not-a-date", "Enter a valid date"),
        ("email", "nope", "Enter a valid email address"),
        ("legal_last_name", "", "This field is required"),
    ],
)
def test_bad_input_rerenders_with_a_message_and_saves_nothing(
    world: Any, client: Any, field: str, value: str, message: str
) -> None:
    client.force_login(world.front_desk)
    response = client.post(f"/patients/{world.patient.pk}/edit/", _data(world.patient, **{field: value}))
    assert response.status_code == 400
    assert message in response.content.decode()
    fresh = Patient.objects.get(pk=world.patient.pk)
    assert fresh.version == 1 and getattr(fresh, field) == getattr(world.patient, field)


def test_front_desk_chart_hides_clinical_content(world: Any, client: Any) -> None:
    services.diagnosis_add(
        actor_for(world.prescriber, world.clinic),
        world.patient,
        icd10="F41.1",
        snomed="21897009",
        description="Generalized anxiety disorder",
    )
    client.force_login(world.front_desk)
    html = client.get(f"/patients/{world.patient.pk}/").content.decode()
    assert "F41.1" not in html and "Diagnosis recorded" not in html
    client.force_login(world.therapist)
    html = client.get(f"/patients/{world.patient.pk}/").content.decode()
    assert "F41.1" in html and "Diagnosis recorded" in html


def test_therapist_list_is_the_caseload(world: Any, client: Any) -> None:
    client.force_login(world.therapist)
    names = [p.pk for p in client.get("/patients/").context["page"]]
    assert names == [world.patient.pk]


def test_patient_list_query_count_constant(
    world: Any, client: Any, django_assert_max_num_queries: Any
) -> None:
    client.force_login(world.prescriber)
    client.get("/patients/")  # warm the session (MFA enrolment flag, last-seen time)
    with django_assert_max_num_queries(12):
        response = client.get("/patients/")
    assert len(response.context["page"].object_list) == 2
    for _ in range(60):
        make_patient(world.clinic)
    with django_assert_max_num_queries(12):
        response = client.get("/patients/")
    assert len(response.context["page"].object_list) == 50


def test_chart_and_timeline_query_count_constant(world: Any, client: Any) -> None:
    """The chart costs the same number of queries with 1 or 80 timeline events (panels included)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(world.prescriber)
    client.get(f"/patients/{world.patient.pk}/")  # warm the session
    services.add_timeline_event(world.patient, kind="test", title="First")
    with CaptureQueriesContext(connection) as small:
        client.get(f"/patients/{world.patient.pk}/")
    actor = actor_for(world.nurse, world.clinic)
    for i in range(80):
        services.add_timeline_event(world.patient, kind="test", title=f"Event {i}", actor=actor)
    with CaptureQueriesContext(connection) as large:
        response = client.get(f"/patients/{world.patient.pk}/")
    assert len(large) == len(small) <= 50
    assert len(response.context["events"]) == 25
    cursor = response.context["cursor"]
    with CaptureQueriesContext(connection) as more_q:
        more = client.get(
            f"/patients/{world.patient.pk}/timeline/", {"at": cursor[0].isoformat(), "id": cursor[1]}
        )
    assert more.status_code == 200 and len(more.context["events"]) == 25
    assert len(more_q) <= 15


def test_timeline_keyset_pages_cover_every_event_once(world: Any) -> None:
    from kapclinic.patients.selectors import timeline_page

    for i in range(60):
        services.add_timeline_event(world.patient, kind="t", title=f"E{i}")
    seen: list[int] = []
    cursor = None
    while True:
        rows, cursor = timeline_page(world.patient, clinical=True, before=cursor)
        seen += [r.pk for r in rows]
        if cursor is None:
            break
    assert sorted(seen) == sorted(
        TimelineEvent.objects.filter(patient=world.patient).values_list("pk", flat=True)
    )
    assert len(seen) == len(set(seen))


def test_bad_timeline_cursor_is_a_400(world: Any, client: Any) -> None:
    client.force_login(world.prescriber)
    assert (
        client.get(f"/patients/{world.patient.pk}/timeline/", {"at": "yesterday", "id": "1"}).status_code
        == 400
    )


def test_care_team_management(world: Any, client: Any) -> None:
    client.force_login(world.front_desk)
    response = client.post(f"/patients/{world.patient.pk}/care-team/", {"user": world.therapist_other.pk})
    assert response.status_code == 302
    client.force_login(world.therapist_other)
    assert client.get(f"/patients/{world.patient.pk}/").status_code == 200


def test_medication_classes_flag_interactions(world: Any, client: Any) -> None:
    client.force_login(world.prescriber)
    client.post(
        f"/patients/{world.patient.pk}/medications/add/",
        {"name": "Lorazepam", "dose": "1 mg", "drug_class": "benzodiazepine"},
    )
    html = client.get(f"/patients/{world.patient.pk}/").content.decode()
    assert "Lorazepam" in html and 'class="badge warn">Benzodiazepine' in html


def test_dashboard_caseload_widget(world: Any, client: Any, django_assert_max_num_queries: Any) -> None:
    client.force_login(world.therapist)
    client.get("/home/")  # the caseload census is counted once, then reused
    with django_assert_max_num_queries(15):  # 14 + the waiting-messages widget (issue 17, one query)
        response = client.get("/home/")
    html = response.content.decode()
    p = world.patient
    # Each row: the chart link, the display name and the stage label, as the template tags gave them.
    row = (
        f'<li><a href="/patients/{p.pk}/">{p.display_name}</a> '
        f'<span class="badge">{p.get_pathway_status_display()}</span></li>'
    )
    assert row in html
    assert "Inquiry: " in html and ' · Discharged: 0 <span class="help">(counted ' in html


def test_caseload_census_is_reused_and_forgotten_when_it_changes(
    world: Any, django_capture_on_commit_callbacks: Any, django_assert_num_queries: Any
) -> None:
    from kapclinic.patients.selectors import caseload_counts
    from kapclinic.patients.services import care_team_add, patient_update_demographics
    from kapclinic.testing.factories import actor_for

    clinic, user = world.clinic.pk, world.therapist.pk
    first = caseload_counts(clinic, user)
    assert first["total"] == 1 and first["assessment"] + first["active"] + first["inquiry"] >= 0
    with django_assert_num_queries(0):
        assert caseload_counts(clinic, user) == first  # reused: the home page no longer counts

    # A stage change through the service forgets the census of the patient's care team, after commit.
    patient = world.patient
    new_status = "maintenance" if patient.pathway_status != "maintenance" else "active"
    with django_capture_on_commit_callbacks(execute=True):
        patient_update_demographics(
            actor_for(world.prescriber, world.clinic),
            patient,
            expected_version=patient.version,
            changes={"pathway_status": new_status},
        )
    assert caseload_counts(clinic, user)[new_status] == first[new_status] + 1

    # Joining a care team counts the new member's caseload afresh.
    other = world.other_patient
    before = caseload_counts(clinic, user)["total"]
    with django_capture_on_commit_callbacks(execute=True):
        care_team_add(
            actor_for(world.prescriber, world.clinic), other, user=world.therapist, role="therapist"
        )
    assert caseload_counts(clinic, user)["total"] == before + 1


def test_portal_invitation(world: Any, client: Any, django_capture_on_commit_callbacks: Any) -> None:
    from django.core import mail

    patient = make_patient(world.clinic, email="new.person@example.test")
    client.force_login(world.front_desk)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/patients/{patient.pk}/portal-invite/")
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.user is not None and patient.user.email == "new.person@example.test"
    assert not patient.user.has_usable_password()
    assert len(mail.outbox) == 1 and "/account/password-reset/" in mail.outbox[0].body
    # A second invitation is refused with a sentence and creates nothing.
    response = client.post(f"/patients/{patient.pk}/portal-invite/", follow=True)
    assert "already has a portal account" in response.content.decode()


def test_portal_invitation_needs_a_unique_email(world: Any, client: Any) -> None:
    patient = make_patient(world.clinic, email=world.nurse.email)
    client.force_login(world.front_desk)
    response = client.post(f"/patients/{patient.pk}/portal-invite/", follow=True)
    assert "Another account already uses this email" in response.content.decode()
    patient.refresh_from_db()
    assert patient.user is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [("syn", True), ("SYNTH", True), ("pat", True), ("Synthetic", True), ("ynth", False), ("zz", False)],
)
def test_name_search_is_a_case_insensitive_prefix(
    world: Any, client: Any, query: str, expected: bool
) -> None:
    client.force_login(world.prescriber)
    found = [p.pk for p in client.get("/patients/", {"q": query}).context["page"]]
    assert (world.patient.pk in found) is expected


def test_search_by_record_number_and_preferred_name(world: Any, client: Any) -> None:
    Patient.objects.filter(pk=world.patient.pk).update(preferred_name="Robin")
    client.force_login(world.prescriber)
    assert [p.pk for p in client.get("/patients/", {"q": "rob"}).context["page"]] == [world.patient.pk]
    found = [p.pk for p in client.get("/patients/", {"q": world.patient.mrn.lower()}).context["page"]]
    assert found == [world.patient.pk]


def test_search_uses_an_index(world: Any) -> None:
    """With realistic numbers and statistics, a name search reads index ranges, not the whole clinic."""
    import random

    from django.db import connection

    from kapclinic.patients.selectors import patient_list

    rng = random.Random(7)
    Patient.objects.bulk_create(
        [
            Patient(
                clinic=world.clinic,
                mrn=f"X{i}",
                legal_first_name=f"Given{i}",
                legal_last_name=f"L{rng.randint(0, 9999)}",
                date_of_birth="1980-01-01",
            )
            for i in range(3000)
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    plan = patient_list(actor_for(world.prescriber, world.clinic), query="l12").explain()
    assert "search_last" in plan, plan


def test_timeline_opened_directly_is_a_whole_page_and_htmx_gets_the_fragment(world: Any, client: Any) -> None:
    """Issue 18: the "Show older events" URL opened in a new tab was a bare list fragment without a
    title or a language (axe: document-title, html-has-lang, listitem)."""
    services.add_timeline_event(world.patient, kind="t", title="Consent signed")
    client.force_login(world.prescriber)
    url = f"/patients/{world.patient.pk}/timeline/"
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert '<html lang="en">' in html and "<title>Timeline" in html
    assert '<ul class="timeline" id="timeline">' in html and "Consent signed" in html
    fragment = client.get(url, headers={"HX-Request": "true"})
    body = fragment.content.decode()
    assert "<html" not in body and body.lstrip().startswith("<li>") and "Consent signed" in body
    assert "HX-Request" in page["Vary"]
