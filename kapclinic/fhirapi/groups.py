"""Groups of patients a clinic admin defines (docs/fhir-api.md#groups): the reads of the management page
and the writes, each audited (`fhir_group.create`, `fhir_group.update`, `fhir_group.deactivate`) with
member counts, never the members' names.

A Group holds patients of its own clinic only; a name is used once per clinic (case-insensitive); edits
are optimistic (`expected_version`). Deactivated Groups are kept, no longer served by the FHIR API."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.paginator import Page, Paginator
from django.db import transaction
from django.db.models import Count, Q, QuerySet

from kapclinic.audit.services import field_changes, record_event
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.concurrency import save_versioned
from kapclinic.core.errors import DomainError
from kapclinic.fhirapi.models import PatientGroup
from kapclinic.patients.models import Patient
from kapclinic.patients.selectors import patient_list
from kapclinic.policy import ClinicAction, clinic_can

GROUP_FIELDS = ("name", "description")
PICKER_PAGE = 20  # patients per page of the member search
MAX_MEMBERS = 5000  # members one form may send (a bigger Group: several edits)


def clinic_groups(actor: Actor) -> QuerySet[PatientGroup]:
    """The clinic's Groups, active first, each with its member count (one query)."""
    return (
        PatientGroup.objects.filter(clinic=actor.clinic)
        .annotate(member_count=Count("members"))
        .order_by("-active", "name", "pk")
    )


def group_for(actor: Actor, group_id: int) -> PatientGroup | None:
    return PatientGroup.objects.filter(clinic=actor.clinic, pk=group_id).first()


def picker_page(actor: Actor, query: str, number: Any) -> Page[Patient]:
    """One page of the patients the admin may see matching `query` (name prefix or record number)."""
    return Paginator(patient_list(actor, query=query[:60]), PICKER_PAGE).get_page(number)


def chosen_patients(actor: Actor, member_ids: Iterable[int]) -> list[Patient]:
    """The patients of these ids, in name order, if every one is a patient the admin may see in this
    clinic; DomainError (on the field `members`) otherwise."""
    ids = sorted(set(member_ids))
    if len(ids) > MAX_MEMBERS:
        raise DomainError(
            field_errors={"members": [f"A Group takes at most {MAX_MEMBERS} patients at once."]}
        )
    found = list(patient_list(actor).filter(pk__in=ids)) if ids else []
    if len(found) != len(ids):
        raise DomainError(field_errors={"members": ["A chosen patient is not a patient of this clinic."]})
    return found


def _check(actor: Actor, name: str, group: PatientGroup | None = None) -> str:
    if not clinic_can(actor, ClinicAction.MANAGE_CLINIC):
        raise DomainError("Only a clinic admin can manage patient groups.")
    name = name.strip()
    if not name:
        raise DomainError(field_errors={"name": ["Give the group a name."]})
    taken = PatientGroup.objects.filter(clinic=actor.clinic, name__iexact=name)
    if group is not None:
        taken = taken.exclude(pk=group.pk)
    if taken.exists():
        raise DomainError(field_errors={"name": ["This clinic already has a group with this name."]})
    return name


@transaction.atomic
def group_create(actor: Actor, *, name: str, description: str, member_ids: Iterable[int]) -> PatientGroup:
    name = _check(actor, name)
    members = chosen_patients(actor, member_ids)
    assert actor.clinic is not None  # clinic_can said so
    group = PatientGroup.objects.create(
        clinic=actor.clinic, name=name, description=description.strip(), created_by=actor.user
    )
    group.members.set(members)
    record_event(actor, "create", obj=group, name="fhir_group.create", data={"members": len(members)})
    return group


@transaction.atomic
def group_update(
    actor: Actor,
    group: PatientGroup,
    *,
    name: str,
    description: str,
    member_ids: Iterable[int],
    expected_version: int,
) -> PatientGroup:
    """Rename, describe and set the members (the whole list the form sent) of an active Group."""
    if not group.active:
        raise DomainError("This group was deactivated; it cannot be changed.")
    name = _check(actor, name, group)
    members = chosen_patients(actor, member_ids)
    before = {f: getattr(group, f) for f in GROUP_FIELDS}
    old = set(group.members.values_list("pk", flat=True))
    new = {p.pk for p in members}
    group.name, group.description, group.updated_at = name, description.strip(), clock.now()
    save_versioned(group, expected_version, [*GROUP_FIELDS, "updated_at"])
    group.members.set(members)
    record_event(
        actor,
        "update",
        obj=group,
        name="fhir_group.update",
        data={
            "changes": field_changes(
                before, {f: getattr(group, f) for f in GROUP_FIELDS}, secret=["description"]
            ),
            "members": len(new),
            "added": len(new - old),
            "removed": len(old - new),
        },
    )
    return group


@transaction.atomic
def group_deactivate(actor: Actor, group: PatientGroup, *, expected_version: int) -> PatientGroup:
    """No longer served by the API (read and search 404, `$export` refused); kept for the audit trail."""
    if not clinic_can(actor, ClinicAction.MANAGE_CLINIC):
        raise DomainError("Only a clinic admin can manage patient groups.")
    if not group.active:
        raise DomainError("This group is already deactivated.")
    group.active, group.updated_at = False, clock.now()
    save_versioned(group, expected_version, ["active", "updated_at"])
    record_event(
        actor,
        "update",
        obj=group,
        name="fhir_group.deactivate",
        data={"changes": {"active": {"old": True, "new": False}}, "members": group.members.count()},
    )
    return group


def served(clinic: Any) -> Q:
    """The Groups the FHIR API serves for a clinic: its active ones."""
    return Q(clinic=clinic, active=True)
