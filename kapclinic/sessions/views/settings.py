"""Clinic settings pages kept by prescribers: protocol, alert routing and measure settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from kapclinic.audit.services import record_event
from kapclinic.core.actor import actor_from_request
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.core.params import param
from kapclinic.policy import ClinicAction, clinic_can, require_clinic
from kapclinic.sessions import forms as f
from kapclinic.sessions import selectors, services

# ---------------------------------------------------------------- clinic settings


def _settings_page(
    request: HttpRequest,
    *,
    protocol_id: str | None = None,
    protocol_form: Any = None,
    measures_form: Any = None,
    alerts_form: Any = None,
    errors: list[str] | None = None,
    status: int = 200,
) -> HttpResponse:
    from kapclinic.clinical.protocols import UnknownProtocol, get_protocol, protocol_choices

    actor = actor_from_request(request)
    choices = protocol_choices()
    protocol_id = (
        protocol_id
        or param(request.GET, "protocol", forms.CharField(required=False, max_length=100))
        or choices[0][0].partition("@")[0]
    )
    try:
        protocol = get_protocol(protocol_id)
    except UnknownProtocol:
        raise Http404("No such protocol.") from None
    data = selectors.clinic_settings_context(actor.clinic, protocol.id)
    current = {k: r.value for k, r in data["current"].items()}
    if protocol_form is None:
        protocol_form = f.ProtocolSettingsForm(
            protocol=protocol, current=current, initial={"stamp": data["stamp"]}
        )
    ms = data["measure_settings"]
    if measures_form is None:
        measures_form = f.MeasureSettingsForm(
            initial={name: getattr(ms, name) for name in data["measure_info"]} | {"version": ms.version}
        )
    clinic = actor.clinic
    assert clinic is not None
    if alerts_form is None:
        alerts_form = f.AlertRoutingForm(
            clinic=actor.clinic,
            initial={
                "stamp": data["alerts_stamp"],
                "on_call_prescriber": clinic.on_call_prescriber_id,
                "alert_escalation_hours": clinic.alert_escalation_hours,
            },
        )
    record_event(actor, "view", object_type="clinic_settings", detail=f"protocol={protocol.id}")
    can_edit = clinic_can(actor, ClinicAction.CHANGE_CLINICAL_SETTINGS)
    return render(
        request,
        "sessions/settings.html",
        {
            "protocol": protocol,
            "protocols": [(key.partition("@")[0], title) for key, title in choices],
            "protocol_form": protocol_form,
            "measures_form": measures_form,
            "alerts_form": alerts_form,
            "on_call_set": clinic.on_call_prescriber_id is not None,
            # read only for those who see the name as text (editors pick it from the form's list)
            "on_call": None if can_edit else clinic.on_call_prescriber,
            "current": data["current"],
            "measure_settings": ms,
            "measure_rows": [
                (measures_form[name], label, _choice_label(measures_form, name, default), source)
                for name, (label, default, source, _b) in data["measure_info"].items()
            ],
            "history": data["history"],
            # Values the protocol cannot be used without (issue 18): plans on it are refused until set.
            "required_keys": set(protocol.required_values()),
            "can_edit": can_edit,
            "errors": errors or [],
        },
        status=status,
    )


def _choice_label(form: Any, name: str, value: str) -> str:
    choices = dict(getattr(form.fields[name], "choices", None) or [])
    return str(choices.get(value, value))


@login_required
def clinic_settings(request: HttpRequest) -> HttpResponse:
    """The clinic-owned protocol settings and the measures settings, each with its cited default."""
    require_clinic(request, ClinicAction.VIEW_CLINICAL_SETTINGS)
    return _settings_page(request)


def _save_settings(
    request: HttpRequest,
    form: Form,
    slot: str,
    protocol_id: str | None,
    save: Callable[[dict[str, Any]], list[Any]],
    saved: Callable[[int], str],
) -> HttpResponse:
    """The POST of one settings form of the page (`slot`: protocol_form, alerts_form or measures_form):
    invalid or refused (400) shows the page again with the form's errors and the refusal's sentences at
    the top, a stale stamp or version answers 409, a save says how many settings changed and goes back."""
    if not form.is_valid():
        return _settings_page(
            request, protocol_id=protocol_id, errors=["Please correct the errors below."], status=400,
            **{slot: form},
        )  # fmt: skip
    try:
        changes = save(form.cleaned_data)
    except DomainError as e:
        for field, msgs in e.field_errors.items():
            for m in msgs:
                form.add_error(field if field in form.fields else None, m)
        return _settings_page(request, protocol_id=protocol_id, errors=e.messages, status=400, **{slot: form})
    except ConflictError as e:
        return _settings_page(request, protocol_id=protocol_id, errors=[str(e)], status=409)
    messages.success(request, saved(len(changes)) if changes else "No changes to save.")
    return redirect(reverse("sessions:settings") + (f"?protocol={protocol_id}" if protocol_id else ""))


@login_required
@require_POST
def clinic_settings_protocol(request: HttpRequest, protocol_id: str) -> HttpResponse:
    from kapclinic.clinical.protocols import UnknownProtocol, get_protocol

    require_clinic(request, ClinicAction.CHANGE_CLINICAL_SETTINGS)
    actor = actor_from_request(request)
    try:
        protocol = get_protocol(protocol_id)
    except UnknownProtocol:
        raise Http404("No such protocol.") from None
    current = {
        k: r.value for k, r in selectors.clinic_settings_context(actor.clinic, protocol.id)["current"].items()
    }
    return _save_settings(
        request,
        f.ProtocolSettingsForm(request.POST, protocol=protocol, current=current),
        "protocol_form",
        protocol.id,
        lambda d: services.protocol_settings_update(
            actor, protocol.id, values=d["values"], reason=d["reason"], expected_stamp=d["stamp"]
        ),
        lambda n: f"{n} setting(s) changed for {protocol.title}.",
    )


@login_required
@require_POST
def clinic_settings_alerts(request: HttpRequest) -> HttpResponse:
    """The on-call prescriber and the safety-alert escalation time."""
    require_clinic(request, ClinicAction.CHANGE_CLINICAL_SETTINGS)
    actor = actor_from_request(request)
    return _save_settings(
        request,
        f.AlertRoutingForm(request.POST, clinic=actor.clinic),
        "alerts_form",
        request.POST.get("protocol") or None,
        lambda d: services.alert_routing_update(
            actor,
            on_call=d["on_call_prescriber"],
            escalation_hours=d["alert_escalation_hours"],
            reason=d["reason"],
            expected_stamp=d["stamp"],
        ),
        lambda n: f"{n} safety-alert setting(s) changed.",
    )


@login_required
@require_POST
def clinic_settings_measures(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.CHANGE_CLINICAL_SETTINGS)
    actor = actor_from_request(request)
    form = f.MeasureSettingsForm(request.POST)
    return _save_settings(
        request,
        form,
        "measures_form",
        param(request.POST, "protocol", forms.CharField(required=False, max_length=100)) or None,
        lambda d: services.measure_settings_update(
            actor, values=form.values(), reason=d["reason"], expected_version=d["version"]
        ),
        lambda n: f"{n} measure setting(s) changed.",
    )
