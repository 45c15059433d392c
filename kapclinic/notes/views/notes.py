"""Clinical notes: the lists, a new note, the editor with autosave, signing, the note, its addenda, the
appointment's thread."""

from __future__ import annotations

import secrets
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from kapclinic.audit.services import record_event
from kapclinic.core import clock
from kapclinic.core.actor import actor_from_request
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.core.params import MAX_ID, BadParameter, id_param, param
from kapclinic.notes import selectors, services
from kapclinic.notes.forms import (
    AddendumForm,
    NewNoteForm,
    NoteSectionsForm,
)
from kapclinic.notes.models import Note
from kapclinic.notes.templates_data import available_templates
from kapclinic.policy import ON_READ, Action, ClinicAction, can, clinic_can, open_patient, require_clinic
from kapclinic.portal.selectors import shared_entries
from kapclinic.scheduling.models import Appointment, Kind
from kapclinic.sessions.selectors import session_for_appointment


def _session_url(patient_id: int, session_id: int | None) -> str | None:
    if not session_id:
        return None
    return reverse("sessions:detail", kwargs={"patient_id": patient_id, "session_id": session_id})


def _appointment_session_url(patient_id: int, appointment_id: int | None) -> str | None:
    """The dosing-session record started from this dosing appointment (DosingSession.appointment)."""
    session = session_for_appointment(appointment_id)
    return _session_url(patient_id, session.pk if session else None)


def _note(patient: Any, note_id: int) -> Note:
    note = (
        Note.objects.select_related(
            "author", "signed_by", "dosing_appointment", "patient", "clinic_template_version__template"
        )
        .filter(pk=note_id, patient=patient)
        .first()
    )
    if note is None:
        raise Http404
    return note


@login_required
def index(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.CLINICAL_WORK)
    actor = actor_from_request(request)
    drafts = request.GET.get("show") != "all"
    page = Paginator(selectors.my_notes(actor, drafts_only=drafts), 50).get_page(request.GET.get("page"))
    record_event(actor, "list", object_type="my_notes", detail=f"n={len(page.object_list)}")
    return render(
        request,
        "notes/index.html",
        {"page": page, "drafts": drafts, "extra_query": "" if drafts else "show=all"},
    )


