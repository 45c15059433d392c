"""Thin views: permission through kapclinic.policy, writes through services, reads through selectors."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from kapclinic.audit.services import record_event
from kapclinic.clinical.instruments import UnknownInstrumentError, get_instrument
from kapclinic.core import clock
from kapclinic.core.actor import Actor, actor_from_request, client_ip
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.core.request import request_patient
from kapclinic.core.tokens import token_hash
from kapclinic.measures import selectors, services
from kapclinic.measures.forms import AcknowledgeForm, InstrumentForm, SafetyPlanForm, ScheduleForm
from kapclinic.measures.models import (
    InstrumentKey,
    InstrumentResponse,
    MeasureLink,
    MeasurementSchedule,
    ResponseSource,
    SafetyAlert,
    SafetyPlan,
)
from kapclinic.measures.schedule import DEFAULT_RULES
from kapclinic.patients.models import Patient
from kapclinic.policy import ON_READ, Action, ClinicAction, can, open_patient, require_clinic

PAGE_SIZE = 50


def _instrument(key: str) -> Any:
    try:
        return get_instrument(key)
    except UnknownInstrumentError:
        raise Http404 from None


def crisis_context(clinic: Any) -> dict[str, Any]:
    cfg = services.measure_settings(clinic)
    extra = [line.strip() for line in cfg.extra_crisis_resources.splitlines() if line.strip()]
    return {
        "crisis_line": clinic.crisis_line,
        "emergency_number": clinic.emergency_number,
        "clinic_name": clinic.name,
        "clinic_phone": clinic.phone,
        "extra": extra,
    }


# ---------------------------------------------------------------- staff


@login_required
def index(request: HttpRequest) -> HttpResponse:
    """Worklist: open safety alerts (overdue highlighted) and due / overdue measures."""
    require_clinic(request, ClinicAction.CLINICAL_WORK)
    actor = actor_from_request(request)
    alerts = list(selectors.open_alerts(actor)[:100])
    cutoff = selectors.overdue_cutoff(actor.clinic)
    page = Paginator(selectors.due_list(actor), PAGE_SIZE).get_page(request.GET.get("page"))
    record_event(
        actor,
        "list",
        object_type="measures_worklist",
        detail=f"alerts={len(alerts)} due={page.paginator.count}",
    )
    return render(request, "measures/index.html", {"alerts": alerts, "cutoff": cutoff, "page": page})


def _wall(at: Any) -> str:
    """An aware datetime as the clinic's wall-clock time without an offset (``2026-12-05T23:30:00``)."""
    return str(timezone.localtime(at).replace(tzinfo=None).isoformat())


@login_required
def patient(request: HttpRequest, patient_id: int) -> HttpResponse:
    """Trajectories with severity bands, dosing sessions and the change table (baseline and recent rows)."""
    p = open_patient(request, patient_id, Action.VIEW_CLINICAL, object_type="measures")
    actor = actor_from_request(request)
    views = selectors.patient_trajectories(p)
    from kapclinic.measures import hooks

    # The chart reads each time as a wall-clock time: the clinic's, whatever zone the browser is in.
    doses = [_wall(t) for t in hooks.dosing_times([p.pk]).get(p.pk, [])]
    charts = [
        {
            "key": v.key,
            "title": v.title,
            "bands": v.bands,
            "max": v.max_total,
            "cutoff": v.cutoff if not v.bands else None,
            "points": [{"x": _wall(pt.completed_at), "y": pt.total} for pt in v.points],
            "doses": doses,
        }
        for v in views
    ]
    return render(
        request,
        "measures/patient.html",
        {
            "patient": p,
            "views": views,
            "charts": charts,
            "alerts": list(selectors.patient_alerts(p)[:20]),
            "cutoff": selectors.overdue_cutoff(p.clinic_id),
            "can_edit": can(actor, Action.EDIT_CLINICAL, p),
            "instruments": InstrumentKey.choices,
            "has_safety_plan": SafetyPlan.objects.filter(patient=p).exists(),
            "recent_rows": selectors.RECENT_ROWS,
            "page_size": PAGE_SIZE,
        },
    )


