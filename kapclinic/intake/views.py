from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from kapclinic.audit.services import record_event
from kapclinic.clinical.eligibility import load_rule_set
from kapclinic.clinical.eligibility.chart_medications import relevant_digest
from kapclinic.core.actor import actor_from_request
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.core.params import param
from kapclinic.core.request import request_clinic, request_patient
from kapclinic.drafts.services import draft_clear
from kapclinic.intake import selectors, services
from kapclinic.intake.forms import (
    AssessmentForm,
    ConvertForm,
    DecisionForm,
    InteractionClassForm,
    MedicationFormSet,
    QuestionnaireForm,
)
from kapclinic.intake.models import Inquiry, InquiryStatus
from kapclinic.patients.models import Patient
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

PAGE_SIZE = 25


@login_required
def index(request: HttpRequest) -> HttpResponse:
    """The front desk's inquiry queue."""
    actor = require_clinic(request, ClinicAction.VIEW_INQUIRIES)
    statuses = forms.ChoiceField(choices=InquiryStatus.choices, required=False)
    status = param(request.GET, "status", statuses) or ""
    page = Paginator(selectors.inquiry_queue(actor.clinic, status), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    record_event(
        actor, "list", object_type="inquiry_queue", detail=f"page={page.number} n={len(page.object_list)}"
    )
    return render(
        request,
        "intake/queue.html",
        {
            "page": page,
            "status": status,
            "statuses": InquiryStatus.choices,
            "can_convert": clinic_can(actor, ClinicAction.CONVERT_INQUIRY),
        },
    )


def _inquiry(request: HttpRequest, inquiry_id: int) -> Inquiry:
    return get_object_or_404(
        Inquiry.objects.select_related("patient"), pk=inquiry_id, clinic=request_clinic(request)
    )


@login_required
def inquiry(request: HttpRequest, inquiry_id: int) -> HttpResponse:
    actor = require_clinic(request, ClinicAction.VIEW_INQUIRIES)
    item = _inquiry(request, inquiry_id)
    if request.method == "POST":
        if not clinic_can(actor, ClinicAction.CONVERT_INQUIRY):
            raise refuse(request, "Only the front desk, admins and prescribers handle inquiries.")
        try:
            services.inquiry_set_status(actor, item, status=request.POST.get("status", ""))
        except (DomainError, ValueError) as exc:
            messages.error(request, str(exc) if isinstance(exc, DomainError) else "Choose a status.")
        else:
            messages.success(request, f"Inquiry marked '{item.get_status_display()}'.")
        return redirect("intake:inquiry", inquiry_id=item.pk)
    record_event(actor, "view", obj=item)
    return render(
        request,
        "intake/inquiry.html",
        {"inquiry": item, "can_convert": clinic_can(actor, ClinicAction.CONVERT_INQUIRY)},
    )


def _split_name(name: str) -> tuple[str, str]:
    parts = name.strip().split()
    if len(parts) <= 1:
        return (parts[0] if parts else "", "")
    return " ".join(parts[:-1]), parts[-1]


@login_required
def convert(request: HttpRequest, inquiry_id: int) -> HttpResponse:
    """Turn an inquiry into a patient: enter name + date of birth + contact, see possible matches,
    and confirm either 'this is the same person' (merge) or 'create a new record'."""
    require_clinic(request, ClinicAction.CONVERT_INQUIRY)
    actor = actor_from_request(request)
    item = _inquiry(request, inquiry_id)
    if item.status == InquiryStatus.CONVERTED:
        messages.info(request, "This inquiry has already been converted.")
        return redirect("intake:inquiry", inquiry_id=item.pk)
    first, last = _split_name(item.name)
    form = ConvertForm(
        request.POST or None,
        initial={
            "legal_first_name": first,
            "legal_last_name": last,
            "email": item.email,
            "phone": item.phone,
        },
    )
    candidates: list[Patient] = []
    status = 200
    if request.method == "POST":
        if form.is_valid():
            d = form.cleaned_data
            candidates = selectors.duplicate_candidates(
                actor.clinic,
                first_name=d["legal_first_name"],
                last_name=d["legal_last_name"],
                date_of_birth=d["date_of_birth"],
                email=d["email"],
                phone=d["phone"],
            )
            match = d.get("match", "")
            existing = None
            if match and match != "new":
                existing = next((c for c in candidates if str(c.pk) == match), None)
                if existing is None:
                    form.add_error(
                        None, "The chosen record is not one of the possible matches; choose again."
                    )
            if not form.errors and (match == "new" or existing is not None or not candidates):
                fields = {
                    k: d[k]
                    for k in ("legal_first_name", "legal_last_name", "date_of_birth", "email", "phone")
                }
                try:
                    patient = services.inquiry_convert(actor, item, existing=existing, fields=fields)
                except DomainError as exc:
                    form.add_error(None, str(exc))
                else:
                    verb = "linked to the existing record" if existing else "converted to a new record"
                    messages.success(request, f"Inquiry {verb} {patient.mrn}.")
                    return redirect("patients:chart", patient_id=patient.pk)
            status = 200 if candidates and not form.errors else 400
        else:
            status = 400
    if request.method == "GET" or status == 400:
        record_event(actor, "view", obj=item, detail="convert form")
    else:
        record_event(actor, "view", obj=item, detail=f"duplicate candidates n={len(candidates)}")
    return render(
        request,
        "intake/convert.html",
        {"inquiry": item, "form": form, "candidates": candidates},
        status=status,
    )


# --- patient portal: intake questionnaire --------------------------------------------------------


@login_required
def questionnaire(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.SELF_SERVICE)
    patient = open_patient(
        request,
        request_patient(request).pk,
        Action.SELF_SERVICE,
        audit=ON_READ,
        object_type="intake_questionnaire",
    )
    actor = actor_from_request(request)
    assessment = selectors.assessment_for(patient)
    form = QuestionnaireForm(
        request.POST or None,
        answers=assessment.patient_answers or {},
        initial={"version": assessment.version, "notes": assessment.patient_notes},
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.questionnaire_submit(
                    actor,
                    patient,
                    expected_version=form.cleaned_data["version"],
                    answers=form.answers(),
                    notes=form.cleaned_data["notes"],
                )
            except ConflictError as exc:
                form.add_error(None, str(exc))
                status = 409
            else:
                draft_clear(request.user, "intake.questionnaire")
                messages.success(request, "Thank you. Your answers were sent to your care team.")
                return redirect("intake:questionnaire")
        else:
            status = 400
        if status != 200:
            record_event(actor, "view", patient=patient, object_type="intake_questionnaire")
    return render(
        request,
        "intake/questionnaire.html",
        {"form": form, "assessment": assessment, "patient": patient},
        status=status,
    )


# --- clinician assessment ------------------------------------------------------------------------


@login_required
def assessment(request: HttpRequest, patient_id: int) -> HttpResponse:
    posting = request.method == "POST"
    patient = open_patient(
        request,
        patient_id,
        Action.EDIT_CLINICAL if posting else Action.VIEW_CLINICAL,
        audit=ON_READ,
        object_type="intake_assessment",
    )
    actor = actor_from_request(request)
    record = selectors.assessment_for(patient)
    classified = selectors.classified_medications(record, patient)
    form = AssessmentForm(request.POST or None, instance=record)
    meds = MedicationFormSet(request.POST or None, prefix="med")
    classes = InteractionClassForm(request.POST or None, classified=classified, prefix="ic")
    status = 200
    if posting:
        if form.is_valid() and meds.is_valid() and classes.is_valid():
            changes = {
                k: v for k, v in form.cleaned_data.items() if k != "version" and not k.startswith("q_")
            }
            changes["answers"] = form.answers()
            changes["medication_classes"] = classes.confirmed()
            new_medications = [
                {"name": m["name"].strip(), "dose": m.get("dose", "").strip(), "drug_class": m["drug_class"]}
                for m in meds.cleaned_data
                if m and m.get("name")
            ]
            try:
                _saved, changed = services.assessment_update(
                    actor,
                    patient,
                    expected_version=form.cleaned_data["version"],
                    changes=changes,
                    new_medications=new_medications,
                )
            except ConflictError as exc:
                form.add_error(None, str(exc))
                status = 409
            else:
                draft_clear(request.user, "intake.assessment", object_id=patient.pk)
                messages.success(request, "Assessment saved." if changed else "No changes to save.")
                return redirect("intake:eligibility", patient_id=patient.pk)
        else:
            status = 400
        record_event(actor, "view", patient=patient, object_type="intake_assessment")
    return render(
        request,
        "intake/assessment.html",
        {
            "patient": patient,
            "assessment": record,
            "form": form,
            "meds": meds,
            "classified": [
                (c, classes[f"cls_{c.medication.id}"] if c.refinable else None) for c in classified
            ],
            "classes_form": classes,
            "can_edit": can(actor, Action.EDIT_CLINICAL, patient),
        },
        status=status,
    )


@login_required
def eligibility(request: HttpRequest, patient_id: int) -> HttpResponse:
    """The explainable eligibility report, and the prescriber's signed decision."""
    posting = request.method == "POST"
    patient = open_patient(
        request,
        patient_id,
        Action.PRESCRIBE if posting else Action.VIEW_CLINICAL,
        audit=ON_READ,
        object_type="eligibility_report",
    )
    actor = actor_from_request(request)
    record = selectors.assessment_for(patient)
    classified = selectors.classified_medications(record, patient)
    digest = relevant_digest(classified, load_rule_set())
    report = selectors.eligibility_report(record, patient, classified=classified)
    form = DecisionForm(
        request.POST or None,
        review_items=list(report.reviews),
        initial={"version": record.version, "medications_digest": digest},
    )
    status = 200
    if posting:
        if form.is_valid():
            try:
                services.decision_sign(
                    actor,
                    patient,
                    shown_version=form.cleaned_data["version"],
                    decision=form.cleaned_data["decision"],
                    reason=form.cleaned_data["reason"],
                    rationales=form.rationales(),
                    shown_medications_digest=form.cleaned_data.get("medications_digest") or None,
                )
            except DomainError as exc:
                form.add_error(None, str(exc))
                status = 409 if "after you opened" in str(exc) else 400
            else:
                messages.success(request, "Eligibility decision signed.")
                return redirect("intake:eligibility", patient_id=patient.pk)
        else:
            status = 400
        record_event(actor, "view", patient=patient, object_type="eligibility_report")
        if status == 409:
            # Re-render against the current version so that the next submit signs what is now shown.
            message = form.non_field_errors()
            data = request.POST.copy()
            data["version"] = str(record.version)
            data["medications_digest"] = digest
            form = DecisionForm(data, review_items=list(report.reviews))
            form.is_valid()
            for m in message:
                form.add_error(None, m)
    state = selectors.eligibility_state(patient)
    rs = load_rule_set()
    return render(
        request,
        "intake/eligibility.html",
        {
            "patient": patient,
            "assessment": record,
            "report": report,
            "protocol_checks": selectors.protocol_checks(record, patient, report),
            "form": form,
            "state": state,
            "decisions": patient.eligibility_decisions.select_related("signed_by").order_by("-signed_at")[
                :10
            ],
            "can_sign": can(actor, Action.PRESCRIBE, patient),
            "rule_set": rs,
            "field_labels": {q.id: q.label for q in rs.questions},
        },
        status=status,
    )
