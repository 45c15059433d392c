"""Patient groups a clinic admin defines (docs/fhir-api.md#groups): the services (one clinic, unique
names, optimistic edits, audited with counts), the pages (bad input re-rendered, nothing changed), the FHIR
Group `ag<id>` (read, search, who may) and `Group/ag<id>/$export` (only the members)."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from oauth2_provider.models import AccessToken

from kapclinic.audit.models import AuditEvent
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.fhirapi import groups
from kapclinic.fhirapi.models import ExportJob, PatientGroup
from kapclinic.fhirapi.resources import PARTS, part_for_id
from kapclinic.fhirapi.tests.helpers import body, phq9, register_app, register_backend
from kapclinic.testing.factories import actor_for, make_patient

ASYNC = {"HTTP_PREFER": "respond-async", "HTTP_ACCEPT": "application/fhir+json"}


@pytest.fixture(autouse=True)
def _export_dir(settings: Any, tmp_path: Any) -> None:
    settings.FHIR_EXPORT_DIR = tmp_path / "exports"


def _admin(world: Any) -> Actor:
    return actor_for(world.admin, world.clinic)


def _token(app: Any, user: Any, scope: str) -> dict[str, str]:
    raw = secrets.token_urlsafe(24)
    AccessToken.objects.create(
        application=app, user=user, token=raw, scope=scope, expires=clock.now() + dt.timedelta(hours=1)
    )
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def _system(world: Any, clinic: Any = None) -> dict[str, str]:
    registered, _ = register_backend(world, clinic=clinic)
    return _token(registered.application, None, "system/*.rs")


def _group(world: Any, name: str = "Trial cohort", members: tuple[Any, ...] = ()) -> PatientGroup:
    chosen = members or (world.patient,)
    return groups.group_create(_admin(world), name=name, description="", member_ids=[p.pk for p in chosen])


# --- services -------------------------------------------------------------------------------------------


def test_create_update_deactivate_are_audited_with_counts(world: Any) -> None:
    group = groups.group_create(
        _admin(world), name="  Trial cohort ", description="Phase 2", member_ids=[world.patient.pk]
    )
    assert group.name == "Trial cohort" and list(group.members.all()) == [world.patient]
    created = AuditEvent.objects.get(name="fhir_group.create")
    assert created.data == {"members": 1} and created.object_id == str(group.pk)

    groups.group_update(
        _admin(world), group, name="Cohort A", description="Phase 3",
        member_ids=[world.other_patient.pk], expected_version=1,
    )  # fmt: skip
    group.refresh_from_db()
    assert group.version == 2 and list(group.members.all()) == [world.other_patient]
    updated = AuditEvent.objects.get(name="fhir_group.update")
    assert updated.data["members"] == 1 and updated.data["added"] == 1 and updated.data["removed"] == 1
    assert updated.data["changes"]["name"] == {"old": "Trial cohort", "new": "Cohort A"}
    assert updated.data["changes"]["description"] == {"changed": True}  # free text: never its value

    groups.group_deactivate(_admin(world), group, expected_version=2)
    group.refresh_from_db()
    assert group.active is False
    assert AuditEvent.objects.get(name="fhir_group.deactivate").data["members"] == 1
    with pytest.raises(DomainError):
        groups.group_update(_admin(world), group, name="X", description="", member_ids=[], expected_version=3)


def test_refusals_change_nothing(world: Any) -> None:
    _group(world)
    before = (PatientGroup.objects.count(), AuditEvent.objects.filter(name__startswith="fhir_group").count())
    for kwargs in (
        {"name": "   ", "member_ids": []},
        {"name": "trial COHORT", "member_ids": []},  # the same name, another case
        {"name": "Other", "member_ids": [world.other_clinic_patient.pk]},
        {"name": "Other", "member_ids": [world.patient.pk, 10**12]},
    ):
        with pytest.raises(DomainError):
            groups.group_create(_admin(world), description="", **kwargs)
    with pytest.raises(DomainError):  # not an admin
        groups.group_create(
            actor_for(world.prescriber, world.clinic), name="Rx", description="", member_ids=[]
        )
    after = (PatientGroup.objects.count(), AuditEvent.objects.filter(name__startswith="fhir_group").count())
    assert after == before


def test_a_stale_version_is_a_conflict(world: Any) -> None:
    group = _group(world)
    groups.group_update(_admin(world), group, name="A", description="", member_ids=[], expected_version=1)
    stale = PatientGroup.objects.get(pk=group.pk)
    with pytest.raises(ConflictError):
        groups.group_update(_admin(world), stale, name="B", description="", member_ids=[], expected_version=1)
    assert PatientGroup.objects.get(pk=group.pk).name == "A"


def test_ids_do_not_collide_with_the_clinic_group() -> None:
    assert [s.prefix for s in PARTS["Group"]] == ["g", "ag"]
    assert part_for_id("Group", "ag12") is PARTS["Group"][1]
    assert part_for_id("Group", "g12") is PARTS["Group"][0]
    assert part_for_id("Group", "gag1") is None and part_for_id("Group", "ag") is None


# --- pages -----------------------------------------------------------------------------------------------


def test_admin_creates_a_group_on_the_page(world: Any, client: Any) -> None:
    client.force_login(world.admin)
    listed = client.get("/fhir/auth/groups/")
    assert listed.status_code == 200 and b"No group yet" in listed.content
    form = client.get("/fhir/auth/groups/new")
    assert form.status_code == 200
    assert f'value="{world.patient.pk}"'.encode() in form.content  # the picker lists the clinic's patients
    assert f'value="{world.other_clinic_patient.pk}"'.encode() not in form.content
    # "Find" narrows the picker and keeps what was typed and ticked; nothing is saved
    wanted = {"name": "Cohort", "members": [world.patient.pk], "q": world.other_patient.mrn, "action": "find"}
    found = client.post("/fhir/auth/groups/new", wanted)
    assert found.status_code == 200 and PatientGroup.objects.count() == 0
    text = found.content.decode()
    assert (
        'value="Cohort"' in text
        and f'value="{world.patient.pk}" id="member-{world.patient.pk}" checked' in text
    )
    assert f'value="{world.other_patient.pk}"' in text
    saved = client.post(
        "/fhir/auth/groups/new",
        {"name": "Cohort", "description": "", "members": [world.patient.pk, world.other_patient.pk],
         "action": "save"},
    )  # fmt: skip
    assert saved.status_code == 302 and saved["Location"] == "/fhir/auth/groups/"
    group = PatientGroup.objects.get()
    assert set(group.members.values_list("pk", flat=True)) == {world.patient.pk, world.other_patient.pk}
    listed = client.get("/fhir/auth/groups/")
    assert b"Cohort" in listed.content and f"ag{group.pk}".encode() in listed.content


@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": ""}, "Give the group a name."),
        ({"name": "Taken"}, "already has a group with this name"),
        ({"name": "New", "members": ["other_clinic"]}, "not a patient of this clinic"),
        ({"name": "New", "members": ["abc"]}, "Choose patients from the list."),
    ],
)
def test_bad_input_is_re_rendered_and_changes_nothing(
    world: Any, client: Any, data: dict[str, Any], message: str
) -> None:
    _group(world, name="Taken")
    members = [world.other_clinic_patient.pk if m == "other_clinic" else m for m in data.get("members", [])]
    client.force_login(world.admin)
    before = (PatientGroup.objects.count(), AuditEvent.objects.filter(name__startswith="fhir_group").count())
    response = client.post("/fhir/auth/groups/new", {**data, "members": members, "action": "save"})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'role="alert"' in response.content.decode() or "errorlist" in response.content.decode()
    after = (PatientGroup.objects.count(), AuditEvent.objects.filter(name__startswith="fhir_group").count())
    assert after == before


def test_edit_membership_and_deactivate_on_the_pages(world: Any, client: Any) -> None:
    group = _group(world)
    client.force_login(world.admin)
    page = client.get(f"/fhir/auth/groups/{group.pk}/")
    assert page.status_code == 200 and b"checked" in page.content
    stale = client.post(f"/fhir/auth/groups/{group.pk}/", {"name": "X", "version": 7, "action": "save"})
    assert stale.status_code == 409 and PatientGroup.objects.get(pk=group.pk).name == "Trial cohort"
    edit = {"name": "Trial cohort", "version": 1, "members": [world.other_patient.pk], "action": "save"}
    saved = client.post(f"/fhir/auth/groups/{group.pk}/", edit)
    assert saved.status_code == 302
    assert list(PatientGroup.objects.get(pk=group.pk).members.all()) == [world.other_patient]
    gone = client.post(f"/fhir/auth/groups/{group.pk}/deactivate", {"version": 2})
    assert gone.status_code == 302 and PatientGroup.objects.get(pk=group.pk).active is False
    shown = client.get(f"/fhir/auth/groups/{group.pk}/")
    assert b"deactivated" in shown.content and b"Save group" not in shown.content


def test_other_clinics_groups_404_and_other_roles_403(world: Any, client: Any) -> None:
    theirs = groups.group_create(
        _other_admin(world),
        name="Theirs", description="", member_ids=[world.other_clinic_patient.pk],
    )  # fmt: skip
    client.force_login(world.admin)
    assert client.get(f"/fhir/auth/groups/{theirs.pk}/").status_code == 404
    assert client.post(f"/fhir/auth/groups/{theirs.pk}/deactivate").status_code == 404
    assert PatientGroup.objects.get(pk=theirs.pk).active is True
    for user in (world.prescriber, world.nurse, world.front_desk, world.patient_user):
        client.force_login(user)
        assert client.get("/fhir/auth/groups/").status_code == 403
        assert client.post("/fhir/auth/groups/new", {"name": "Nope", "action": "save"}).status_code == 403
    assert not PatientGroup.objects.filter(name="Nope").exists()


def _other_admin(world: Any) -> Actor:
    from kapclinic.testing.factories import make_staff

    return actor_for(make_staff(world.other_clinic, "admin"), world.other_clinic)


# --- FHIR ------------------------------------------------------------------------------------------------


def test_system_client_reads_and_searches_admin_groups(world: Any, client: Any) -> None:
    group = _group(world, members=(world.patient, world.other_patient))
    gone = _group(world, name="Old")
    groups.group_deactivate(_admin(world), gone, expected_version=1)
    theirs = groups.group_create(_other_admin(world), name="Theirs", description="",
                                 member_ids=[world.other_clinic_patient.pk])  # fmt: skip
    auth = _system(world)
    resource = body(client.get(f"/fhir/Group/ag{group.pk}", **auth))
    get_fhir_model_class("Group").model_validate(resource)
    assert resource["id"] == f"ag{group.pk}" and resource["type"] == "person" and resource["actual"] is True
    assert resource["name"] == "Trial cohort" and resource["quantity"] == 2
    assert resource["member"] == [
        {"entity": {"reference": f"Patient/p{pk}"}}
        for pk in sorted([world.patient.pk, world.other_patient.pk])
    ]
    assert resource["managingEntity"] == {"reference": f"Organization/org{world.clinic.pk}"}
    assert AuditEvent.objects.filter(
        action="view", object_type="fhir:Group", object_id=f"ag{group.pk}"
    ).exists()
    assert client.get(f"/fhir/Group/ag{gone.pk}", **auth).status_code == 404  # deactivated: not served
    assert client.get(f"/fhir/Group/ag{theirs.pk}", **auth).status_code == 404  # another clinic's

    def ids(query: str = "") -> set[str]:
        return {e["resource"]["id"] for e in body(client.get(f"/fhir/Group{query}", **auth)).get("entry", [])}

    assert ids() == {f"g{world.clinic.pk}", f"ag{group.pk}"}
    assert ids(f"?_id=ag{group.pk}") == {f"ag{group.pk}"}
    assert ids(f"?_id=g{world.clinic.pk},ag{group.pk}") == {f"g{world.clinic.pk}", f"ag{group.pk}"}
    assert ids(f"?_id=ag{theirs.pk}") == set()
    assert ids("?_lastUpdated=lt2000-01-01") == set()
    sorted_ids = [
        e["resource"]["id"]
        for e in body(client.get("/fhir/Group?_sort=-_lastUpdated&_count=1", **auth))["entry"]
    ]
    assert len(sorted_ids) == 1
    assert client.get("/fhir/Group?_id=x1", **auth).status_code == 400


def test_group_members_follow_edits(world: Any, client: Any) -> None:
    group = _group(world)
    auth = _system(world)
    assert body(client.get(f"/fhir/Group/ag{group.pk}", **auth))["quantity"] == 1
    groups.group_update(
        _admin(world), group, name=group.name, description="", member_ids=[], expected_version=1
    )
    emptied = body(client.get(f"/fhir/Group/ag{group.pk}", **auth))
    assert emptied["quantity"] == 0 and "member" not in emptied


def test_admin_groups_by_role(world: Any, client: Any) -> None:
    group = _group(world)
    app = register_app(world)
    assert (
        client.get(
            f"/fhir/Group/ag{group.pk}", **_token(app.application, world.admin, "user/*.rs")
        ).status_code
        == 200
    )
    for user, scope in ((world.prescriber, "user/*.rs"), (world.front_desk, "user/*.rs"),
                        (world.patient_user, "patient/*.rs")):  # fmt: skip
        answer = client.get(f"/fhir/Group/ag{group.pk}", **_token(app.application, user, scope))
        assert answer.status_code == 403 and body(answer)["resourceType"] == "OperationOutcome"
    other = _system(world, clinic=world.other_clinic)
    assert client.get(f"/fhir/Group/ag{group.pk}", **other).status_code == 404


def test_export_of_an_admin_group_writes_only_its_members(
    world: Any, client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    phq9(world)
    phq9(world, patient=world.other_patient)
    outsider = make_patient(world.clinic)
    group = _group(world)  # world.patient only
    auth = _system(world)
    with django_capture_on_commit_callbacks(execute=True):
        kick = client.get(f"/fhir/Group/ag{group.pk}/$export", **ASYNC, **auth)
    assert kick.status_code == 202
    job = ExportJob.objects.get()
    assert job.group == group
    assert f"group=ag{group.pk}" in AuditEvent.objects.get(action="export", object_id=str(job.pk)).detail
    manifest = client.get("/" + kick["Content-Location"].split("://", 1)[1].split("/", 1)[1], **auth).json()
    seen: dict[str, set[str]] = {}
    for output in manifest["output"]:
        path = "/" + output["url"].split("://", 1)[1].split("/", 1)[1]
        lines = b"".join(client.get(path, **auth).streaming_content).decode().splitlines()
        for line in lines:
            resource = json.loads(line)
            subject = resource.get("subject", resource.get("patient", {})).get("reference", "")
            seen.setdefault(resource["resourceType"], set()).add(
                resource["id"] if resource["resourceType"] == "Patient" else subject
            )
    assert seen["Patient"] == {f"p{world.patient.pk}"}
    assert seen["Observation"] == {f"Patient/p{world.patient.pk}"}
    assert f"p{outsider.pk}" not in seen["Patient"]


def test_export_of_a_deactivated_or_foreign_group_is_404(world: Any, client: Any) -> None:
    group = _group(world)
    groups.group_deactivate(_admin(world), group, expected_version=1)
    theirs = groups.group_create(_other_admin(world), name="Theirs", description="",
                                 member_ids=[world.other_clinic_patient.pk])  # fmt: skip
    auth = _system(world)
    for group_id in (
        f"ag{group.pk}",
        f"ag{theirs.pk}",
        "ag99999999",
        "ag",
        "agx",
        f"g{world.other_clinic.pk}",
    ):
        answer = client.get(f"/fhir/Group/{group_id}/$export", **ASYNC, **auth)
        assert answer.status_code == 404, group_id
    assert not ExportJob.objects.exists()


def test_group_search_runs_a_constant_number_of_queries(world: Any, client: Any) -> None:
    auth = _system(world)
    _group(world, name="G0", members=(world.patient, world.other_patient))
    client.get("/fhir/Group", **auth)  # warm the token's caches
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        assert body(client.get("/fhir/Group", **auth))["total"] == 2
    for n in range(1, 21):
        _group(world, name=f"G{n}", members=(world.patient, world.other_patient))
    with CaptureQueriesContext(connection) as many:
        found = body(client.get("/fhir/Group", **auth))
    assert found["total"] == 22 and all(e["resource"].get("quantity") for e in found["entry"])
    assert len(many) == len(few), (len(few), len(many))
