from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from kapclinic.core.actor import actor_from_request
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.core.params import id_param, param
from kapclinic.core.request import request_patient
from kapclinic.patients.models import Patient
from kapclinic.policy import ON_READ, Action, ClinicAction, open_patient, require_clinic
from kapclinic.portal import selectors, services
from kapclinic.portal.forms import EntryEditForm, EntryForm, TextsForm
from kapclinic.portal.models import EntryKind, JournalEntry
from kapclinic.scheduling import services as scheduling_services
from kapclinic.scheduling.models import CalendarFeed


def _me(request: HttpRequest, *, audit: str | None = "view", object_type: str = "portal") -> Patient:
    require_clinic(request, ClinicAction.SELF_SERVICE)
    return open_patient(
        request, request_patient(request).pk, Action.SELF_SERVICE, audit=audit, object_type=object_type
    )


@login_required
def index(request: HttpRequest) -> HttpResponse:
    patient = _me(request)
    home = selectors.home(patient)
    return render(request, "portal/index.html", {"patient": patient, **home})


@login_required
def journal(request: HttpRequest) -> HttpResponse:
    posting = request.method == "POST"
    patient = _me(request, audit=ON_READ, object_type="journal")
    actor = actor_from_request(request)
    dosing = services.upcoming_dosing(patient)
    kinds = forms.ChoiceField(choices=EntryKind.choices, required=False)
    initial: dict[str, Any] = {"kind": param(request.GET, "kind", kinds) or "checkin"}
    if (appointment_id := id_param(request.GET, "appointment")) is not None:
        initial["appointment"] = appointment_id
    form = EntryForm(request.POST or None, dosing=dosing, initial=initial)
    status = 200
    if posting:
        status = 400
        if form.is_valid():
            appt = next((a for a in dosing if a.pk == form.cleaned_data["appointment"]), None)
            try:
                entry = services.entry_create(
                    actor,
                    patient,
                    kind=form.cleaned_data["kind"],
                    text=form.cleaned_data["text"],
                    mood=form.cleaned_data["mood"],
                    appointment=appt,
                    share=form.cleaned_data["share"],
                )
            except DomainError as exc:
                for name, errs in exc.field_errors.items():
                    for err in errs:
                        form.add_error(name if name in form.fields else None, err)
            else:
                messages.success(
                    request,
                    "Saved and shared with your care team."
                    if entry.is_shared
                    else "Saved. Only you can read it.",
                )
                # The confirmation prints above the list where the new entry now stands first, and the
                # page opens there: on a phone the top of the page is a long form away from it.
                return redirect(reverse("portal:journal") + "#saved")
        if status == 400:
            from kapclinic.audit.services import record_event

            record_event(actor, "view", patient=patient, object_type="journal", detail="entry refused")
    page = Paginator(selectors.journal(patient), 20).get_page(request.GET.get("page"))
    return render(request, "portal/journal.html", {"form": form, "page": page}, status=status)


def _entry(patient: Patient, entry_id: int) -> JournalEntry:
    entry = (
        JournalEntry.objects.select_related("appointment", "patient")
        .filter(pk=entry_id, patient=patient)
        .first()
    )
    if entry is None:
        raise Http404
    return entry


@login_required
def entry(request: HttpRequest, entry_id: int) -> HttpResponse:
    posting = request.method == "POST"
    patient = _me(request, audit=ON_READ, object_type="journal")
    item = _entry(patient, entry_id)
    actor = actor_from_request(request)
    form = EntryEditForm(
        request.POST or None, initial={"text": item.text, "mood": item.mood, "version": item.version}
    )
    status = 200
    if posting:
        status = 400
        if form.is_valid():
            try:
                services.entry_update(
                    actor,
                    item,
                    expected_version=form.cleaned_data["version"],
                    text=form.cleaned_data["text"],
                    mood=form.cleaned_data["mood"],
                )
            except ConflictError as exc:
                form.add_error(None, str(exc))
                status = 409
            except DomainError as exc:
                for name, errs in exc.field_errors.items():
                    for err in errs:
                        form.add_error(name if name in form.fields else None, err)
            else:
                messages.success(request, "Entry saved.")
                return redirect("portal:entry", entry_id=item.pk)
        from kapclinic.audit.services import record_event

        record_event(actor, "view", patient=patient, obj=item, detail="edit refused")
    return render(request, "portal/entry.html", {"entry": item, "form": form}, status=status)


