"""Printable clinical records as PDF: each download is an audited export of clinical data.

Staff: the clinical roles that may read the chart's clinical data (policy VIEW_CLINICAL); front desk
and admins cannot. Patients: from the portal, the records the portal already shows them
(records.portal_records). Paper: ?paper=A4 or ?paper=Letter (default Letter).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from kapclinic.audit.services import record_event
from kapclinic.core import clock
from kapclinic.core.actor import actor_from_request
from kapclinic.core.params import param
from kapclinic.core.pdf import render_pdf
from kapclinic.documents import records
from kapclinic.documents.forms import LetterForm, PaperForm
from kapclinic.documents.models import Letter
from kapclinic.documents.views import _me
from kapclinic.patients.models import Patient
from kapclinic.policy import ON_READ, Action, can, open_patient

DEFAULT_PAPER = "Letter"


def _paper(request: HttpRequest) -> str:
    return str(param(request.GET, "paper", PaperForm.base_fields["paper"]) or DEFAULT_PAPER)


def _pdf_response(request: HttpRequest, patient: Patient, printable: records.Printable) -> HttpResponse:
    paper = _paper(request)
    data = render_pdf(printable.template, printable.context, request=request, paper=paper)  # type: ignore[arg-type]
    record_event(
        actor_from_request(request),
        "export",
        patient=patient,
        obj=printable.obj,
        object_type=printable.object_type,
        object_id="" if printable.obj is not None else patient.pk,
        detail=f"pdf {printable.template.rsplit('/', 1)[-1].removesuffix('.html')} {paper}",
    )
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{printable.filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


def _clinical(request: HttpRequest, patient_id: int) -> Patient:
    return open_patient(request, patient_id, Action.VIEW_CLINICAL, audit=None, object_type="records_pdf")


def _one(qs: Any) -> Any:
    obj = qs.first()
    if obj is None:
        raise Http404
    return obj


@login_required
def records_page(request: HttpRequest, patient_id: int) -> HttpResponse:
    """Every printable record of the chart, with its PDF link; and the letter form."""
    from kapclinic.consent.models import ConsentSignature
    from kapclinic.notes.models import Note, NoteStatus
    from kapclinic.sessions.models import DosingSession
    from kapclinic.treatment.models import PlanStatus, TreatmentPlan

    posting = request.method == "POST"
    patient = open_patient(request, patient_id, Action.VIEW_CLINICAL, audit=ON_READ, object_type="records")
    actor = actor_from_request(request)
    can_write = can(actor, Action.EDIT_CLINICAL, patient)
    form = LetterForm(request.POST or None)
    status = 200
    if posting:
        status = 400
        if not can_write:
            from kapclinic.policy import refuse

            raise refuse(request, "Your role cannot write letters for this patient.", patient=patient)
        if form.is_valid():
            assert actor.user is not None
            letter = Letter.objects.create(
                patient=patient, author=actor.user, signed_at=clock.now(), **form.cleaned_data
            )
            record_event(actor, "sign", patient=patient, obj=letter, detail=letter.kind)
            messages.success(request, "Letter signed. Download the PDF to send it.")
            return redirect("documents:records", patient_id=patient.pk)
        record_event(actor, "view", patient=patient, object_type="records", detail="letter refused")
    ctx = {
        "patient": patient,
        "sessions": DosingSession.objects.filter(patient=patient).order_by("-scheduled_for")[:50],
        "signatures": ConsentSignature.objects.filter(patient=patient).select_related("document")[:20],
        "notes": Note.objects.filter(patient=patient, status=NoteStatus.SIGNED).order_by(
            "-service_date", "-id"
        )[:50],
        "plans": TreatmentPlan.objects.filter(patient=patient)
        .exclude(status=PlanStatus.DRAFT)
        .order_by("-signed_at", "-id")[:20],
        "letters": Letter.objects.filter(patient=patient).select_related("author")[:50],
        "form": form,
        "can_write": can_write,
    }
    return render(request, "documents/records.html", ctx, status=status)


@login_required
def session_pdf(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    from kapclinic.sessions.models import DosingSession

    patient = _clinical(request, patient_id)
    session = _one(
        DosingSession.objects.filter(pk=session_id, patient=patient).select_related("patient__clinic")
    )
    return _pdf_response(request, patient, records.session_record(session))


@login_required
def consent_pdf(request: HttpRequest, patient_id: int, signature_id: int) -> HttpResponse:
    from kapclinic.consent.models import ConsentSignature

    patient = _clinical(request, patient_id)
    sig = _one(
        ConsentSignature.objects.filter(pk=signature_id, patient=patient).select_related(
            "document", "witnessed_by"
        )
    )
    return _pdf_response(request, patient, records.consent_record(sig))


@login_required
def note_pdf(request: HttpRequest, patient_id: int, note_id: int) -> HttpResponse:
    from kapclinic.notes.models import Note, NoteStatus

    patient = _clinical(request, patient_id)
    note = _one(
        Note.objects.filter(pk=note_id, patient=patient, status=NoteStatus.SIGNED).select_related(
            "author", "signed_by"
        )
    )
    return _pdf_response(request, patient, records.note_record(note))


@login_required
def plan_pdf(request: HttpRequest, patient_id: int, plan_id: int) -> HttpResponse:
    from kapclinic.treatment.models import PlanStatus, TreatmentPlan

    patient = _clinical(request, patient_id)
    plan = _one(TreatmentPlan.objects.filter(pk=plan_id, patient=patient).exclude(status=PlanStatus.DRAFT))
    return _pdf_response(request, patient, records.plan_record(plan))


@login_required
def measures_pdf(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = _clinical(request, patient_id)
    return _pdf_response(request, patient, records.measures_record(patient))


@login_required
def letter_pdf(request: HttpRequest, patient_id: int, letter_id: int) -> HttpResponse:
    patient = _clinical(request, patient_id)
    letter = _one(Letter.objects.filter(pk=letter_id, patient=patient).select_related("author"))
    return _pdf_response(request, patient, records.letter_record(letter))


# ------------------------------------------------------------------ portal


@login_required
def my_consent(request: HttpRequest) -> HttpResponse:
    patient = _me(request, audit=None)
    sig = records.portal_consent(patient)
    if sig is None:
        raise Http404
    return _pdf_response(request, patient, records.consent_record(sig))


@login_required
def my_plan(request: HttpRequest) -> HttpResponse:
    patient = _me(request, audit=None)
    plan = records.portal_plan(patient)
    if plan is None:
        raise Http404
    return _pdf_response(request, patient, records.plan_record(plan))


@login_required
def my_measures(request: HttpRequest) -> HttpResponse:
    patient = _me(request, audit=None)
    if not records.portal_has_measures(patient):
        raise Http404
    return _pdf_response(request, patient, records.measures_record(patient))
