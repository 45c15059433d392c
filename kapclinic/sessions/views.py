"""Thin views for dosing sessions: permission (policy) -> form -> service -> render."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from kapclinic.audit.services import record_event
from kapclinic.clinical.session_state import GATE_LABELS, STATE_LABELS, Event, State
from kapclinic.clinical.vitals import Reading
from kapclinic.core import clock
from kapclinic.core.actor import Actor, actor_from_request
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.core.params import param
from kapclinic.policy import Action, ClinicAction, can, clinic_can, open_patient, require_clinic
from kapclinic.scheduling.models import Appointment
from kapclinic.sessions import forms as f
from kapclinic.sessions import selectors, services
from kapclinic.sessions.models import DosingSession, EventKind, ObservationKind

MONITOR_STATES = {State.DOSING, State.MONITORING, State.RECOVERY}


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
                form.cleaned_data["protocol"],
                form.cleaned_data["scheduled_for"],
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


def _session(patient: Any, session_id: int) -> DosingSession:
    """The patient's session, with its clinic and appointment. The patient is the one the permission
    check just read (not read again in a join), and its clinic is the session's (issue #7)."""
    session = get_object_or_404(
        DosingSession.objects.select_related("clinic", "appointment__resource"),
        pk=session_id,
        patient=patient,
    )
    session.patient = patient
    if patient.clinic_id == session.clinic_id and not type(patient).clinic.is_cached(patient):
        patient.clinic = session.clinic
    return session