@login_required
def history(request: HttpRequest, patient_id: int, instrument: str) -> HttpResponse:
    """Every response of one instrument's open episode, oldest first, PAGE_SIZE rows a page: the change
    table of the trajectory page without the recent-rows limit."""
    p = open_patient(request, patient_id, Action.VIEW_CLINICAL, object_type="measures")
    inst = _instrument(instrument)
    values = selectors.change_table_values(p).filter(instrument=inst.key)
    page = Paginator(values, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "measures/history.html",
        {
            "patient": p,
            "v": selectors.instrument_header(p, inst.key),
            "page": page,
            "rows": selectors.change_rows(page.object_list),
        },
    )


@login_required
def enter(request: HttpRequest, patient_id: int, instrument: str) -> HttpResponse:
    """Staff enter a paper form on the patient's behalf (recorded as such)."""
    p = open_patient(
        request, patient_id, Action.EDIT_CLINICAL, audit="view" if request.method != "POST" else None
    )
    inst = _instrument(instrument)
    actor = actor_from_request(request)
    form = InstrumentForm(inst, request.POST or None, paper=True, birth_date=p.date_of_birth, submission=True)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            day = form.cleaned_data["completed_on"]
            when = min(clock.now(), dt.datetime.combine(day, dt.time(12, 0), tzinfo=clock.now().tzinfo))
            try:
                services.response_submit(
                    actor,
                    p,
                    instrument=inst.key,
                    version=request.POST.get("instrument_version") or None,
                    answers=form.answers(),
                    source=ResponseSource.PAPER,
                    entered_by=actor.user,
                    submission=form.cleaned_data.get("submission") or None,
                    completed_at=when,
                )
            except DomainError as exc:
                for error in exc.messages:
                    form.add_error(None, error)
            else:
                messages.success(request, f"Paper {inst.key} saved.")
                return redirect("measures:patient", patient_id=p.pk)
        status = 400
        record_event(actor, "view", patient=p, object_type="measures", detail="paper form refused")
    return render(request, "measures/enter.html", {"patient": p, "form": form, "inst": inst}, status=status)


@login_required
@require_POST
def send_link(request: HttpRequest, patient_id: int, instrument: str) -> HttpResponse:
    p = open_patient(request, patient_id, Action.EDIT_CLINICAL, audit=None)
    inst = _instrument(instrument)
    actor = actor_from_request(request)
    try:
        services.link_send(actor, p, instrument=inst.key)
    except DomainError as exc:
        record_event(actor, "view", patient=p, object_type="measures", detail="link refused")
        messages.error(request, str(exc))
    else:
        messages.success(request, f"A single-use {inst.key} link was emailed to the patient.")
    return redirect("measures:patient", patient_id=p.pk)


@login_required
def acknowledge(request: HttpRequest, patient_id: int, alert_id: int) -> HttpResponse:
    p = open_patient(
        request, patient_id, Action.EDIT_CLINICAL, audit="view" if request.method != "POST" else None
    )
    alert = get_object_or_404(
        SafetyAlert.objects.select_related("response", "acknowledged_by", "escalated_to"),
        pk=alert_id,
        patient=p,
    )
    actor = actor_from_request(request)
    form = AcknowledgeForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.alert_acknowledge(
                    actor, alert, action=form.cleaned_data["action"], note=form.cleaned_data["note"]
                )
            except DomainError as exc:
                form.add_error(None, str(exc))
                status = 409
            else:
                messages.success(request, "Alert acknowledged and your action recorded.")
                return redirect("measures:patient", patient_id=p.pk)
        else:
            status = 400
        record_event(actor, "view", patient=p, obj=alert, detail="acknowledge refused")
        alert.refresh_from_db()
    return render(
        request,
        "measures/acknowledge.html",
        {"patient": p, "alert": alert, "form": form, "cutoff": selectors.overdue_cutoff(p.clinic_id)},
        status=status,
    )


