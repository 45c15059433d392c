from __future__ import annotations

import functools

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST

from kapclinic.accounts.models import Clinic, Membership, Role
from kapclinic.audit.services import record_event
from kapclinic.clinical.terminology import BY_ICD10, DIAGNOSIS_CODES
from kapclinic.core.actor import Actor, actor_from_request
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.core.params import BadParameter, IdField, id_param, param
from kapclinic.core.registry import chart_panels
from kapclinic.patients import selectors, services
from kapclinic.patients.forms import (
    AllergyForm,
    CareTeamForm,
    DemographicsForm,
    DiagnosisForm,
    MedicationForm,
    NewPatientForm,
)
from kapclinic.patients.models import CareTeamMember, DrugClass, Medication, PathwayStatus, Patient
from kapclinic.policy import (
    ON_READ,
    Action,
    ClinicAction,
    can,
    clinic_can,
    open_patient,
    refuse,
    require_clinic,
)

PAGE_SIZE = 50

#: The columns the patient list shows.
_LIST_FIELDS = (
    "id",
    "legal_first_name",
    "legal_last_name",
    "preferred_name",
    "pronouns",
    "mrn",
    "date_of_birth",
    "pathway_status",
)


@login_required
def patient_list(request: HttpRequest) -> HttpResponse:
    actor = require_clinic(request, ClinicAction.VIEW_PATIENT_LIST)
    query = param(request.GET, "q", forms.CharField(required=False, max_length=100), "search") or ""
    statuses = forms.ChoiceField(choices=PathwayStatus.choices, required=False)
    status = param(request.GET, "status", statuses) or ""
    qs = selectors.patient_list(actor, query=query, status=status).only(*_LIST_FIELDS)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    record_event(
        actor, "list", object_type="patient_list", detail=f"page={page.number} n={len(page.object_list)}"
    )
    return render(
        request,
        "patients/list.html",
        {
            "page": page,
            "rows": [
                selectors.PatientRow(p, reverse("patients:chart", args=[p.pk])) for p in page.object_list
            ],
            "query": query,
            "status": status,
            "statuses": PathwayStatus.choices,
        },
    )


@login_required
def patient_new(request: HttpRequest) -> HttpResponse:
    actor = require_clinic(request, ClinicAction.VIEW_PATIENT_LIST)
    if not clinic_can(actor, ClinicAction.OPEN_RECORD):
        raise refuse(request, "Only the front desk, admins and prescribers open new records.")
    form = NewPatientForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = {k: v for k, v in form.cleaned_data.items() if k != "version"}
        try:
            patient = services.patient_create(actor, **data)
        except DomainError as exc:
            form.add_error(None, str(exc))
            return render(request, "patients/new.html", {"form": form}, status=409)
        messages.success(request, f"Record {patient.mrn} created.")
        return redirect("patients:chart", patient_id=patient.pk)
    return render(request, "patients/new.html", {"form": form})


@functools.cache
def _option_lists() -> dict[str, str]:
    """The chart's fixed <option> lists (diagnosis codes, drug classes): the same for every patient and
    every request, so rendered once per process instead of once per chart."""
    return {
        "dx": render_to_string("patients/_dx_options.html", {"dx_codes": DIAGNOSIS_CODES}),
        "drug_classes": render_to_string(
            "patients/_drug_class_options.html", {"drug_classes": DrugClass.choices}
        ),
    }


