"""Process notes (psychotherapy notes, kept apart from the chart): the list, sharing, editing by their
author, revisions."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from kapclinic.audit.services import record_event
from kapclinic.core.actor import actor_from_request
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.notes import selectors, services
from kapclinic.notes.forms import (
    ProcessNoteEditForm,
    ProcessNoteForm,
    ShareForm,
)
from kapclinic.notes.models import ProcessNote
from kapclinic.notes.views.note_templates import _stale_form_hint
from kapclinic.notes.views.notes import _session_url
from kapclinic.policy import ON_READ, Action, ClinicAction, open_patient, refuse, require_clinic

# ---------------------------------------------------------------- process notes


@login_required
def process_list(request: HttpRequest, patient_id: int) -> HttpResponse:
    require_clinic(request, ClinicAction.PROCESS_NOTES)
    posting = request.method == "POST"
    patient = open_patient(request, patient_id, Action.EDIT_CLINICAL, audit=ON_READ,
                           object_type="process_notes")  # fmt: skip
    actor = actor_from_request(request)
    form = ProcessNoteForm(request.POST or None)
    status = 200
    if posting:
        status = 400
        if form.is_valid():
            try:
                services.process_note_create(actor, patient, text=form.cleaned_data["text"])
            except DomainError as exc:
                form.add_error("text", exc.message)
            else:
                messages.success(
                    request, "Process note saved (encrypted; only you can read it until you share it)."
                )
                return redirect("notes:process_list", patient_id=patient.pk)
        record_event(actor, "view", patient=patient, object_type="process_notes", detail="refused")
    rows = list(selectors.readable_process_notes(actor.user, patient)[:50])
    items = [
        {
            "n": n,
            "text": services.process_note_text(n),
            "session_url": _session_url(patient.pk, n.dosing_session_id),
        }
        for n in rows
    ]
    return render(
        request,
        "notes/process_list.html",
        {
            "patient": patient,
            "items": items,
            "form": form,
            "colleagues": selectors.colleagues(actor.clinic, actor.user),
        },
        status=status,
    )


@login_required
@require_POST
def process_share(request: HttpRequest, patient_id: int, process_note_id: int) -> HttpResponse:
    require_clinic(request, ClinicAction.PROCESS_NOTES)
    patient = open_patient(request, patient_id, Action.EDIT_CLINICAL, audit=None)
    actor = actor_from_request(request)
    note = ProcessNote.objects.filter(pk=process_note_id, patient=patient, author=actor.user).first()
    if note is None:
        raise Http404  # only the author manages sharing; others do not learn the note exists
    form = ShareForm(request.POST, colleagues=selectors.colleagues(actor.clinic, actor.user))
    if form.is_valid():
        from kapclinic.accounts.models import User

        user = User.objects.get(pk=form.cleaned_data["user"])
        try:
            services.process_note_share(actor, note, user=user, share=form.cleaned_data["action"] == "share")
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Sharing updated.")
    else:
        record_event(actor, "view", patient=patient, obj=note, detail="share refused")
        messages.error(request, "Choose a colleague of this clinic to share with.")
    return redirect("notes:process_list", patient_id=patient.pk)


def _own_process_note(request: HttpRequest, patient: Any, actor: Any, process_note_id: int) -> ProcessNote:
    """The author's own process note, or refusal: a colleague it is shared with gets 403 (they can read it,
    not change it); anyone else 404 (the note does not exist for them). Both are audited as denied."""
    note = (
        ProcessNote.objects.select_related("author", "dosing_session")
        .prefetch_related("shares")
        .filter(pk=process_note_id, patient=patient)
        .first()
    )
    if note is not None and note.author_id == actor.user_id:
        return note
    if note is not None and services.may_read_process_note(actor.user, note):
        raise refuse(
            request,
            "Only the author can change a process note or see its earlier versions.",
            patient=patient,
            obj=note,
            detail="process note: not author",
        )
    record_event(
        actor, "denied", patient=patient, object_type="process_notes", detail="process note not found"
    )
    raise Http404


@login_required
def process_edit(request: HttpRequest, patient_id: int, process_note_id: int) -> HttpResponse:
    """The author edits a process note; the text it replaces is kept as an encrypted revision."""
    require_clinic(request, ClinicAction.PROCESS_NOTES)
    patient = open_patient(request, patient_id, Action.EDIT_CLINICAL, audit=None, object_type="process_notes")
    actor = actor_from_request(request)
    note = _own_process_note(request, patient, actor, process_note_id)
    posting = request.method == "POST"
    form = ProcessNoteEditForm(
        request.POST if posting else None,
        initial={"text": services.process_note_text(note), "version": note.version},
    )
    status = 200
    if posting:
        status = 400
        if not form.is_valid():
            _stale_form_hint(form)
        else:
            try:
                services.process_note_edit(
                    actor, note, expected_version=form.cleaned_data["version"], text=form.cleaned_data["text"]
                )
            except ConflictError as exc:
                form.add_error(None, str(exc))
                status = 409
            except DomainError as exc:
                form.add_error("text" if "text" in exc.field_errors else None, exc.message)
            else:
                messages.success(
                    request, "Process note saved (encrypted); the earlier text is kept as a revision."
                )
                return redirect("notes:process_list", patient_id=patient.pk)
        record_event(
            actor,
            "view",
            patient=patient,
            obj=note,
            detail="edit conflict" if status == 409 else "edit refused",
        )
    else:
        record_event(actor, "view", patient=patient, obj=note, detail="edit form")
    return render(
        request,
        "notes/process_edit.html",
        {
            "patient": patient,
            "n": note,
            "form": form,
            "session_url": _session_url(patient.pk, note.dosing_session_id),
        },
        status=status,
    )


@login_required
def process_revisions(request: HttpRequest, patient_id: int, process_note_id: int) -> HttpResponse:
    """The author's view of a process note's earlier texts, newest first."""
    require_clinic(request, ClinicAction.PROCESS_NOTES)
    patient = open_patient(request, patient_id, Action.EDIT_CLINICAL, audit=None, object_type="process_notes")
    actor = actor_from_request(request)
    note = _own_process_note(request, patient, actor, process_note_id)
    record_event(actor, "view", patient=patient, obj=note, detail="revisions")
    revisions = [{"r": r, "text": services.process_note_text(r)} for r in note.revisions.all()]
    return render(
        request,
        "notes/process_revisions.html",
        {"patient": patient, "n": note, "current": services.process_note_text(note), "revisions": revisions},
    )
