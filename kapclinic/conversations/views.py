"""Secure messaging pages: the patient's (portal) and the care team's (staff)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django import forms
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.files.uploadedfile import UploadedFile
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from kapclinic.accounts.models import CLINICAL_ROLES, Membership, Role, User
from kapclinic.audit.services import record_event
from kapclinic.conversations import selectors, services
from kapclinic.conversations.forms import (
    AssignForm,
    AttachmentFileForm,
    NewThreadForm,
    ReplyForm,
    SettingsForm,
    StaffNewThreadForm,
)
from kapclinic.conversations.models import Attachment, Message, Thread, ThreadKind
from kapclinic.core.actor import Actor, actor_from_request
from kapclinic.core.errors import DomainError
from kapclinic.core.params import param
from kapclinic.core.request import request_patient
from kapclinic.documents.services import Upload
from kapclinic.documents.views import attachment as file_response
from kapclinic.patients.models import Patient
from kapclinic.policy import (
    ON_READ,
    Action,
    ClinicAction,
    clinic_can,
    open_patient,
    read_audit,
    require_clinic,
)

#: The staff who read and answer messages (front desk and admins: none; messages are clinical data).
SHOW = forms.ChoiceField(
    choices=[
        ("open", "open"),
        ("mine", "mine"),
        ("unassigned", "unassigned"),
        ("waiting", "waiting"),
        ("done", "done"),
    ],
    required=False,
)


T = TypeVar("T")


def _send(
    actor: Actor, form: forms.Form, send: Callable[[dict[str, Any]], T], about: Thread | Patient
) -> T | None:
    """Hand a valid POSTed message form to `send` and return what it made. Otherwise (None) the reasons
    are on the form and the refusal is audited as a view of `about` (a thread, or a patient's messages)."""
    if form.is_valid():
        try:
            return send(form.cleaned_data)
        except DomainError as exc:
            exc.add_to_form(form)
    if isinstance(about, Thread):
        record_event(actor, "view", patient=about.patient, obj=about, detail="message refused")
    else:
        record_event(actor, "view", patient=about, object_type="messages", detail="message refused")
    return None


def _uploads(form: forms.Form) -> list[Upload]:
    """The files sent with the message, in the order chosen (checked by the service under the chart's
    rules)."""
    files: list[UploadedFile] = form.cleaned_data.get("file") or []
    return [Upload(fh=f.file, name=f.name or "", size=f.size or 0) for f in files]  # type: ignore[arg-type]


def _messages(thread: Thread) -> object:
    return thread.messages.select_related("author").prefetch_related("attachments")


def _download(
    request: HttpRequest, thread: Thread, attachment_id: int, back: str
) -> HttpResponse | FileResponse:
    """An attachment of `thread` (already opened through the policy): 404 when it is not this thread's;
    sent as a download (never shown inside the site) and audited as a view."""
    item = Attachment.objects.filter(
        pk=attachment_id, message__thread=thread, clinic_id=thread.clinic_id
    ).first()
    if item is None:
        raise Http404
    try:
        fh = services.open_attachment(actor_from_request(request), item, patient=thread.patient)
    except DomainError as exc:
        record_event(actor_from_request(request), "view", patient=thread.patient, obj=item, detail="missing")
        flash.error(request, str(exc))
        return redirect(back)
    return file_response(fh, item.name, item.content_type)


# --- the patient's pages -------------------------------------------------------------------------


def _me(request: HttpRequest, *, audit: str | None = "view") -> Patient:
    require_clinic(request, ClinicAction.SELF_SERVICE)
    return open_patient(
        request, request_patient(request).pk, Action.SELF_SERVICE, audit=audit, object_type="messages"
    )


def _my_thread(request: HttpRequest, thread_id: int, *, audit: str | None) -> Thread:
    """One of the patient's own threads (the patient opened through the policy; 404 when not theirs)."""
    patient = _me(request, audit=audit)
    thread = (
        selectors.visible_threads(actor_from_request(request)).filter(pk=thread_id, patient=patient).first()
    )
    if thread is None:
        raise Http404
    thread.patient = patient
    return thread


@login_required
def my(request: HttpRequest) -> HttpResponse:
    posting = request.method == "POST"
    patient = _me(request, audit=ON_READ)
    actor = actor_from_request(request)
    form = NewThreadForm(request.POST or None, request.FILES or None)
    if posting:
        thread = _send(
            actor,
            form,
            lambda d: services.thread_start(
                actor,
                patient,
                kind=ThreadKind.PATIENT,
                subject=d["subject"],
                body=d["body"],
                attachments=_uploads(form),
            ),
            patient,
        )
        if thread is not None:
            flash.success(request, "Sent to your care team.")
            return redirect(reverse("conversations:my_thread", kwargs={"thread_id": thread.pk}) + "#latest")
    assert actor.user is not None
    threads = selectors.with_unread(selectors.visible_threads(actor), actor.user.pk).order_by(
        "-last_message_at"
    )
    page = Paginator(threads, 20).get_page(request.GET.get("page"))
    for t in page:
        t.unread = selectors.is_unread(t, actor.user.pk)
    return render(
        request,
        "conversations/my.html",
        {"form": form, "page": page, "reply_hours": services.reply_hours(patient.clinic)},
        status=400 if posting else 200,
    )


@login_required
def my_thread(request: HttpRequest, thread_id: int) -> HttpResponse:
    posting = request.method == "POST"
    thread = _my_thread(request, thread_id, audit=ON_READ)
    actor = actor_from_request(request)
    form = ReplyForm(request.POST or None, request.FILES or None)
    if posting:
        sent = _send(
            actor,
            form,
            lambda d: services.message_post(actor, thread, body=d["body"], attachments=_uploads(form)),
            thread,
        )
        if sent is not None:
            flash.success(request, "Sent to your care team.")
            return redirect(request.path + "#latest")
    assert actor.user is not None
    services.mark_read(actor.user, thread)
    return render(
        request,
        "conversations/my_thread.html",
        {
            "thread": thread,
            "thread_messages": _messages(thread),
            "form": form,
            "reply_hours": services.reply_hours(thread.patient.clinic),
        },
        status=400 if posting else 200,
    )


@login_required
def my_attachment(request: HttpRequest, thread_id: int, attachment_id: int) -> HttpResponse | FileResponse:
    """A file sent in one of the patient's own threads."""
    thread = _my_thread(request, thread_id, audit=None)
    return _download(request, thread, attachment_id, reverse("conversations:my_thread", args=[thread.pk]))


# --- the care team's pages -----------------------------------------------------------------------


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.READ_MESSAGES)
    actor = actor_from_request(request)
    assert actor.user is not None
    show = param(request.GET, "show", SHOW) or "open"
    page = Paginator(selectors.inbox(actor, show), 50).get_page(request.GET.get("page"))
    for t in page:
        t.unread = selectors.is_unread(t, actor.user.pk)
    record_event(
        actor, "list", object_type="conversations.thread", detail=f"show={show} n={len(page.object_list)}"
    )
    return render(
        request,
        "conversations/inbox.html",
        {
            "page": page,
            "show": show,
            "extra_query": f"show={show}",
            "reply_hours": services.reply_hours(actor.clinic),
            "unread": selectors.unread_count(actor),
            "may_settings": clinic_can(actor, ClinicAction.MESSAGING_SETTINGS),
        },
    )