@login_required
def chart(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = open_patient(request, patient_id, Action.VIEW_DEMOGRAPHICS)
    actor = actor_from_request(request)
    clinical = can(actor, Action.VIEW_CLINICAL, patient)
    events, cursor = selectors.timeline_page(patient, clinical=clinical)
    panels = []
    for panel in chart_panels():
        if can(actor, Action(panel.action), patient):
            panels.append({"panel": panel, "context": panel.context(request, patient)})
    context = {
        "patient": patient,
        "clinical": clinical,
        **selectors.chart_lists(patient, clinical=clinical),
        "events": events,
        "cursor": cursor,
        "panels": panels,
        "can_edit": (can_edit := can(actor, Action.EDIT_DEMOGRAPHICS, patient)),
        "portal_state": services.portal_state(patient) if can_edit else None,
        "portal_needs_clinician": can_edit
        and patient.email_changed_since_confirmed
        and not clinic_can(actor, ClinicAction.CONFIRM_PORTAL_ADDRESS),
        "can_edit_clinical": can(actor, Action.EDIT_CLINICAL, patient),
        "can_manage_team": can(actor, Action.MANAGE_CARE_TEAM, patient),
        "option_lists": _option_lists() if clinical else None,
    }
    return render(request, "patients/chart.html", context)


@login_required
def timeline(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = open_patient(request, patient_id, Action.VIEW_DEMOGRAPHICS, object_type="timeline")
    clinical = can(actor_from_request(request), Action.VIEW_CLINICAL, patient)
    before = None
    try:
        at = param(request.GET, "at", forms.DateTimeField(required=False), "timeline cursor")
        event_id = id_param(request.GET, "id", "timeline cursor")
    except BadParameter:
        return HttpResponse("The timeline cursor is not valid.", status=400)
    if at is not None and event_id is not None:
        before = (at, event_id)
    events, cursor = selectors.timeline_page(patient, clinical=clinical, before=before)
    # htmx's "Show older events" gets the list items; the same URL opened directly (a bookmark, a new
    # tab) is a whole page with a title and a language, not a bare fragment (issue 18).
    template = "patients/_timeline.html" if getattr(request, "htmx", False) else "patients/timeline.html"
    response = render(
        request,
        template,
        {"patient": patient, "events": events, "cursor": cursor, "clinical": clinical},
    )
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
def edit(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = open_patient(request, patient_id, Action.EDIT_DEMOGRAPHICS, audit=ON_READ)
    form = DemographicsForm(request.POST or None, instance=patient)
    conflict = False
    if request.method == "POST":
        actor = actor_from_request(request)
        if form.is_valid():
            changes = {k: v for k, v in form.cleaned_data.items() if k != "version"}
            fresh = type(patient).objects.get(pk=patient.pk)
            try:
                services.patient_update_demographics(
                    actor, fresh, expected_version=form.cleaned_data["version"], changes=changes
                )
            except ConflictError as exc:
                conflict = True
                form.add_error(None, str(exc))
                # Refused unsaved, the record read again: the request's one event (versions, no values).
                record_event(
                    actor,
                    "view",
                    patient=patient,
                    obj=patient,
                    name="patient.update_conflict",
                    detail="update conflict",
                    data={"expected_version": form.cleaned_data["version"], "version": patient.version},
                )
            else:
                messages.success(request, "Demographics saved.")
                return redirect("patients:chart", patient_id=patient.pk)
        else:
            # Invalid input is still an attempt to change the record: audit it as a view of the form.
            record_event(actor, "view", patient=patient, object_type="demographics_form")
    status = 409 if conflict else (400 if request.method == "POST" else 200)
    return render(request, "patients/edit.html", {"patient": patient, "form": form}, status=status)


def _clinical_post(request: HttpRequest, patient_id: int) -> tuple[Patient, Actor]:
    patient = open_patient(request, patient_id, Action.EDIT_CLINICAL, audit=None)
    return patient, actor_from_request(request)


@login_required
@require_POST
def add_diagnosis(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient, actor = _clinical_post(request, patient_id)
    form = DiagnosisForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a diagnosis code from the list.")
        return redirect("patients:chart", patient_id=patient.pk)
    code = BY_ICD10[form.cleaned_data["code"]]
    services.diagnosis_add(actor, patient, icd10=code.icd10, snomed=code.snomed, description=code.description)
    messages.success(request, f"Diagnosis {code.icd10} recorded.")
    return redirect("patients:chart", patient_id=patient.pk)


@login_required
@require_POST
def add_medication(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient, actor = _clinical_post(request, patient_id)
    form = MedicationForm(request.POST)
    if not form.is_valid():
        messages.error(request, "A medication needs a name and a class.")
        return redirect("patients:chart", patient_id=patient.pk)
    services.medication_add(actor, patient, **form.cleaned_data)
    messages.success(request, "Medication recorded.")
    return redirect("patients:chart", patient_id=patient.pk)


@login_required
@require_POST
def stop_medication(request: HttpRequest, patient_id: int, medication_id: int) -> HttpResponse:
    patient, actor = _clinical_post(request, patient_id)
    med = get_object_or_404(Medication, pk=medication_id, patient=patient)
    if services.medication_stop(actor, patient, med=med):
        messages.success(request, f"{med.name} marked as stopped.")
    else:
        messages.info(request, f"{med.name} was already stopped; nothing was changed.")
    return redirect("patients:chart", patient_id=patient.pk)


@login_required
@require_POST
def add_allergy(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient, actor = _clinical_post(request, patient_id)
    form = AllergyForm(request.POST)
    if not form.is_valid():
        messages.error(request, "An allergy needs the substance.")
        return redirect("patients:chart", patient_id=patient.pk)
    services.allergy_add(actor, patient, **form.cleaned_data)
    messages.success(request, "Allergy recorded.")
    return redirect("patients:chart", patient_id=patient.pk)


def _clinician_choices(clinic: Clinic | None) -> list[tuple[str, str]]:
    members = (
        Membership.objects.filter(
            clinic=clinic, is_active=True, role__in=[Role.PRESCRIBER, Role.THERAPIST, Role.NURSE]
        )
        .select_related("user")
        .order_by("user__full_name")
    )
    return [(str(m.user_id), f"{m.user.full_name} ({m.get_role_display()})") for m in members]


@login_required
def care_team(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = open_patient(
        request,
        patient_id,
        Action.MANAGE_CARE_TEAM,
        audit=ON_READ,
        object_type="care_team",
    )
    actor = actor_from_request(request)
    form = CareTeamForm(request.POST or None, staff=_clinician_choices(actor.clinic))
    if request.method == "POST":
        if "remove" in request.POST:
            member_id = param(request.POST, "remove", IdField(), "care team member")
            member = get_object_or_404(CareTeamMember, pk=member_id, patient=patient)
            services.care_team_remove(actor, patient, member=member)
            messages.success(request, "Removed from the care team.")
            return redirect("patients:care_team", patient_id=patient.pk)
        if form.is_valid():
            membership = Membership.objects.select_related("user").get(
                clinic=actor.clinic, user_id=int(form.cleaned_data["user"])
            )
            services.care_team_add(actor, patient, user=membership.user, role=membership.role)
            messages.success(request, f"{membership.user} added to the care team.")
            return redirect("patients:care_team", patient_id=patient.pk)
        record_event(actor, "view", patient=patient, object_type="care_team")
    members = patient.care_team.select_related("user").order_by("role")
    return render(request, "patients/care_team.html", {"patient": patient, "form": form, "members": members})


@login_required
@require_POST
def portal_invite(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = open_patient(request, patient_id, Action.EDIT_DEMOGRAPHICS, audit=None)
    try:
        services.patient_invite_to_portal(actor_from_request(request), patient)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Portal invitation sent to {patient.email}.")
    return redirect("patients:chart", patient_id=patient.pk)


@login_required
@require_POST
def portal_revoke(request: HttpRequest, patient_id: int) -> HttpResponse:
    """The patient says the invitation or account is not theirs: detach it, so a new one can go out."""
    patient = open_patient(request, patient_id, Action.EDIT_DEMOGRAPHICS, audit=None)
    try:
        services.patient_revoke_portal(actor_from_request(request), patient)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Portal access revoked. You can now send a new invitation.")
    return redirect("patients:chart", patient_id=patient.pk)