@login_required
@require_POST
def entry_share(request: HttpRequest, entry_id: int) -> HttpResponse:
    patient = _me(request, audit=None, object_type="journal")
    item = _entry(patient, entry_id)
    actor = actor_from_request(request)
    share = request.POST.get("action") == "share"
    try:
        services.entry_share(actor, item, share=share)
    except DomainError as exc:
        from kapclinic.audit.services import record_event

        record_event(actor, "view", patient=patient, obj=item, detail="share refused")
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            "Shared with your care team."
            if share
            else "Sharing withdrawn. Your care team can no longer see this entry; it is still here for you.",
        )
    if request.POST.get("next") == "journal":
        return redirect("portal:journal")
    return redirect("portal:entry", entry_id=item.pk)


@login_required
def access_log(request: HttpRequest) -> HttpResponse:
    patient = _me(request, object_type="access_log")
    page = Paginator(selectors.access_log(patient), 50).get_page(request.GET.get("page"))
    rows = [
        {
            "at": row["at"],
            "role": selectors.ROLE_LABELS.get(row["actor_role"], row["actor_role"]),
            "action": selectors.ACTION_LABELS.get(row["action"], "Used"),
            "what": selectors.access_log_what(row["object_type"]),
        }
        for row in page.object_list
    ]
    return render(request, "portal/access_log.html", {"page": page, "rows": rows})


@login_required
def calendar(request: HttpRequest) -> HttpResponse:
    posting = request.method == "POST"
    patient = _me(request, audit=ON_READ, object_type="calendar_feed")
    actor = actor_from_request(request)
    url = None
    if posting:
        if request.POST.get("action") == "details":
            if (
                scheduling_services.feed_set_details(
                    actor, patient, show_details=request.POST.get("show_details") == "on"
                )
                is None
            ):
                from kapclinic.audit.services import record_event

                record_event(actor, "view", patient=patient, object_type="calendar_feed", detail="no feed")
                messages.error(request, "Create your calendar address first.")
            else:
                messages.success(request, "Calendar preference saved.")
        else:
            token = scheduling_services.feed_reset(actor, patient=patient)
            url = request.build_absolute_uri(reverse("scheduling:feed", kwargs={"token": token}))
    feed = CalendarFeed.objects.filter(patient=patient).first()
    return render(request, "portal/calendar.html", {"feed": feed, "url": url})


@login_required
def texts(request: HttpRequest) -> HttpResponse:
    """The patient's choice of text messages: number, wanting texts, consent (dated), withdrawal."""
    from kapclinic.audit.services import record_event
    from kapclinic.messaging import services as messaging
    from kapclinic.messaging.models import SmsPreference

    posting = request.method == "POST"
    patient = _me(request, audit=ON_READ, object_type="sms_preference")
    actor = actor_from_request(request)
    pref = SmsPreference.objects.filter(patient=patient).select_related("consent_recorded_by").first()
    in_force = bool(pref and pref.consent_at and pref.stopped_at is None)
    initial = {
        "phone": pref.phone_e164 if pref else patient.phone,
        "wants_sms": bool(pref and pref.wants_sms and in_force),
        "consent": in_force,
    }
    form = TextsForm(initial=initial)
    withdraw_error = ""
    status = 200
    if posting:
        status = 400
        if request.POST.get("action") == "withdraw":
            try:
                messaging.sms_portal_withdraw(actor, patient)
            except DomainError as exc:
                withdraw_error = str(exc)
            else:
                messages.success(request, "Consent withdrawn. The clinic will not text you.")
                return redirect("portal:texts")
        else:
            form = TextsForm(request.POST)
            if form.is_valid():
                try:
                    pref = messaging.sms_portal_update(actor, patient, **form.cleaned_data)
                except DomainError as exc:
                    exc.add_to_form(form)
                else:
                    messages.success(
                        request,
                        "Saved. You will get texts too."
                        if pref.may_text
                        else "Saved. The clinic will not text you.",
                    )
                    return redirect("portal:texts")
        record_event(actor, "view", patient=patient, object_type="sms_preference", detail="texts refused")
    return render(
        request,
        "portal/texts.html",
        {
            "pref": pref,
            "in_force": in_force,
            "form": form,
            "withdraw_error": withdraw_error,
            "portal_stop": messaging.STOP_PORTAL,
        },
        status=status,
    )
