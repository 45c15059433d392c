"""Starting a session and the gate: the list, a new session, starting from an appointment, the simple
transitions and abort, the pre-dose checks, their overrides and passing the gate."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from kapclinic.audit.services import record_event
from kapclinic.clinical.session_state import STATE_LABELS, Event
from kapclinic.core import clock
from kapclinic.core.actor import Actor, actor_from_request
from kapclinic.core.errors import DomainError
from kapclinic.policy import Action, ClinicAction, clinic_can, open_patient, require_clinic
from kapclinic.scheduling.models import Appointment
from kapclinic.sessions import forms as f
from kapclinic.sessions import selectors, services
from kapclinic.sessions.models import DosingSession
from kapclinic.sessions.views.page import _run, _session


@login_required
def index(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.CLINICAL_WORK)
    actor = actor_from_request(request)
    today = clock.today()
    todays = selectors.with_protocol_titles(selectors.clinic_sessions(actor, today))
    recent = Paginator(selectors.clinic_sessions(actor).exclude(pk__in=[s.pk for s in todays]).reverse(), 25)
    page = recent.get_page(request.GET.get("page"))
    page.object_list = selectors.with_protocol_titles(page.object_list)
    overdue = list(selectors.rems_overdue(actor)[:50])
    not_started = selectors.appointments_not_started(actor, today)
    record_event(actor, "list", object_type="kap_sessions.dosingsession", detail=f"today:{len(todays)}")
    return render(
        request,
        "sessions/index.html",
        {
            "todays": todays,
            "page": page,
            "overdue": overdue,
            "today": today,
            "labels": STATE_LABELS,
            "not_started": not_started,
            "can_start": clinic_can(actor, ClinicAction.RUN_SESSIONS),
        },
    )


@login_required
def new(request: HttpRequest, patient_id: int) -> HttpResponse:
    if request.method == "POST":
        patient = open_patient(request, patient_id, Action.MONITOR_SESSION, audit=None)
        form = f.NewSessionForm(request.POST)
        if form.is_valid():
            session = services.session_create(
                actor_from_request(request),
                patient,
                protocol_key=form.cleaned_data["protocol"],
                scheduled_for=form.cleaned_data["scheduled_for"],
            )
            return redirect("sessions:detail", patient_id=patient.pk, session_id=session.pk)
        record_event(actor_from_request(request), "view", patient=patient, object_type="chart")
        return render(
            request,
            "sessions/new.html",
            {"patient": patient, "form": form, "appointments": selectors.startable_appointments(patient)},
            status=400,
        )
    patient = open_patient(request, patient_id, Action.MONITOR_SESSION)
    from kapclinic.treatment.selectors import signed_plan

    plan = signed_plan(patient)
    initial = {"scheduled_for": timezone.localtime(clock.now()).strftime(f.DT_FORMAT)}
    if plan is not None:
        initial["protocol"] = f"{plan.protocol_id}@{plan.protocol_version}"
    form = f.NewSessionForm(initial=initial)
    return render(
        request,
        "sessions/new.html",
        {
            "patient": patient,
            "form": form,
            "plan": plan,
            "appointments": selectors.startable_appointments(patient),
        },
    )


@login_required
@require_POST
def start_from_appointment(request: HttpRequest, appointment_id: int) -> HttpResponse:
    """The nurse's "start session" on a dosing appointment (chair board, schedule, sessions list): the
    session is created from the appointment and linked to it; a second start opens the first."""
    appt = (
        Appointment.objects.select_related("patient")
        .filter(pk=appointment_id, clinic=getattr(request, "clinic", None))
        .first()
    )
    if appt is None:
        raise Http404
    patient = open_patient(
        request, appt.patient_id, Action.MONITOR_SESSION, audit=None, object_type="kap_sessions.dosingsession"
    )
    actor = actor_from_request(request)
    try:
        session, created = services.session_start_from_appointment(actor, appt)
    except DomainError as e:
        record_event(actor, "view", patient=patient, obj=appt, detail="session start refused")
        messages.error(request, " ".join(e.messages))
        # Back where the nurse pressed "Start session" (the chair board sends its own address), else
        # the appointment page; only a local address is followed.
        back = request.POST.get("next", "")
        if back and url_has_allowed_host_and_scheme(
            back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return redirect(back)
        return redirect("scheduling:detail", appointment_id=appt.pk)
    if not created:
        record_event(actor, "view", patient=patient, obj=session, detail="session already started")
        messages.info(request, "The session for this appointment was already started; here it is.")
    return redirect("sessions:detail", patient_id=patient.pk, session_id=session.pk)


@login_required
@require_POST
def transition(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    form = f.TransitionForm(request.POST)

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.session_transition(
            actor,
            session,
            Event(data["event"]),
            expected_version=data["version"],
            partial_reason=data.get("partial_reason") or "",
        )

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do)


@login_required
@require_POST
def abort(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    from kapclinic.inventory.witness import confirm

    patient = open_patient(request, patient_id, Action.MONITOR_SESSION, audit=None)
    running = selectors.infusion_running(_session(patient, session_id))  # issue 14: stop, amount, waste
    form = f.AbortForm(request.POST, infusion=running)

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        keys = ("stopped_at", "infused_amount", "infused_unit")
        stop = {k: data[k] for k in keys if data.get(k) not in (None, "")}
        if data.get("witness_email") or data.get("witness_password"):  # the witness signs in (issue 14)
            stop["witness"] = confirm(request, actor, data)
        services.session_transition(
            actor,
            session,
            Event.ABORT,
            expected_version=data["version"],
            reason=data["reason"],
            infusion=stop,
        )

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "abort_form")


@login_required
@require_POST
def gate(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    patient = open_patient(request, patient_id, Action.MONITOR_SESSION, audit=None)
    session = _session(patient, session_id)
    form = f.GateForm(request.POST, protocol=services.protocol_for(session))

    def do(actor: Actor, s: DosingSession, data: dict[str, Any]) -> None:
        values = {k: v for k, v in data.items() if k in services.GATE_FIELDS}
        for k in (
            "escort_name",
            "escort_phone",
            "intention",
            "phq9_waiver_reason",
            "pregnancy_status",
            "nasal_steroid",
        ):
            if k in values and values[k] is None:
                values[k] = ""
        s = services.gate_update(actor, s, expected_version=data["version"], values=values)
        if request.POST.get("confirm"):
            services.gate_pass(actor, s, expected_version=s.version)

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "gate_form")


@login_required
@require_POST
def gate_pass(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    form = f.VersionForm(request.POST)

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.gate_pass(actor, session, expected_version=data["version"])

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do)


@login_required
@require_POST
def override(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    form = f.OverrideForm(request.POST)

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.gate_override(actor, session, item=data["item"], reason=data["reason"])

    return _run(request, patient_id, session_id, Action.PRESCRIBE, form, do, "override_form")