@login_required
def safety_plan(request: HttpRequest, patient_id: int) -> HttpResponse:
    editing = request.method == "POST"
    p = open_patient(request, patient_id, Action.EDIT_CLINICAL, audit=ON_READ)
    actor = actor_from_request(request)
    plan = SafetyPlan.objects.filter(patient=p).first()
    form = SafetyPlanForm(
        request.POST or None, instance=plan, initial={"version": plan.version if plan else 0}
    )
    status = 200
    if editing:
        if form.is_valid():
            try:
                services.safety_plan_save(
                    actor,
                    p,
                    data={f: form.cleaned_data[f] for f in SafetyPlan.SECTIONS},
                    expected_version=form.cleaned_data.get("version"),
                )
            except ConflictError as exc:
                form.add_error(None, str(exc))
                status = 409
            else:
                messages.success(request, "Safety plan saved; the patient can see it in the portal.")
                return redirect("measures:patient", patient_id=p.pk)
        else:
            status = 400
        record_event(actor, "view", patient=p, object_type="safety_plan", detail="save refused")
    return render(
        request, "measures/safety_plan_edit.html", {"patient": p, "form": form, "plan": plan}, status=status
    )


@login_required
def schedule(request: HttpRequest, patient_id: int) -> HttpResponse:
    editing = request.method == "POST"
    p = open_patient(request, patient_id, Action.EDIT_CLINICAL, audit=ON_READ)
    actor = actor_from_request(request)
    existing = {s.instrument: s for s in MeasurementSchedule.objects.filter(patient=p)}
    forms_by_key = {}
    for key in InstrumentKey.values:
        rule = DEFAULT_RULES[key]
        instance = existing.get(key) or MeasurementSchedule(
            patient=p,
            instrument=key,
            at_intake=rule.at_intake,
            before_each_dosing=rule.before_each_dosing,
            induction_every_days=rule.induction_every_days,
            maintenance_every_days=rule.maintenance_every_days,
        )
        data = request.POST if editing and request.POST.get("instrument") == key else None
        forms_by_key[key] = ScheduleForm(data, instance=instance, prefix=key.replace("-", ""))
    status = 200
    if editing:
        key = request.POST.get("instrument", "")
        form = forms_by_key.get(key)
        if form is None:
            raise Http404
        if form.is_valid():
            fields = {f: form.cleaned_data[f] for f in form.Meta.fields}
            services.schedule_save(actor, p, instrument=key, **fields)
            messages.success(request, f"{key} schedule saved.")
            return redirect("measures:schedule", patient_id=p.pk)
        status = 400
        record_event(actor, "view", patient=p, object_type="measure_schedule", detail="save refused")
    return render(
        request, "measures/schedule.html", {"patient": p, "forms": forms_by_key.items()}, status=status
    )


@login_required
@require_POST
def restart(request: HttpRequest, patient_id: int, instrument: str) -> HttpResponse:
    p = open_patient(request, patient_id, Action.EDIT_CLINICAL, audit=None)
    inst = _instrument(instrument)
    services.episode_restart(actor_from_request(request), p, instrument=inst.key)
    messages.success(request, f"A new {inst.key} episode starts: the next response is its baseline.")
    return redirect("measures:patient", patient_id=p.pk)


@login_required
def outcomes(request: HttpRequest) -> HttpResponse:
    actor = require_clinic(request, ClinicAction.VIEW_OUTCOMES)
    data = selectors.clinic_outcomes_cached(actor.clinic)
    record_event(actor, "list", object_type="clinic_outcomes", detail=f"groups={len(data['instrument'])}")
    tables = [
        ("By instrument", data["instrument"], ""),
        ("By protocol", data["protocol"], "protocol"),
        ("By route", data["route"], "route"),
        ("By indication (ICD-10-CM)", data["indication"], "indication"),
    ]
    return render(request, "measures/outcomes.html", {"tables": tables})


# ---------------------------------------------------------------- patient portal


def _portal_patient(request: HttpRequest, audit: str | None = "view") -> Patient:
    return open_patient(
        request, request_patient(request).pk, Action.SELF_SERVICE, audit=audit, object_type="portal_measures"
    )