def _context(
    request: HttpRequest, session: DosingSession, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    actor = actor_from_request(request)
    protocol = services.protocol_for(session)
    state = State(session.state)
    patient = session.patient
    # What the page reads of the session's record (administration, observations, alerts), once each.
    record = selectors.SessionRecord(session)
    ctx: dict[str, Any] = {
        "patient": patient,
        "session": session,
        "protocol": protocol,
        "state": state,
        "state_label": STATE_LABELS[state],
        "role": actor.role,
        "can_monitor": can(actor, Action.MONITOR_SESSION, patient),
        "can_prescribe": can(actor, Action.PRESCRIBE, patient),
        "can_process_notes": clinic_can(actor, ClinicAction.PROCESS_NOTES),
        "now": clock.now(),
    }
    gate_overrides: list[Any] | None = None
    if state in (State.SCHEDULED, State.CHECKED_IN):
        # Each fact the pre-dose panel and its gate read, once: the chart's current medications and the
        # intake assessment (with the eligibility decision) for the flagged medications and the
        # eligibility check, the consent state (its two rows without the documents' text), the baseline
        # reading, the gate overrides. The gate evaluates every check it always did, on these facts.
        from kapclinic.consent.selectors import consent_summary
        from kapclinic.intake.selectors import eligibility_summary
        from kapclinic.patients.selectors import active_medications

        meds = active_medications(patient)
        assessment, eligibility = eligibility_summary(patient, meds)
        chart_flagged = selectors.chart_flagged_medications(patient, assessment=assessment, meds=meds)
        baseline = services.baseline_reading(session)
        gate_overrides = list(session.gate_overrides.select_related("by"))
        initial = _gate_initial(session)
        if not session.medication_changes_reviewed and not session.flagged_medication_classes:
            initial["flagged_medication_classes"] = sorted({cls for _name, cls, _label in chart_flagged})
        ctx["chart_flagged"] = chart_flagged
        ctx["gate_form"] = f.GateForm(protocol=protocol, initial=initial)
        ctx["gate"] = services.gate_result(
            session,
            protocol,
            overrides=gate_overrides,
            eligibility=eligibility,
            consent=consent_summary(patient),
            baseline=baseline,
        )
        ctx["vitals_form"] = f.VitalsForm()
        ctx["baseline"] = baseline
        ctx["override_form"] = f.OverrideForm()
    if state is State.PREDOSE_PASSED:
        ctx.update(
            _dose_card_context(actor, session, protocol, record, ctx["can_monitor"], ctx["can_prescribe"])
        )
    dosed_then_aborted = state is State.ABORTED and session.first_dose_at is not None  # the dose given
    if state in MONITOR_STATES or state is State.DISCHARGED or dosed_then_aborted:
        ctx["administration"] = record.admin
        ctx["superseded_orders"] = list(
            session.superseded_orders.select_related("ordered_by", "superseded_by", "cosigned_by")
        )
    gaps = services.protocol_gaps_sentence(protocol)
    if gaps and state not in (State.DISCHARGED, State.ABORTED):
        ctx["protocol_gaps"] = gaps
        ctx["settings_url"] = services.settings_url(protocol.id)
    if state in MONITOR_STATES or state in (State.DISCHARGED, State.ABORTED):
        ctx["given"] = selectors.given_record(session, protocol, record)
    if state is State.DOSING:
        now_text = timezone.localtime(clock.now()).strftime(f.DT_SECONDS)
        ctx["device_form"] = f.DeviceForm(prefix="dev", initial={"version": session.version, "at": now_text})
        ctx["infusion_form"] = f.InfusionStopForm(
            prefix="inf", initial={"version": session.version, "stopped_at": now_text}
        )
        ctx["lozenge_form"] = f.LozengeForm(prefix="loz", initial={"version": session.version})
    if state in MONITOR_STATES:
        ctx.update(_monitor_context(session, protocol, record))
    if state is State.RECOVERY:
        ctx["discharge_form"] = f.DischargeForm(protocol=protocol, initial={"version": session.version})
        ctx["discharge_preview"] = services.discharge_decision(
            session, escort_present=True, no_driving=True, signed=True, record=record
        )
    if state in (State.DISCHARGED, State.ABORTED):
        ctx["timeline"] = selectors.monitoring_timeline(session, record)
    if state not in (State.DISCHARGED, State.ABORTED):
        now_text = timezone.localtime(clock.now()).strftime(f.DT_SECONDS)
        # issue 14: aborting a running IV infusion records its stop, the amount infused and the waste
        running = state is State.DOSING and selectors.infusion_running(session, admin=record.admin)
        ctx["abort_form"] = f.AbortForm(
            initial={"version": session.version, "stopped_at": now_text}, infusion=running
        )
    if state is not State.SCHEDULED:
        ctx["ae_form"] = f.AdverseEventForm(
            initial={"onset_at": timezone.localtime(clock.now()).strftime(f.DT_FORMAT)}
        )
        ctx["adverse_events"] = list(session.adverse_events.select_related("recorded_by"))
    if ctx["can_process_notes"]:
        # Encrypted psychotherapy process notes (notes app) linked to this session, only those this
        # user wrote or that were shared with them; never on the monitoring record or the REMS view.
        ctx["process_notes"] = selectors.session_process_notes(actor, session)
        ctx["process_form"] = f.ProcessNoteForm(prefix="pn")
    if gate_overrides is None:
        gate_overrides = list(session.gate_overrides.select_related("by"))
    ctx["overrides"] = [{"label": GATE_LABELS.get(o.item, o.item), "o": o} for o in gate_overrides]
    ctx.update(_stock_context(session, state, protocol))
    ctx.update(overrides or {})
    return ctx


def _stock_context(session: DosingSession, state: State, protocol: Any) -> dict[str, Any]:
    """Controlled-substance stock on the session page (issue 14): the container choice when dosing
    starts, then what was drawn, its waste and the used devices' disposal."""
    from kapclinic.inventory import services as inventory

    form = protocol.dose.form
    if form not in inventory.STOCKED_FORMS:
        return {}
    ctx: dict[str, Any] = {"stocked": True}
    if state is State.PREDOSE_PASSED:
        containers = inventory.stock_for_form(session.clinic, form)
        ctx["stock_containers"] = containers
        ctx["start_form"] = f.StockStartDosingForm(
            containers=containers, vial=form != "nasal_device", initial={"version": session.version}
        )
    elif state is not State.SCHEDULED and state is not State.CHECKED_IN:
        statuses = inventory.draw_statuses(session)
        ctx["stock_draws"] = statuses
        ctx["stock_open"] = [st for st in statuses if st.unaccounted > 0 or st.disposal_needed]
        # one form of each kind at a time (the first draw that needs it): no field is printed twice
        ctx["stock_next_waste"] = next(
            (st for st in statuses if st.unaccounted > 0 and not st.unused_devices), None
        )
        ctx["stock_next_unused"] = next((st for st in statuses if st.unused_devices), None)
        ctx["stock_next_disposal"] = next((st for st in statuses if st.disposal_needed), None)
        ctx["waste_form"] = f.SessionWasteForm(prefix="waste")
        ctx["disposal_form"] = f.DeviceDisposalForm(prefix="disp")
        ctx["unused_form"] = f.UnusedDevicesForm(prefix="unused")
        ctx["stock_dosing"] = state is State.DOSING
        ctx["stock_devices"] = form == "nasal_device"
    return ctx


#: Seconds between two refreshes of the dose card while it shows its reader nothing to type into
#: (waiting for the prescriber's order, the double-check, the co-signature or the colleague who gives it).
DOSE_CARD_POLL_SECONDS = 12


def _dose_card_context(
    actor: Actor,
    session: DosingSession,
    protocol: Any,
    record: selectors.SessionRecord,
    can_monitor: bool,
    can_prescribe: bool,
) -> dict[str, Any]:
    """What sessions/_dose.html prints once the pre-dose checks have passed, for the page and for the
    card's own refresh: the hand-off (who does what next), the order and the superseded orders, the
    forms this person may use. "Start dosing" is offered only once the dose can be started by this
    person (ordered, co-signed when above the maximum, double-checked by someone else when required).
    While the card offers nothing to type into, it refreshes itself (``dose_poll``): the nurse waiting
    for the order sees it arrive without reloading; the refresh stops when the card has a form."""
    from kapclinic.inventory import services as inventory

    admin = record.admin
    double_check = protocol.dose.double_check_required
    startable = (
        admin is not None
        and can_monitor
        and not admin.awaiting_cosign
        and (not double_check or admin.double_checked_by_id not in (None, actor.user_id))
    )
    ctx: dict[str, Any] = {
        "handoff": selectors.dose_handoff(
            admin,
            double_check_required=double_check,
            user_id=actor.user_id,
            role=actor.role,
            stocked=protocol.dose.form in inventory.STOCKED_FORMS,
        ),
        "administration": admin,
        "superseded_orders": list(
            session.superseded_orders.select_related("ordered_by", "superseded_by", "cosigned_by")
        ),
        "can_start": startable,
        "dose_poll": None if can_prescribe or startable else DOSE_CARD_POLL_SECONDS,
    }
    if can_prescribe:
        ctx["dose_form"] = f.DoseForm(
            protocol=protocol, reordering=admin is not None, initial={"version": session.version}
        )
    if startable:
        ctx["start_form"] = f.StartDosingForm(initial={"version": session.version})
    gaps = services.protocol_gaps_sentence(protocol)
    if gaps:
        ctx["protocol_gaps"] = gaps
        ctx["settings_url"] = services.settings_url(protocol.id)
    return ctx


def _clock_context(
    session: DosingSession, protocol: Any, record: selectors.SessionRecord | None = None
) -> dict[str, Any]:
    """The status panel's clock line: minutes since the first dose, and the observation clock (from the
    end of administration) against the minimum observation time."""
    minimum = protocol.observation.minimum_minutes.value
    now = clock.now()
    elapsed = int((now - session.first_dose_at).total_seconds() // 60) if session.first_dose_at else None
    ended = services.administration_ended_at(session, record) if session.state != State.DOSING else None
    observed = int((now - ended).total_seconds() // 60) if ended is not None else None
    minimum_minutes = int(minimum.value) if minimum is not None else None
    return {
        "elapsed": elapsed,
        "minimum_minutes": minimum_minutes,
        "administration_ended_at": ended,
        "observed": observed,
        # When "Start recovery" will be accepted, so the nurse is not left to find out by being refused.
        "recovery_from": ended + dt.timedelta(minutes=minimum_minutes)
        if ended is not None and minimum_minutes is not None
        else None,
    }


def _missed_items(session: DosingSession, due: Any, record: selectors.SessionRecord) -> list[dict[str, Any]]:
    """The overdue scheduled checks with no written reason yet, each with its minutes after the dose."""
    if session.first_dose_at is None:
        return []
    explained = record.missed_explanations
    until = session.recovery_started_at
    out = []
    for item in due:
        if item.due_at is None or item.status != "overdue":
            continue
        if until is not None and item.due_at >= until:
            continue  # discharge asks only for the checks due before recovery started
        offset = int((item.due_at - session.first_dose_at).total_seconds() // 60)
        if offset not in explained:
            out.append({"offset": offset, "label": item.label, "due_at": item.due_at})
    return out


def _status_context(session: DosingSession) -> dict[str, Any]:
    """Only what sessions/_status.html prints, the same values the page's context gives it: the
    session's addresses, and in the monitoring states the protocol, the clock line and the vitals
    schedule (the times vitals were taken, read by one query of those times alone). In the other
    states the page's context has no clock line or schedule either, so the panel is empty the same way."""
    ctx: dict[str, Any] = {"patient": session.patient, "session": session}
    if State(session.state) in MONITOR_STATES:
        protocol = services.protocol_for(session)
        ctx["protocol"] = protocol
        ctx["due"] = selectors.vitals_due(session, protocol)
        ctx.update(_clock_context(session, protocol))
    return ctx


def _monitor_context(
    session: DosingSession, protocol: Any, record: selectors.SessionRecord
) -> dict[str, Any]:
    due = selectors.vitals_due(session, protocol, record)
    return {
        "due": due,
        "missed_items": _missed_items(session, due, record),
        "missed_form": f.MissedCheckForm(prefix="mc"),
        "open_alerts": record.open_alerts,
        "timeline": selectors.monitoring_timeline(session, record),
        "vitals_form": f.VitalsForm(),
        "sedation_form": f.SedationForm(prefix="sed"),
        "dissociation_form": f.DissociationForm(prefix="dis"),
        "side_effect_form": f.SideEffectForm(prefix="se"),
        "intervention_form": f.InterventionForm(prefix="iv"),
        "note_form": f.NoteForm(prefix="obs"),
        "ack_form": f.AckForm(),
        **_clock_context(session, protocol, record),
        "last_moaas": record.last_rating(ObservationKind.SEDATION),
        "last_dissociation": record.last_rating(ObservationKind.DISSOCIATION),
        "transition_version": session.version,
    }


def _gate_initial(session: DosingSession) -> dict[str, Any]:
    data = {name: getattr(session, name) for name in services.GATE_FIELDS}
    for key in ("last_food_at", "last_liquid_at"):
        if data[key] is not None:
            data[key] = timezone.localtime(data[key]).strftime(f.DT_FORMAT)
    data["version"] = session.version
    return data


@login_required
def detail(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    patient = open_patient(request, patient_id, Action.VIEW_CLINICAL)
    session = _session(patient, session_id)
    return render(request, "sessions/detail.html", _context(request, session))


@login_required
def monitor(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """htmx partial: elapsed time and due-reminders (polled every 30 s; forms are not replaced). The
    same permission check and audit entry as the page; only the panel's own context is built."""
    patient = open_patient(request, patient_id, Action.VIEW_CLINICAL)
    session = _session(patient, session_id)
    return render(request, "sessions/_status.html", _status_context(session))


@login_required
def dose_card(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """htmx partial: the dose card alone, polled while it offers its reader nothing to type into (the
    poll is not activity for the idle sign-out: the card's element is named "poll"). The same permission
    check and audit entry as the page; a constant number of queries. Once the session has moved on from
    "ready for dosing" (dosing started, aborted), the card says so and stops refreshing."""
    patient = open_patient(request, patient_id, Action.VIEW_CLINICAL)
    session = _session(patient, session_id)
    actor = actor_from_request(request)
    state = State(session.state)
    ctx: dict[str, Any] = {"patient": patient, "session": session, "state": state}
    if state is not State.PREDOSE_PASSED:
        ctx["state_label"] = STATE_LABELS[state]
        return render(request, "sessions/_dose_moved.html", ctx)
    protocol = services.protocol_for(session)
    can_monitor = can(actor, Action.MONITOR_SESSION, patient)
    can_prescribe = can(actor, Action.PRESCRIBE, patient)
    ctx.update(protocol=protocol, can_monitor=can_monitor, can_prescribe=can_prescribe)
    ctx.update(
        _dose_card_context(
            actor, session, protocol, selectors.SessionRecord(session), can_monitor, can_prescribe
        )
    )
    if ctx["can_start"]:  # the container choice, only on a card that offers "Start dosing" (no poll)
        ctx.update(_stock_context(session, state, protocol))
    return render(request, "sessions/_dose.html", ctx)


def _fail(
    request: HttpRequest,
    session: DosingSession,
    status: int,
    errors: list[str],
    overrides: dict[str, Any] | None = None,
) -> HttpResponse:
    record_event(actor_from_request(request), "view", patient=session.patient, obj=session)
    session.refresh_from_db()
    if status != 409:
        # A refused save may still have saved part of the record (the checklist is saved, then passing
        # it is refused): the page returned keeps what was typed and carries the record's current
        # version, so the same person's next save is not mistaken for somebody else's change.
        for form in (overrides or {}).values():
            if getattr(form, "is_bound", False) and "version" in form.fields:
                data = form.data.copy()
                data[form.add_prefix("version")] = str(session.version)
                form.data = data
    ctx = _context(request, session, overrides)
    ctx["errors"] = errors
    htmx = bool(getattr(request, "htmx", False))
    template = "sessions/_monitor.html" if htmx and "due" in ctx else "sessions/detail.html"
    ctx["partial"] = template == "sessions/_monitor.html"
    return render(request, template, ctx, status=status)


def _error_sentences(form: Any) -> list[str]:
    """The form's errors as sentences for the page's summary, each naming its field."""
    out = []
    for name, errors in form.errors.items():
        label = str(form.fields[name].label) if name in form.fields and form.fields[name].label else ""
        for error in errors:
            out.append(error if not label or error.startswith(label) else f"{label}: {error}")
    return out or ["Please correct the errors below."]


def _run(
    request: HttpRequest,
    patient_id: int,
    session_id: int,
    action: Action,
    form: Any,
    do: Callable[[Actor, DosingSession, Any], Any],
    form_key: str | None = None,
) -> HttpResponse:
    """POST skeleton: one permission check, validate, call the service, handle refusals and conflicts."""
    patient = open_patient(request, patient_id, action, audit=None, object_type="kap_sessions.dosingsession")
    session = _session(patient, session_id)
    overrides = {form_key: form} if form_key else {}
    if form is not None and not form.is_valid():
        return _fail(request, session, 400, _error_sentences(form), overrides)
    try:
        do(actor_from_request(request), session, form.cleaned_data if form is not None else {})
    except DomainError as e:
        if form is not None:
            for field, msgs in e.field_errors.items():
                for m in msgs:
                    form.add_error(field if field in form.fields else None, m)
        return _fail(request, session, 400, e.messages, overrides)
    except ConflictError as e:
        return _fail(request, session, 409, [str(e)])
    if getattr(request, "htmx", False):
        session.refresh_from_db()  # the row as the service left it, read once
        if State(session.state) in MONITOR_STATES:
            return render(request, "sessions/_monitor.html", _context(request, session))
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
            data["version"],
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
            actor, session, Event.ABORT, data["version"], reason=data["reason"], infusion=stop
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
        s = services.gate_update(actor, s, data["version"], values)
        if request.POST.get("confirm"):
            services.gate_pass(actor, s, s.version)

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "gate_form")


@login_required
@require_POST
def gate_pass(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    form = f.VersionForm(request.POST)

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.gate_pass(actor, session, data["version"])

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do)


@login_required
@require_POST
def override(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    form = f.OverrideForm(request.POST)

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.gate_override(actor, session, data["item"], data["reason"])

    return _run(request, patient_id, session_id, Action.PRESCRIBE, form, do, "override_form")


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
        services.rating_record(actor, session, kind, data["value"])

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
        services.event_record(actor, session, kind, data.get("code", ""), data.get("text", ""))

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, key)


@login_required
@require_POST
def acknowledge(request: HttpRequest, patient_id: int, session_id: int, alert_id: int) -> HttpResponse:
    form = f.AckForm(request.POST)
    form.alert_id = alert_id  # the page shows this form's errors beside the alert it was about

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.alert_acknowledge(actor, session, alert_id, data["action"])

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "ack_form")


@login_required
@require_POST
def dose(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    patient = open_patient(request, patient_id, Action.PRESCRIBE, audit=None)
    session = _session(patient, session_id)
    form = f.DoseForm(request.POST, protocol=services.protocol_for(session))

    def do(actor: Actor, s: DosingSession, data: dict[str, Any]) -> None:
        services.dose_order(actor, s, data["version"], data)

    return _run(request, patient_id, session_id, Action.PRESCRIBE, form, do, "dose_form")


@login_required
@require_POST
def cosign(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """A second prescriber co-signs an order above the protocol maximum."""

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.dose_cosign(actor, session)

    return _run(request, patient_id, session_id, Action.PRESCRIBE, None, do)


@login_required
@require_POST
def double_check(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.dose_double_check(actor, session)

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, None, do)


@login_required
@require_POST
def double_check_withdraw(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """The person who double-checked withdraws it before the dose is given (audited)."""

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.dose_double_check_withdraw(actor, session)

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, None, do)


@login_required
@require_POST
def missed_check(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """Why a scheduled vitals check was not done; discharge then accepts the gap."""
    form = f.MissedCheckForm(request.POST, prefix="mc")

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.missed_check_explain(actor, session, data["offset"], data["text"])

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "missed_form")


@login_required
@require_POST
def start_dosing(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    if _stocked(request, patient_id, session_id):
        return _start_dosing_from_stock(request, patient_id, session_id)
    form = f.StartDosingForm(request.POST)

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.dosing_start(
            actor,
            session,
            data["version"],
            lot_number=data["lot_number"] or "",
            expiry_date=data["expiry_date"],
        )

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "start_form")


def _stocked(request: HttpRequest, patient_id: int, session_id: int) -> bool:
    """Whether the session's dose is drawn from stock (read without auditing; _run checks access)."""
    session = DosingSession.objects.filter(pk=session_id, patient_id=patient_id).first()
    return session is not None and services.stock_form(session)


def _start_dosing_from_stock(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """Dosing starts from the chosen container (issue 14); its ledger line is written with it."""
    from kapclinic.inventory import services as inventory

    session = DosingSession.objects.get(pk=session_id)
    form_name = services.protocol_for(session).dose.form
    containers = inventory.stock_for_form(session.clinic, form_name)
    form: f.VersionForm = f.StockStartDosingForm(
        request.POST, containers=containers, vial=form_name != "nasal_device"
    )

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.dosing_start_from_stock(
            actor,
            session,
            data["version"],
            container_id=data.get("container") or None,
            drawn_mg=data.get("drawn_mg"),
            second_container_id=data.get("second_container") or None,
            second_drawn_mg=data.get("second_drawn_mg"),
        )

    if not containers:
        # no choice to make: the service's refusal says so (and the page links to the stock)
        form = f.VersionForm(request.POST)
    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "start_form")


def _witnessed(
    request: HttpRequest, form: Any, write: Callable[[Actor, DosingSession, Any, Any], Any]
) -> Callable[[Actor, DosingSession, dict[str, Any]], None]:
    """The witness signs in (inventory.witness.confirm, audited when refused), then ``write`` runs."""
    from kapclinic.inventory.witness import confirm

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        witness = confirm(request, actor, data)  # a refusal is a DomainError on the witness's email field
        write(actor, session, data, witness)

    return do


@login_required
@require_POST
def stock_waste(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """What was drawn but not given (syringe residue), wasted with a signed-in witness."""
    from kapclinic.inventory import services as inventory

    form = f.SessionWasteForm(request.POST, prefix="waste")

    def write(actor: Actor, session: DosingSession, data: dict[str, Any], witness: Any) -> None:
        inventory.waste_for_session(
            actor,
            session,
            draw_id=data["draw"],
            amount_mg=data["amount_mg"],
            witness=witness,
            reason=data.get("reason") or "",
        )

    do = _witnessed(request, form, write)
    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "waste_form")


@login_required
@require_POST
def stock_disposal(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """The used esketamine devices' disposal, with a signed-in witness."""
    from kapclinic.inventory import services as inventory

    form = f.DeviceDisposalForm(request.POST, prefix="disp")

    def write(actor: Actor, session: DosingSession, data: dict[str, Any], witness: Any) -> None:
        inventory.dispose_devices(actor, session, draw_id=data["draw"], witness=witness)

    do = _witnessed(request, form, write)
    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "disposal_form")


@login_required
@require_POST
def stock_unused(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """Esketamine devices taken out and not used (a partial dose): returned to stock or disposed of,
    with a signed-in witness."""
    from kapclinic.inventory import services as inventory

    form = f.UnusedDevicesForm(request.POST, prefix="unused")

    def write(actor: Actor, session: DosingSession, data: dict[str, Any], witness: Any) -> None:
        inventory.settle_unused_devices(
            actor, session, draw_id=data["draw"], how=data["how"], witness=witness
        )

    do = _witnessed(request, form, write)
    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "unused_form")


@login_required
@require_POST
def device(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """Esketamine: the next nasal device used (5 minutes after the previous one, [S7] ref §1.3)."""
    form = f.DeviceForm(request.POST, prefix="dev")

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.device_record(actor, session, data["version"], data["at"])

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "device_form")


@login_required
@require_POST
def infusion_stop(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """IV: when the infusion stopped and the actual pump rate if it was changed."""
    form = f.InfusionStopForm(request.POST, prefix="inf")

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        from kapclinic.inventory.witness import confirm

        # a witness signs in only when less than the dose was infused (the service says when one is needed)
        signing = data.get("witness_email") or data.get("witness_password")
        services.infusion_stop_record(
            actor,
            session,
            data["version"],
            stopped_at=data["stopped_at"],
            actual_rate_ml_per_h=data["actual_rate_ml_per_h"],
            early_stop_reason=data.get("early_stop_reason") or "",
            infused_amount=data.get("infused_amount"),
            infused_unit=data.get("infused_unit") or "mg",
            witness=confirm(request, actor, data) if signing else None,
        )

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "infusion_form")


@login_required
@require_POST
def lozenge(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """SL: how long the lozenge was held and whether it was spat out or swallowed."""
    form = f.LozengeForm(request.POST, prefix="loz")

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.lozenge_record(
            actor, session, data["version"], hold_minutes=data["hold_minutes"], outcome=data["outcome"]
        )

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "lozenge_form")


@login_required
@require_POST
def discharge(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    patient = open_patient(request, patient_id, Action.MONITOR_SESSION, audit=None)
    form = f.DischargeForm(request.POST, protocol=services.protocol_for(_session(patient, session_id)))

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.session_discharge(
            actor,
            session,
            data["version"],
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
        services.process_note_add(actor, session, data["text"])

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
            actor, protocol.id, d["values"], reason=d["reason"], expected_stamp=d["stamp"]
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
            actor, form.values(), reason=d["reason"], expected_version=d["version"]
        ),
        lambda n: f"{n} measure setting(s) changed.",
    )