@login_required
def patient_threads(request: HttpRequest, patient_id: int) -> HttpResponse:
    posting = request.method == "POST"
    patient = open_patient(
        request,
        patient_id,
        Action.EDIT_CLINICAL if posting else Action.VIEW_CLINICAL,
        audit=ON_READ,
        object_type="messages",
    )
    actor = actor_from_request(request)
    assert actor.user is not None
    form = StaffNewThreadForm(request.POST or None, request.FILES or None)
    if posting:
        thread = _send(
            actor,
            form,
            lambda d: services.thread_start(
                actor,
                patient,
                kind=d["kind"],
                subject=d["subject"],
                body=d["body"],
                attachments=_uploads(form),
            ),
            patient,
        )
        if thread is not None:
            flash.success(request, "Message sent.")
            return redirect(_thread_url(thread) + "#latest")
    threads = selectors.with_unread(Thread.objects.filter(patient=patient), actor.user.pk).select_related(
        "assigned_to"
    )
    page = Paginator(threads.order_by("-last_message_at", "-id"), 50).get_page(request.GET.get("page"))
    for t in page:
        t.unread = selectors.is_unread(t, actor.user.pk)
    return render(
        request,
        "conversations/patient.html",
        {"patient": patient, "page": page, "form": form},
        status=400 if posting else 200,
    )