@login_required
def my(request: HttpRequest) -> HttpResponse:
    p = _portal_patient(request)
    recent = list(InstrumentResponse.objects.filter(patient=p).order_by("-completed_at", "-id")[:10])
    plan = SafetyPlan.objects.filter(patient=p).first()
    return render(
        request,
        "measures/my.html",
        {
            "patient": p,
            "recent": recent,
            "plan": plan,
            "instruments": InstrumentKey.choices,
            **crisis_context(p.clinic),
        },
    )


@login_required
def my_take(request: HttpRequest, instrument: str) -> HttpResponse:
    p = _portal_patient(request, audit="view" if request.method != "POST" else None)
    inst = _instrument(instrument)
    actor = actor_from_request(request)
    form = InstrumentForm(inst, request.POST or None, submission=True)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                response = services.response_submit(
                    actor,
                    p,
                    instrument=inst.key,
                    version=request.POST.get("instrument_version") or None,
                    answers=form.answers(),
                    source=ResponseSource.PORTAL,
                    entered_by=actor.user,
                    submission=form.cleaned_data.get("submission") or None,
                )
            except DomainError as exc:
                for error in exc.messages:
                    form.add_error(None, error)
            else:
                return redirect("measures:my_done", response_id=response.pk)
        status = 400
        record_event(actor, "view", patient=p, object_type="portal_measures", detail="form refused")
    return render(request, "measures/my_take.html", {"form": form, "inst": inst}, status=status)


@login_required
def my_done(request: HttpRequest, response_id: int) -> HttpResponse:
    p = _portal_patient(request)
    response = get_object_or_404(InstrumentResponse, pk=response_id, patient=p)
    return render(
        request,
        "measures/my_done.html",
        {"response": response, "show_crisis": response.item9_positive, **crisis_context(p.clinic)},
    )


@login_required
def my_safety_plan(request: HttpRequest) -> HttpResponse:
    p = _portal_patient(request)
    plan = SafetyPlan.objects.filter(patient=p).first()
    return render(request, "measures/my_safety_plan.html", {"plan": plan, **crisis_context(p.clinic)})


# ---------------------------------------------------------------- emailed single-use link (anonymous)


def _link_actor(request: HttpRequest, clinic: Any) -> Actor:
    return Actor(
        user=None,
        clinic=clinic,
        role="patient_link",
        request_id=getattr(request, "request_id", ""),
        ip=client_ip(request),
    )


def link(request: HttpRequest, token: str) -> HttpResponse:
    try:
        lnk = services.link_resolve(token)
    except services.LinkError as exc:
        return render(
            request,
            "measures/link_error.html",
            {"message": str(exc), "kind": exc.kind},
            status=410 if exc.kind != "unknown" else 404,
        )
    inst = get_instrument(lnk.instrument)
    form = InstrumentForm(inst, request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.link_submit(token, form.answers(), ip=client_ip(request))
            except services.LinkError as exc:
                return render(
                    request, "measures/link_error.html", {"message": str(exc), "kind": exc.kind}, status=410
                )
            except DomainError as exc:
                for error in exc.messages:
                    form.add_error(None, error)
            else:
                return redirect("measures:link_done", token=token)
        status = 400
    record_event(
        _link_actor(request, lnk.clinic), "view", patient=lnk.patient, obj=lnk, detail="measure link"
    )
    return render(
        request, "measures/link_form.html", {"form": form, "inst": inst, "clinic": lnk.clinic}, status=status
    )


def link_done(request: HttpRequest, token: str) -> HttpResponse:
    lnk = (
        MeasureLink.objects.select_related("response", "clinic", "patient")
        .filter(token_hash=token_hash(token), response__isnull=False)
        .first()
    )
    if lnk is None or lnk.response is None:
        raise Http404
    if clock.now() > lnk.expires_at + dt.timedelta(hours=24):
        return render(
            request,
            "measures/link_error.html",
            {"message": "This page is no longer available.", "kind": "expired"},
            status=410,
        )
    record_event(
        _link_actor(request, lnk.clinic), "view", patient=lnk.patient, obj=lnk, detail="measure link done"
    )
    return render(
        request,
        "measures/link_done.html",
        {"show_crisis": lnk.response.item9_positive, **crisis_context(lnk.clinic)},
    )
