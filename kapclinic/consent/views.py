from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from kapclinic.audit.services import record_event
from kapclinic.consent import kiosk, selectors, services
from kapclinic.consent.forms import DocumentForm, SignForm
from kapclinic.consent.models import ConsentDocument, SignatureChannel
from kapclinic.core.actor import actor_from_request
from kapclinic.core.errors import DomainError
from kapclinic.core.request import request_clinic, request_patient
from kapclinic.drafts.services import draft_clear
from kapclinic.patients.models import Patient
from kapclinic.policy import ON_READ, Action, ClinicAction, open_patient, require_clinic


@login_required
def index(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.MANAGE_CONSENT_DOCUMENTS)
    docs = ConsentDocument.objects.filter(clinic=request_clinic(request)).select_related("published_by")
    return render(request, "consent/index.html", {"documents": docs})


@login_required
def document_new(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.MANAGE_CONSENT_DOCUMENTS)
    actor = actor_from_request(request)
    current = selectors.current_document(actor.clinic)
    form = DocumentForm(
        request.POST or None, initial={"title": current.title, "body": current.body} if current else None
    )
    if request.method == "POST":
        if form.is_valid():
            doc = services.document_publish(actor, **form.cleaned_data)
            draft_clear(request.user, "consent.document")
            messages.success(
                request,
                f"Consent version {doc.version} published. Patients must re-consent before their next "
                "dosing session.",
            )
            return redirect("consent:document", document_id=doc.pk)
        return render(request, "consent/document_new.html", {"form": form, "current": current}, status=400)
    return render(request, "consent/document_new.html", {"form": form, "current": current})


@login_required
def document(request: HttpRequest, document_id: int) -> HttpResponse:
    require_clinic(request, ClinicAction.MANAGE_CONSENT_DOCUMENTS)
    doc = get_object_or_404(ConsentDocument, pk=document_id, clinic=request_clinic(request))
    return render(request, "consent/document.html", {"document": doc})


def _sign(
    request: HttpRequest,
    patient: Patient,
    channel: str,
    template: str,
    done_url: str,
    draft: tuple[str, int],
) -> HttpResponse:
    actor = actor_from_request(request)
    state = selectors.consent_state(patient)
    doc = state.document
    form = SignForm(request.POST or None, initial={"document_id": doc.pk if doc else None})
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.consent_sign(
                    actor,
                    patient,
                    document_id=form.cleaned_data["document_id"],
                    typed_name=form.cleaned_data["typed_name"],
                    agreed=form.cleaned_data["agreed"],
                    ip=actor.ip,
                    channel=channel,
                )
            except DomainError as exc:
                form.add_error(None, str(exc))
                status = 400
            else:
                draft_clear(request.user, draft[0], object_id=draft[1])
                messages.success(
                    request, "Consent signed. A copy of the exact text you signed is kept in your record."
                )
                return redirect(done_url)
        else:
            status = 400
        record_event(actor, "view", patient=patient, object_type="consent_form")
    return render(
        request,
        template,
        {
            "patient": patient,
            "state": state,
            "document": doc,
            "form": form,
            "draft_key": draft[0],
            "draft_object": draft[1],
        },
        status=status,
    )


@login_required
def sign(request: HttpRequest) -> HttpResponse:
    """The patient signs in the portal."""
    require_clinic(request, ClinicAction.SELF_SERVICE)
    patient = open_patient(
        request,
        request_patient(request).pk,
        Action.SELF_SERVICE,
        audit=ON_READ,
        object_type="consent_form",
    )
    from django.urls import reverse

    return _sign(
        request,
        patient,
        SignatureChannel.PORTAL,
        "consent/sign.html",
        reverse("consent:sign"),
        ("consent.sign", 0),
    )


@login_required
def sign_in_clinic(request: HttpRequest, patient_id: int) -> HttpResponse:
    """Signed in the clinic on a tablet: the staff member reads what will be shown, then starts the kiosk
    and hands the tablet to the patient (see consent/kiosk.py)."""
    require_clinic(request, ClinicAction.CONSENT_IN_CLINIC)
    patient = open_patient(request, patient_id, Action.EDIT_DEMOGRAPHICS, object_type="consent_form")
    state = selectors.consent_state(patient)
    return render(
        request,
        "consent/sign_in_clinic.html",
        {"patient": patient, "state": state, "document": state.document},
    )


@login_required
@require_POST
def kiosk_start(request: HttpRequest, patient_id: int) -> HttpResponse:
    require_clinic(request, ClinicAction.CONSENT_IN_CLINIC)
    patient = open_patient(request, patient_id, Action.EDIT_DEMOGRAPHICS, audit=None)
    record_event(
        actor_from_request(request), "view", patient=patient, object_type="consent_kiosk", detail="kiosk on"
    )
    kiosk.kiosk_begin(request, patient.pk)
    return redirect("consent:kiosk")


@login_required
def kiosk_view(request: HttpRequest) -> HttpResponse:
    """The patient's side of the tablet: the document and the signature step, nothing else."""
    state = kiosk.kiosk_state(request)
    if state is None:
        return redirect("core:home")
    patient = open_patient(
        request,
        state["patient_id"],
        Action.EDIT_DEMOGRAPHICS,
        audit=ON_READ,
        object_type="consent_form",
    )
    from django.urls import reverse

    return _sign(
        request,
        patient,
        SignatureChannel.IN_CLINIC,
        "consent/kiosk.html",
        reverse("consent:kiosk"),
        ("consent.sign_in_clinic", patient.pk),
    )


@login_required
@require_POST
def kiosk_exit(request: HttpRequest) -> HttpResponse:
    """Back to the staff view: only with the password of the staff member who started the kiosk."""
    state = kiosk.kiosk_state(request)
    if state is None:
        return redirect("core:home")
    actor = actor_from_request(request)
    if request.user.check_password(request.POST.get("password", "")):
        kiosk.kiosk_end(request)
        record_event(actor, "view", object_type="consent_kiosk", detail="kiosk off", clinic=actor.clinic)
        return redirect("consent:patient", patient_id=state["patient_id"])
    state["failures"] = int(state.get("failures", 0)) + 1
    record_event(actor, "login_failed", object_type="consent_kiosk", detail="kiosk exit", clinic=actor.clinic)
    if state["failures"] >= kiosk.EXIT_ATTEMPTS:
        logout(request)  # the tablet is no longer in a staff member's hands: end the staff session
        return redirect("accounts:login")
    request.session[kiosk.SESSION_KIOSK] = state
    messages.error(request, "That password is not right. Hand the tablet back to the staff member.")
    return redirect("consent:kiosk")


@login_required
def patient_consents(request: HttpRequest, patient_id: int) -> HttpResponse:
    require_clinic(request, ClinicAction.CONSENT_IN_CLINIC)
    patient = open_patient(request, patient_id, Action.VIEW_DEMOGRAPHICS, object_type="consent")
    state = selectors.consent_state(patient)
    signatures = patient.consent_signatures.select_related("document", "witnessed_by").order_by("-signed_at")
    return render(
        request, "consent/patient.html", {"patient": patient, "state": state, "signatures": signatures}
    )