def _thread_url(thread: Thread) -> str:
    return reverse("conversations:thread", kwargs={"patient_id": thread.patient_id, "thread_id": thread.pk})


def _staff_thread(
    request: HttpRequest, patient_id: int, thread_id: int, action: Action, audit: str | None
) -> Thread:
    patient = open_patient(request, patient_id, action, audit=None, object_type="messages")
    thread = (
        Thread.objects.select_related("assigned_to", "done_by").filter(pk=thread_id, patient=patient).first()
    )
    if thread is None:
        raise Http404
    thread.patient = patient
    audit = read_audit(request, audit)
    if audit:
        record_event(actor_from_request(request), audit, patient=patient, obj=thread)
    return thread


def _assignable(thread: Thread) -> list[tuple[int, str]]:
    """Clinicians who may open this patient's chart: prescribers and nurses of the clinic, therapists
    on the care team."""
    rows = (
        Membership.objects.filter(clinic_id=thread.clinic_id, is_active=True, role__in=CLINICAL_ROLES)
        .select_related("user")
        .order_by("user__full_name")
    )
    team = set(thread.patient.care_team.values_list("user_id", flat=True))
    return [
        (m.user_id, f"{m.user.full_name} ({m.get_role_display()})")
        for m in rows
        if m.user.is_active and (m.role != Role.THERAPIST or m.user_id in team)
    ]


@login_required
def thread(request: HttpRequest, patient_id: int, thread_id: int) -> HttpResponse:
    posting = request.method == "POST"
    item = _staff_thread(
        request,
        patient_id,
        thread_id,
        Action.EDIT_CLINICAL if posting else Action.VIEW_CLINICAL,
        ON_READ,
    )
    actor = actor_from_request(request)
    assert actor.user is not None
    form = ReplyForm(request.POST or None, request.FILES or None)
    if posting:
        sent = _send(
            actor,
            form,
            lambda d: services.message_post(actor, item, body=d["body"], attachments=_uploads(form)),
            item,
        )
        if sent is not None:
            flash.success(request, "Reply sent." if item.kind == ThreadKind.PATIENT else "Message sent.")
            return redirect(request.path + "#latest")
    services.mark_read(actor.user, item)
    return render(
        request,
        "conversations/thread.html",
        {
            "thread": item,
            "patient": item.patient,
            "thread_messages": _messages(item),
            "form": form,
            "attachment_form": AttachmentFileForm(),
            "assign_form": AssignForm(
                choices=_assignable(item), initial={"assigned_to": item.assigned_to_id}
            ),
            "reply_hours": services.reply_hours(actor.clinic),
        },
        status=400 if posting else 200,
    )


@login_required
def attachment(
    request: HttpRequest, patient_id: int, thread_id: int, attachment_id: int
) -> HttpResponse | FileResponse:
    """A file sent in a thread about the patient (clinicians who may read the thread)."""
    item = _staff_thread(request, patient_id, thread_id, Action.VIEW_CLINICAL, None)
    return _download(request, item, attachment_id, _thread_url(item))


