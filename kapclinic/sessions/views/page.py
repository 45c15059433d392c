"""The session page shown in every phase (detail, monitor, dose card) with its context, and the
helpers every phase's POST view goes through (_run, _fail)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from kapclinic.audit.services import record_event
from kapclinic.clinical.session_state import GATE_LABELS, STATE_LABELS, State
from kapclinic.core import clock
from kapclinic.core.actor import Actor, actor_from_request
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.policy import Action, ClinicAction, can, clinic_can, open_patient
from kapclinic.sessions import forms as f
from kapclinic.sessions import selectors, services
from kapclinic.sessions.models import DosingSession, ObservationKind

MONITOR_STATES = {State.DOSING, State.MONITORING, State.RECOVERY}


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
        baseline = selectors.baseline_reading(session)
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
