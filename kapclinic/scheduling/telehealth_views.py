"""Video appointment pages (issue 17): the clinic's video settings, a clinician's personal room, and the
join pages that show the room only in time (staff and patient)."""

from __future__ import annotations

from django import forms
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from kapclinic.audit.services import record_event
from kapclinic.core.actor import actor_from_request
from kapclinic.core.errors import DomainError
from kapclinic.core.forms import KapForm
from kapclinic.core.request import request_patient
from kapclinic.policy import Action, ClinicAction, open_patient, require_clinic
from kapclinic.scheduling import telehealth
from kapclinic.scheduling.models import Appointment, ClinicianRoom, VideoLinkMode
from kapclinic.scheduling.views import _appointment


class TelehealthForm(KapForm):
    mode = forms.ChoiceField(
        label="Video links come from", choices=VideoLinkMode.choices, widget=forms.RadioSelect
    )
    jitsi_pattern = forms.CharField(
        label="Jitsi URL pattern",
        required=False,
        max_length=200,
        help_text="https only; {room} is replaced by a random room name per appointment, "
        "e.g. https://meet.example.org/{room}",
    )
    minutes_before = forms.IntegerField(
        label="Show the link from (minutes before the start)", min_value=0, max_value=120
    )


class RoomForm(KapForm):
    url = forms.CharField(
        label="My personal room URL",
        required=False,
        max_length=300,
        help_text="https only, e.g. your video service's personal meeting room. Leave empty to remove it.",
    )


def _errors(form: forms.Form, exc: DomainError) -> None:
    exc.add_to_form(form)


@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.MANAGE_CLINIC)
    actor = actor_from_request(request)
    conf = telehealth.settings_for(actor.clinic)
    initial = {"mode": conf.mode, "jitsi_pattern": conf.jitsi_pattern, "minutes_before": conf.minutes_before}
    form = TelehealthForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                telehealth.settings_update(actor, **form.cleaned_data)
            except DomainError as exc:
                _errors(form, exc)
            else:
                flash.success(request, "Saved.")
                return redirect(reverse("scheduling:telehealth"))
    return render(request, "scheduling/telehealth.html", {"form": form}, status=status)


@login_required
def my_room(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.CLINICAL_WORK)
    actor = actor_from_request(request)
    current = (
        ClinicianRoom.objects.filter(clinic=actor.clinic, user=actor.user)
        .values_list("url", flat=True)
        .first()
    )
    form = RoomForm(request.POST or None, initial={"url": current or ""})
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                telehealth.room_set(actor, form.cleaned_data["url"])
            except DomainError as exc:
                _errors(form, exc)
            else:
                flash.success(request, "Saved.")
                return redirect(reverse("scheduling:my_room"))
    conf = telehealth.settings_for(actor.clinic)
    return render(request, "scheduling/my_room.html", {"form": form, "conf": conf}, status=status)


def _join(request: HttpRequest, appt: Appointment, template: str) -> HttpResponse:
    link = telehealth.video_link(appt)
    if link is None:
        raise Http404
    return render(request, template, {"a": appt, "link": link})


@login_required
def video(request: HttpRequest, appointment_id: int) -> HttpResponse:
    """Staff: the appointment's room, from the clinic's time before the start until the end."""
    appt = _appointment(request, appointment_id)
    return _join(request, appt, "scheduling/video.html")


@login_required
def my_video(request: HttpRequest, appointment_id: int) -> HttpResponse:
    """The patient's own video appointment (portal)."""
    require_clinic(request, ClinicAction.SELF_SERVICE)
    patient = request_patient(request)
    appt = (
        Appointment.objects.select_related("staff", "clinic")
        .filter(pk=appointment_id, patient=patient, clinic=patient.clinic)
        .first()
    )
    if appt is None:
        raise Http404
    open_patient(request, patient.pk, Action.SELF_SERVICE, audit=None)
    record_event(actor_from_request(request), "view", patient=patient, obj=appt, detail="video link")
    return _join(request, appt, "scheduling/my_video.html")