@login_required
@require_POST
def file_attachment(
    request: HttpRequest, patient_id: int, thread_id: int, attachment_id: int
) -> HttpResponse:
    """File a copy of a message's file into the chart's documents (a clinical document)."""
    item = _staff_thread(request, patient_id, thread_id, Action.EDIT_CLINICAL, None)
    att = Attachment.objects.filter(pk=attachment_id, message__thread=item, clinic_id=item.clinic_id).first()
    if att is None:
        raise Http404
    actor = actor_from_request(request)
    form = AttachmentFileForm(request.POST)
    if not form.is_valid():
        record_event(actor, "view", patient=item.patient, obj=att, detail="file refused")
        flash.error(request, "File as: choose a clinical kind of document.")
        return redirect(_thread_url(item))
    try:
        doc = services.attachment_to_chart(
            actor, att, patient=item.patient, category=form.cleaned_data["category"]
        )
    except DomainError as exc:
        record_event(actor, "view", patient=item.patient, obj=att, detail="file refused")
        flash.error(request, str(exc))
        return redirect(_thread_url(item))
    flash.success(request, f"“{att.name}” is filed in the chart's documents.")
    return redirect("documents:detail", patient_id=item.patient_id, document_id=doc.pk)


@login_required
@require_POST
def assign(request: HttpRequest, patient_id: int, thread_id: int) -> HttpResponse:
    item = _staff_thread(request, patient_id, thread_id, Action.EDIT_CLINICAL, None)
    actor = actor_from_request(request)
    form = AssignForm(request.POST, choices=_assignable(item))
    if not form.is_valid():
        flash.error(request, "Assign to: choose a clinician from the list.")
        return redirect(_thread_url(item))
    user_id = form.cleaned_data["assigned_to"]
    user = User.objects.filter(pk=user_id).first() if user_id else None
    try:
        services.assign(actor, item, user=user)
    except DomainError as exc:
        flash.error(request, exc.message)
    else:
        flash.success(request, f"Assigned to {user.full_name}." if user else "Nobody is assigned now.")
    return redirect(_thread_url(item))


@login_required
@require_POST
def done(request: HttpRequest, patient_id: int, thread_id: int) -> HttpResponse:
    item = _staff_thread(request, patient_id, thread_id, Action.EDIT_CLINICAL, None)
    reopen = request.POST.get("action") == "reopen"
    services.set_done(actor_from_request(request), item, done=not reopen)
    flash.success(request, "Reopened." if reopen else "Marked done.")
    return redirect(_thread_url(item) if reopen else reverse("conversations:inbox"))


@login_required
@require_POST
def file_message(request: HttpRequest, patient_id: int, thread_id: int, message_id: int) -> HttpResponse:
    item = _staff_thread(request, patient_id, thread_id, Action.EDIT_CLINICAL, None)
    message = Message.objects.filter(pk=message_id, thread=item).first()
    if message is None:
        raise Http404
    try:
        note = services.file_to_chart(actor_from_request(request), message)
    except DomainError as exc:
        flash.error(request, exc.message)
        return redirect(_thread_url(item))
    flash.success(request, "A draft note quoting the message was added to the chart: complete and sign it.")
    return redirect(reverse("notes:detail", kwargs={"patient_id": item.patient_id, "note_id": note.pk}))


@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.MESSAGING_SETTINGS)
    actor = actor_from_request(request)
    form = SettingsForm(request.POST or None, initial={"reply_hours": services.reply_hours(actor.clinic)})
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                services.settings_update(actor, hours=form.cleaned_data["reply_hours"])
            except DomainError as exc:
                exc.add_to_form(form)
            else:
                flash.success(request, "Saved. Patients now see the new reply time.")
                return redirect(reverse("conversations:settings"))
    return render(request, "conversations/settings.html", {"form": form}, status=status)
