"""Chart documents (upload, queue, download) and printable records (views_records.py)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.uploadedfile import UploadedFile
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from kapclinic.audit.services import record_event
from kapclinic.core.actor import Actor, actor_from_request
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.core.request import request_patient
from kapclinic.documents import services
from kapclinic.documents.forms import FileForm, LogoForm, PortalUploadForm, RejectForm, UploadForm
from kapclinic.documents.models import ADMINISTRATIVE, Document, Status
from kapclinic.patients.models import Patient
from kapclinic.policy import (
    ON_READ,
    Action,
    ClinicAction,
    can,
    document_action,
    open_patient,
    refuse,
    require_clinic,
    visible_patients,
)


def _upload(f: UploadedFile) -> services.Upload:
    return services.Upload(fh=f.file, name=f.name or "", size=f.size or 0)  # type: ignore[arg-type]


def visible_categories(actor: Actor, patient: Patient) -> list[str] | None:
    """The categories `actor` may see for `patient`: None = all, [] = none."""
    if can(actor, Action.VIEW_CLINICAL, patient):
        return None
    if can(actor, Action.VIEW_DEMOGRAPHICS, patient):
        return [str(c) for c in ADMINISTRATIVE]
    return []


def _visible(actor: Actor, patient: Patient) -> Any:
    qs = Document.objects.filter(patient=patient).select_related("uploaded_by")
    cats = visible_categories(actor, patient)
    return qs if cats is None else qs.filter(category__in=cats)


@login_required
def patient_documents(request: HttpRequest, patient_id: int) -> HttpResponse:
    """The chart's documents, and the staff upload form."""
    posting = request.method == "POST"
    patient = open_patient(
        request,
        patient_id,
        Action.VIEW_DEMOGRAPHICS,
        audit=ON_READ,
        object_type="documents",
    )
    actor = actor_from_request(request)
    administrative_only = not can(actor, Action.EDIT_CLINICAL, patient)
    can_upload = can(actor, Action.EDIT_DEMOGRAPHICS, patient) or can(actor, Action.EDIT_CLINICAL, patient)
    form = UploadForm(request.POST or None, request.FILES or None, administrative_only=administrative_only)
    status = 200
    if posting:
        status = 400
        if not can_upload:
            raise refuse(request, "Your role cannot add documents to this chart.", patient=patient)
        if form.is_valid():
            try:
                doc = services.upload(
                    actor, patient, upload=_upload(form.cleaned_data["file"]),
                    category=form.cleaned_data["category"], title=form.cleaned_data["title"],
                )  # fmt: skip
            except DomainError as exc:
                form.add_error("file", str(exc))
            else:
                messages.success(request, f"“{doc.title}” is filed in the chart.")
                return redirect("documents:detail", patient_id=patient.pk, document_id=doc.pk)
        record_event(actor, "view", patient=patient, object_type="documents", detail="upload refused")
    docs = _visible(actor, patient)
    context = {
        "patient": patient,
        "filed": docs.filter(status=Status.FILED),
        "pending": docs.filter(status=Status.PENDING),
        "form": form,
        "can_upload": can_upload,
        "administrative_only": administrative_only,
    }
    return render(request, "documents/patient.html", context, status=status)


def _document(
    request: HttpRequest, patient_id: int, document_id: int, *, audit: bool
) -> tuple[Patient, Document]:
    """Open a document of a patient for this request: 404 when it is not this patient's (or not in the
    viewer's clinic), 403 (audited) when its category is not the viewer's to see."""
    patient = open_patient(request, patient_id, Action.VIEW_DEMOGRAPHICS, audit=None, object_type="documents")
    doc = (
        Document.objects.select_related("patient", "uploaded_by", "filed_by")
        .filter(pk=document_id, patient=patient)
        .first()
    )
    if doc is None:
        raise Http404
    actor = actor_from_request(request)
    if not can(actor, document_action(doc.category), patient):
        raise refuse(
            request,
            "Clinical documents are clinical data; your role sees administrative documents only.",
            patient=patient,
            obj=doc,
        )
    if audit:
        record_event(actor, "view", patient=patient, obj=doc)
    return patient, doc


@login_required
def detail(request: HttpRequest, patient_id: int, document_id: int) -> HttpResponse:
    patient, doc = _document(request, patient_id, document_id, audit=True)
    actor = actor_from_request(request)
    context: dict[str, Any] = {"patient": patient, "doc": doc}
    if doc.status == Status.PENDING:
        context["file_form"] = FileForm(
            initial={"category": doc.category, "title": doc.title, "version": doc.version},
            administrative_only=not can(actor, Action.EDIT_CLINICAL, patient),
        )
        context["reject_form"] = RejectForm(initial={"version": doc.version})
    return render(request, "documents/detail.html", context)


