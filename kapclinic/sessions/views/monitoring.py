"""Monitoring: vitals, ratings, session events, alert acknowledgement, a missed timed check explained."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

from kapclinic.clinical.vitals import Reading
from kapclinic.core.actor import Actor
from kapclinic.policy import Action
from kapclinic.sessions import forms as f
from kapclinic.sessions import services
from kapclinic.sessions.models import DosingSession, EventKind, ObservationKind
from kapclinic.sessions.views.page import _run


@login_required
@require_POST
def vitals(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    form = f.VitalsForm(request.POST)

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.vitals_record(actor, session, Reading(**{k: v for k, v in data.items() if v is not None}))

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "vitals_form")


@login_required
@require_POST
def rating(request: HttpRequest, patient_id: int, session_id: int, kind: str) -> HttpResponse:
    form: Any = (
        f.SedationForm(request.POST, prefix="sed")
        if kind == ObservationKind.SEDATION
        else f.DissociationForm(request.POST, prefix="dis")
    )
    key = "sedation_form" if kind == ObservationKind.SEDATION else "dissociation_form"

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.rating_record(actor, session, kind=kind, value=data["value"])

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, key)


@login_required
@require_POST
def event(request: HttpRequest, patient_id: int, session_id: int, kind: str) -> HttpResponse:
    forms_by_kind: dict[str, tuple[type[Form], str, str]] = {
        EventKind.SIDE_EFFECT.value: (f.SideEffectForm, "side_effect_form", "se"),
        EventKind.INTERVENTION.value: (f.InterventionForm, "intervention_form", "iv"),
    }
    form_cls, key, prefix = forms_by_kind.get(kind, (f.NoteForm, "note_form", "obs"))
    form = form_cls(request.POST, prefix=prefix)

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.event_record(actor, session, kind=kind, code=data.get("code", ""), text=data.get("text", ""))

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, key)


@login_required
@require_POST
def acknowledge(request: HttpRequest, patient_id: int, session_id: int, alert_id: int) -> HttpResponse:
    form = f.AckForm(request.POST)
    form.alert_id = alert_id  # the page shows this form's errors beside the alert it was about

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.alert_acknowledge(actor, session, alert_id=alert_id, action=data["action"])

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "ack_form")


@login_required
@require_POST
def missed_check(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """Why a scheduled vitals check was not done; discharge then accepts the gap."""
    form = f.MissedCheckForm(request.POST, prefix="mc")

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.missed_check_explain(actor, session, offset_minutes=data["offset"], text=data["text"])

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "missed_form")