@login_required
def patient_notes(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = open_patient(request, patient_id, Action.VIEW_CLINICAL, object_type="notes")
    actor = actor_from_request(request)
    page = Paginator(selectors.patient_notes(patient), 30).get_page(request.GET.get("page"))
    dosing = list(
        Appointment.objects.filter(patient=patient, kind=Kind.DOSING)
        .exclude(status="cancelled")
        .order_by("-starts_at")[:12]
    )
    return render(
        request,
        "notes/patient.html",
        {
            "patient": patient,
            "page": page,
            "dosing": dosing,
            "can_write": can(actor, Action.EDIT_CLINICAL, patient),
            "process_count": selectors.readable_process_notes(actor.user, patient).count(),
            "may_process": clinic_can(actor, ClinicAction.PROCESS_NOTES),
        },
    )


@login_required
def new(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = open_patient(
        request, patient_id, Action.EDIT_CLINICAL, audit=ON_READ,
        object_type="notes",
    )  # fmt: skip
    actor = actor_from_request(request)
    templates = available_templates(actor.clinic)
    dosing = list(
        Appointment.objects.filter(patient=patient, kind=Kind.DOSING)
        .exclude(status="cancelled")
        .order_by("-starts_at")[:30]
    )
    template = param(request.GET, "template", forms.CharField(required=False, max_length=100))
    initial = {"service_date": clock.today(), "template": template or ""}
    if (appointment_id := id_param(request.GET, "appointment")) is not None:
        initial["dosing_appointment"] = appointment_id
    form = NewNoteForm(
        request.POST or None,
        templates=templates,
        dosing=dosing,
        initial=initial,
        birth_date=patient.date_of_birth,
    )
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            appt_id = form.cleaned_data["dosing_appointment"]
            appt = next((a for a in dosing if a.pk == appt_id), None)
            try:
                note = services.note_create(
                    actor,
                    patient,
                    template_key=form.cleaned_data["template"],
                    service_date=form.cleaned_data["service_date"],
                    dosing_appointment=appt,
                )
            except DomainError as exc:
                exc.add_to_form(form)
            else:
                return redirect("notes:edit", patient_id=patient.pk, note_id=note.pk)
        if status == 400:
            record_event(actor, "view", patient=patient, object_type="notes", detail="new note refused")
    return render(request, "notes/new.html", {"patient": patient, "form": form}, status=status)


def _editor_context(patient: Any, note: Note, form: NoteSectionsForm) -> dict[str, Any]:
    entries = (
        list(shared_entries(patient, appointment=note.dosing_appointment)) if note.dosing_appointment else []
    )
    return {
        "patient": patient,
        "note": note,
        "form": form,
        "entries": entries,
        "session_url": _appointment_session_url(patient.pk, note.dosing_appointment_id),
    }


@login_required
def edit_note(request: HttpRequest, patient_id: int, note_id: int) -> HttpResponse:
    posting = request.method == "POST"
    patient = open_patient(request, patient_id, Action.EDIT_CLINICAL, audit=ON_READ)
    note = _note(patient, note_id)
    actor = actor_from_request(request)
    if note.is_signed:
        if posting:
            record_event(actor, "denied", patient=patient, obj=note, detail="edit after signing")
            messages.error(request, services._locked_message(note))
        return redirect("notes:detail", patient_id=patient.pk, note_id=note.pk)
    if note.author_id != actor.user_id:
        if posting:
            record_event(actor, "denied", patient=patient, obj=note, detail="not author")
        messages.info(request, "Only the author can edit a draft; here it is read-only.")
        return redirect("notes:detail", patient_id=patient.pk, note_id=note.pk)
    form = NoteSectionsForm(
        request.POST or None,
        sections=note.sections,
        initial={"version": note.version, "editor": new_editor_token()},
    )
    status = 200
    if posting:
        status = 400
        if form.is_valid():
            try:
                data = form.cleaned_data
                services.note_save_draft(
                    actor, note, expected_version=data["version"], texts=form.texts(), editor=data["editor"]
                )
            except ConflictError as exc:
                form.add_error(None, str(exc))
                status = 409
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, "Draft saved.")
                return redirect("notes:edit", patient_id=patient.pk, note_id=note.pk)
        if status != 409 and not form.is_valid():
            record_event(actor, "view", patient=patient, obj=note, detail="draft refused")
        elif status == 409:
            record_event(actor, "view", patient=patient, obj=note, detail="draft conflict")
    return render(request, "notes/edit.html", _editor_context(patient, note, form), status=status)


@login_required
@require_POST
def autosave(request: HttpRequest, patient_id: int, note_id: int) -> HttpResponse:
    """htmx: save the draft as the author types; answers with a small status fragment."""
    patient = open_patient(request, patient_id, Action.EDIT_CLINICAL, audit=None)
    note = _note(patient, note_id)
    actor = actor_from_request(request)
    form = NoteSectionsForm(request.POST, sections=note.sections)
    if not form.is_valid():
        record_event(actor, "view", patient=patient, obj=note, detail="autosave refused")
        errors = [str(e) for errs in form.errors.values() for e in errs]
        return render(request, "notes/_save_status.html", {"error": " ".join(errors)}, status=400)
    try:
        note = services.note_save_draft(
            actor,
            note,
            expected_version=form.cleaned_data["version"],
            texts=form.texts(),
            editor=form.cleaned_data["editor"],
        )
    except ConflictError as exc:
        record_event(actor, "view", patient=patient, obj=note, detail="autosave conflict")
        return render(request, "notes/_save_status.html", {"error": str(exc)}, status=409)
    except DomainError as exc:
        record_event(actor, "denied", patient=patient, obj=note, detail="autosave refused")
        return render(request, "notes/_save_status.html", {"error": exc.message}, status=409)
    return render(request, "notes/_save_status.html", {"note": note, "saved_at": note.updated_at})


def new_editor_token() -> str:
    """A random token for one opened editor page: its own saves are not someone else's change."""
    return secrets.token_urlsafe(18)


def _is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


@login_required
@require_POST
def sign(request: HttpRequest, patient_id: int, note_id: int) -> HttpResponse:
    """Sign a draft. From the editor page with scripts on, the button posts through htmx, queued behind
    an autosave still in flight (hx-sync on the form): success moves the page to the signed note
    (HX-Redirect), a refusal is shown in the save status and the page keeps the author's text."""
    patient = open_patient(request, patient_id, Action.EDIT_CLINICAL, audit=None)
    note = _note(patient, note_id)
    actor = actor_from_request(request)
    form = NoteSectionsForm(request.POST, sections=note.sections)
    texts = form.texts() if form.is_valid() else None
    editor = request.POST.get("editor", "")[:40]
    htmx = _is_htmx(request)
    edit_url = reverse("notes:edit", kwargs={"patient_id": patient.pk, "note_id": note.pk})
    detail_url = reverse("notes:detail", kwargs={"patient_id": patient.pk, "note_id": note.pk})
    try:
        version = param(request.POST, "version", forms.IntegerField(min_value=0, max_value=MAX_ID))
        services.note_sign(actor, note, expected_version=version, texts=texts, editor=editor)
    except (ConflictError, BadParameter, ValueError):
        record_event(actor, "view", patient=patient, obj=note, detail="sign conflict")
        if htmx:
            return render(request, "notes/_save_status.html", {"error": str(ConflictError())}, status=409)
        messages.error(request, str(ConflictError()))
        return redirect(edit_url)
    except DomainError as exc:
        record_event(actor, "denied", patient=patient, obj=note, detail="sign refused")
        if htmx and not note.is_signed:
            return render(request, "notes/_save_status.html", {"error": exc.message}, status=400)
        messages.error(request, exc.message)
        target = detail_url if note.is_signed else edit_url
        return HttpResponseClientRedirect(target) if htmx else redirect(target)
    messages.success(request, "Note signed. It can no longer be changed; add an addendum if needed.")
    return HttpResponseClientRedirect(detail_url) if htmx else redirect(detail_url)


@login_required
def detail(request: HttpRequest, patient_id: int, note_id: int) -> HttpResponse:
    patient = open_patient(request, patient_id, Action.VIEW_CLINICAL, audit=None)
    note = _note(patient, note_id)
    actor = actor_from_request(request)
    record_event(actor, "view", patient=patient, obj=note)
    entries = (
        list(shared_entries(patient, appointment=note.dosing_appointment)) if note.dosing_appointment else []
    )
    return render(
        request,
        "notes/detail.html",
        {
            "patient": patient,
            "note": note,
            "addenda": list(note.addenda.select_related("author")),
            "addendum_form": AddendumForm(),
            "can_add": note.is_signed and can(actor, Action.EDIT_CLINICAL, patient),
            "can_edit": not note.is_signed and note.author_id == actor.user_id,
            "entries": entries,
            "session_url": _appointment_session_url(patient.pk, note.dosing_appointment_id),
        },
    )


@login_required
@require_POST
def addendum(request: HttpRequest, patient_id: int, note_id: int) -> HttpResponse:
    patient = open_patient(request, patient_id, Action.EDIT_CLINICAL, audit=None)
    note = _note(patient, note_id)
    actor = actor_from_request(request)
    form = AddendumForm(request.POST)
    if form.is_valid():
        try:
            services.addendum_add(actor, note, text=form.cleaned_data["text"])
        except DomainError as exc:
            record_event(actor, "denied", patient=patient, obj=note, detail="addendum refused")
            messages.error(request, exc.message)
        else:
            messages.success(request, "Addendum added.")
            return redirect("notes:detail", patient_id=patient.pk, note_id=note.pk)
    else:
        record_event(actor, "view", patient=patient, obj=note, detail="addendum refused")
        messages.error(request, "Write the addendum text.")
    return redirect("notes:detail", patient_id=patient.pk, note_id=note.pk)


@login_required
def thread(request: HttpRequest, patient_id: int, appointment_id: int) -> HttpResponse:
    """One dosing session as a thread: booking, session record, the patient's shared intention and
    reflections, and the notes that integrate it."""
    patient = open_patient(request, patient_id, Action.VIEW_CLINICAL, audit=None)
    appt = (
        Appointment.objects.select_related("staff", "resource")
        .filter(pk=appointment_id, patient=patient, kind=Kind.DOSING)
        .first()
    )
    if appt is None:
        raise Http404
    actor = actor_from_request(request)
    record_event(actor, "view", patient=patient, obj=appt, detail="integration thread")
    notes = list(selectors.thread_notes(patient, appt))
    session = session_for_appointment(appt.pk)
    return render(
        request,
        "notes/thread.html",
        {
            "patient": patient,
            "a": appt,
            "entries": list(shared_entries(patient, appointment=appt)),
            "notes": notes,
            "session_url": _session_url(patient.pk, session.pk if session else None),
            "has_session": session is not None,
            "can_write": can(actor, Action.EDIT_CLINICAL, patient),
        },
    )