def attachment(fh: Any, name: str, content_type: str) -> FileResponse:
    """A download that is never shown inside the site: attachment, no sniffing, no caching, sandboxed."""
    response = FileResponse(fh, as_attachment=True, filename=name, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@login_required
def download(request: HttpRequest, patient_id: int, document_id: int) -> HttpResponse | FileResponse:
    _patient, doc = _document(request, patient_id, document_id, audit=False)
    try:
        fh = services.open_for_download(actor_from_request(request), doc)
    except DomainError as exc:
        messages.error(request, str(exc))
        return redirect("documents:detail", patient_id=patient_id, document_id=document_id)
    return attachment(fh, doc.name, doc.content_type)


@login_required
@require_POST
def file_upload(request: HttpRequest, patient_id: int, document_id: int) -> HttpResponse:
    patient, doc = _document(request, patient_id, document_id, audit=False)
    actor = actor_from_request(request)
    form = FileForm(request.POST, administrative_only=not can(actor, Action.EDIT_CLINICAL, patient))
    if form.is_valid():
        try:
            services.file_document(
                actor, doc, expected_version=form.cleaned_data["version"],
                category=form.cleaned_data["category"], title=form.cleaned_data["title"],
            )  # fmt: skip
        except (DomainError, ConflictError) as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"“{doc.title}” is filed in the chart.")
            return redirect("documents:detail", patient_id=patient.pk, document_id=doc.pk)
    else:
        messages.error(request, "Choose a category to file the upload under.")
    record_event(actor, "view", patient=patient, obj=doc, detail="file refused")
    return redirect("documents:detail", patient_id=patient.pk, document_id=doc.pk)


@login_required
@require_POST
def reject_upload(request: HttpRequest, patient_id: int, document_id: int) -> HttpResponse:
    patient, doc = _document(request, patient_id, document_id, audit=False)
    actor = actor_from_request(request)
    form = RejectForm(request.POST)
    if form.is_valid():
        try:
            services.reject_document(
                actor, doc, expected_version=form.cleaned_data["version"], reason=form.cleaned_data["reason"]
            )
        except (DomainError, ConflictError) as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request, "The upload is not filed; its file was erased and the patient sees why."
            )
            return redirect("documents:queue")
    else:
        messages.error(request, "Say why the upload is not filed; the patient reads it.")
    record_event(actor, "view", patient=patient, obj=doc, detail="reject refused")
    return redirect("documents:detail", patient_id=patient.pk, document_id=doc.pk)


@login_required
def queue(request: HttpRequest) -> HttpResponse:
    """Patients' uploads waiting to be filed, of the patients and categories the viewer may see."""
    require_clinic(request, ClinicAction.FILE_UPLOADS)
    actor = actor_from_request(request)
    clinical = visible_patients(actor, Action.VIEW_CLINICAL).values("pk")
    admin = visible_patients(actor, Action.VIEW_DEMOGRAPHICS).values("pk")
    qs = (
        Document.objects.filter(status=Status.PENDING)
        .filter(Q(patient__in=clinical) | Q(patient__in=admin, category__in=[str(c) for c in ADMINISTRATIVE]))
        .select_related("patient")
        .order_by("uploaded_at", "id")
    )
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    record_event(actor, "list", object_type="document_queue", detail=f"n={len(page.object_list)}")
    return render(request, "documents/queue.html", {"page": page})


# ------------------------------------------------------------------ portal


def _me(request: HttpRequest, *, audit: str | None = "view") -> Patient:
    require_clinic(request, ClinicAction.SELF_SERVICE)
    return open_patient(
        request, request_patient(request).pk, Action.SELF_SERVICE, audit=audit, object_type="documents"
    )


@login_required
def my_documents(request: HttpRequest) -> HttpResponse:
    """The patient's own uploads (with their state) and the form to send one; the records to download."""
    posting = request.method == "POST"
    patient = _me(request, audit=ON_READ)
    actor = actor_from_request(request)
    form = PortalUploadForm(request.POST or None, request.FILES or None)
    status = 200
    if posting:
        status = 400
        if form.is_valid():
            try:
                services.portal_upload(
                    actor, patient, upload=_upload(form.cleaned_data["file"]),
                    category=form.cleaned_data["category"], note=form.cleaned_data["note"],
                )  # fmt: skip
            except DomainError as exc:
                form.add_error("file", str(exc))
            else:
                messages.success(request, "Sent. The clinic will file it in your chart.")
                return redirect(reverse("documents:my") + "#sent")
        record_event(actor, "view", patient=patient, object_type="documents", detail="upload refused")
    from kapclinic.documents.records import portal_records

    uploads = Document.objects.filter(patient=patient, source="portal").order_by("-uploaded_at", "-id")[:50]
    context = {"form": form, "uploads": uploads, "records": portal_records(patient)}
    return render(request, "documents/my.html", context, status=status)


# ------------------------------------------------------------------ the clinic's logo (admins)


@login_required
def logo(request: HttpRequest) -> HttpResponse:
    """Upload, replace or remove the logo printed on the clinic's PDFs."""
    from kapclinic.documents import logo as logos

    actor = require_clinic(request, ClinicAction.MANAGE_CLINIC)
    form = LogoForm()
    status = 200
    if request.method == "POST":
        status = 400
        if request.POST.get("action") == "remove":
            try:
                logos.logo_remove(actor)
            except DomainError as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, "Logo removed: documents print without it.")
            return redirect("documents:logo")
        form = LogoForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                logos.logo_set(actor, _upload(form.cleaned_data["file"]))
            except DomainError as exc:
                exc.add_to_form(form)
            else:
                messages.success(request, "Logo saved: superbills, statements and clinical records print it.")
                return redirect("documents:logo")
    context = {
        "form": form,
        "logo": logos.logo_for(actor.clinic),
        "preview": logos.logo_data_uri(actor.clinic),
        "max_kb": logos.LOGO_MAX_BYTES // 1024,
        "max_side": logos.LOGO_MAX_SIDE,
    }
    return render(request, "documents/logo.html", context, status=status)
