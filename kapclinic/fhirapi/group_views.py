"""The clinic admin's patient-group pages, next to the connected apps (docs/fhir-api.md#groups): list,
create, edit the name and members, deactivate. Every answer that shows patients writes one audit event;
the writes are the services' (kapclinic/fhirapi/groups.py).

The member picker works without JavaScript: "Find" and the page buttons post the form back, which is
shown again with what was typed and ticked (nothing saved); htmx swaps only the picker when present."""

from __future__ import annotations

from typing import Any

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from kapclinic.audit.services import record_event
from kapclinic.core.actor import Actor
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.core.params import IdField, param
from kapclinic.fhirapi import groups
from kapclinic.fhirapi.forms import GroupForm, IdListField, PickerForm
from kapclinic.fhirapi.models import PatientGroup
from kapclinic.patients.selectors import patient_list
from kapclinic.policy import ClinicAction, require_clinic


@login_required
def group_list(request: HttpRequest) -> HttpResponse:
    actor = require_clinic(request, ClinicAction.MANAGE_CLINIC)
    found = list(groups.clinic_groups(actor))
    record_event(actor, "list", object_type="fhirapi.patientgroup", detail=f"n={len(found)}")
    return render(request, "fhirapi/groups.html", {"groups": found})


@login_required
def group_create(request: HttpRequest) -> HttpResponse:
    actor = require_clinic(request, ClinicAction.MANAGE_CLINIC)
    return _group_page(request, actor, None)


@login_required
def group_edit(request: HttpRequest, group_id: int) -> HttpResponse:
    actor = require_clinic(request, ClinicAction.MANAGE_CLINIC)
    group = groups.group_for(actor, group_id)
    if group is None:
        raise Http404("No such group in this clinic.")
    return _group_page(request, actor, group)


@login_required
@require_POST
def group_deactivate(request: HttpRequest, group_id: int) -> HttpResponse:
    actor = require_clinic(request, ClinicAction.MANAGE_CLINIC)
    group = groups.group_for(actor, group_id)
    if group is None:
        raise Http404("No such group in this clinic.")
    version = param(request.POST, "version", IdField(required=False), "version") or group.version
    try:
        groups.group_deactivate(actor, group, expected_version=version)
    except (DomainError, ConflictError) as exc:
        flash.error(request, str(exc))
    else:
        flash.success(request, f"{group.name} is deactivated: apps can no longer read or export it.")
    return redirect("fhirapi:groups")


def _posted_ids(request: HttpRequest) -> list[int]:
    try:
        ids: list[int] = IdListField(required=False).clean(request.POST.getlist("members"))
    except (
        ValidationError
    ):  # a forged value: nothing is shown as chosen (the save refuses it with a sentence)
        return []
    return ids


def _group_page(request: HttpRequest, actor: Actor, group: PatientGroup | None) -> HttpResponse:
    posted = request.method == "POST"
    action = request.POST.get("action", "save") if posted else ""
    status = 200
    if group is not None and not group.active:
        posted = False  # a deactivated group is shown, never changed
    if posted and action == "save":
        form = GroupForm(request.POST)
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                if group is None:
                    saved = groups.group_create(
                        actor, name=data["name"], description=data["description"], member_ids=data["members"]
                    )
                else:
                    saved = groups.group_update(
                        actor,
                        group,
                        name=data["name"],
                        description=data["description"],
                        member_ids=data["members"],
                        expected_version=data["version"] or group.version,
                    )
            except DomainError as exc:
                exc.add_to_form(form)
            except ConflictError as exc:
                form.add_error(None, str(exc))
                status = 409
            else:
                flash.success(request, f"Group {saved.name} saved with {saved.members.count()} patients.")
                return redirect("fhirapi:groups")
        chosen_ids = _posted_ids(request)
    elif posted:  # "Find" or a page button: the same form again, nothing saved, no errors yet
        form = GroupForm(
            initial={
                "name": request.POST.get("name", "")[:120],
                "description": request.POST.get("description", "")[:500],
                "version": request.POST.get("version", ""),
            }
        )
        chosen_ids = _posted_ids(request)
    else:
        initial: dict[str, Any] = {}
        chosen_ids = []
        if group is not None:
            initial = {"name": group.name, "description": group.description, "version": group.version}
            chosen_ids = list(group.members.values_list("pk", flat=True))
        form = GroupForm(initial=initial)

    picker = PickerForm(request.POST if posted else request.GET)
    query, number = "", 1
    if picker.is_valid():
        query, number = picker.cleaned_data["q"] or "", picker.cleaned_data["page"] or 1
    elif status == 200:
        status = 400
    if posted and action.startswith("page-") and action[5:].isascii() and action[5:].isdigit():
        number = min(int(action[5:]), 100_000)
    page = groups.picker_page(actor, query, number)
    chosen = list(patient_list(actor).filter(pk__in=chosen_ids[: groups.MAX_MEMBERS])) if chosen_ids else []
    chosen_set = {p.pk for p in chosen}
    record_event(
        actor,
        "list",
        object_type="fhirapi.patientgroup",
        object_id=group.pk if group is not None else "",
        detail=f"form chosen={len(chosen)} shown={len(page.object_list)}",
    )
    context = {
        "form": form,
        "picker": picker,
        "group": group,
        "chosen": chosen,
        "page": page,
        "results": [p for p in page.object_list if p.pk not in chosen_set],
        "query": query,
    }
    return render(request, "fhirapi/group_form.html", context, status=status)
