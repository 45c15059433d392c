"""Discharge, adverse events, process notes and the REMS record."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from kapclinic.core.actor import Actor, actor_from_request
from kapclinic.policy import Action, can, open_patient
from kapclinic.sessions import forms as f
from kapclinic.sessions import selectors, services
from kapclinic.sessions.models import DosingSession
from kapclinic.sessions.views.page import _run, _session


@login_required
@require_POST
def discharge(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    patient = open_patient(request, patient_id, Action.MONITOR_SESSION, audit=None)
    form = f.DischargeForm(request.POST, protocol=services.protocol_for(_session(patient, session_id)))

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.session_discharge(
            actor,
            session,
            expected_version=data["version"],
            escort_present=data["escort_present"],
            no_driving=data["no_driving"],
            signed=data["signed"],
            ready_to_leave_minutes=data.get("ready_to_leave_minutes"),
            note=data["note"],
        )

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "discharge_form")


@login_required
@require_POST
def adverse_event(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    form = f.AdverseEventForm(request.POST)

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.adverse_event_record(actor, session, **data)

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "ae_form")


@login_required
@require_POST
def process_note(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    form = f.ProcessNoteForm(request.POST, prefix="pn")

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.process_note_add(actor, session, text=data["text"])

    return _run(request, patient_id, session_id, Action.EDIT_CLINICAL, form, do, "process_form")


@login_required
def rems(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    patient = open_patient(request, patient_id, Action.VIEW_CLINICAL)
    session = _session(patient, session_id)
    if not session.protocol_id.startswith("esketamine"):
        return render(
            request, "sessions/rems.html", {"session": session, "patient": patient, "not_rems": True}
        )
    return render(
        request,
        "sessions/rems.html",
        {
            "session": session,
            "patient": patient,
            "r": selectors.rems_record(session),
            "can_monitor": can(actor_from_request(request), Action.MONITOR_SESSION, patient),
        },
    )


@login_required
@require_POST
def rems_submitted(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.rems_mark_submitted(actor, session)

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, None, do)
