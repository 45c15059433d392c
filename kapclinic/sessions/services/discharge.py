"""Discharge: criteria, the observation clock and missed timed checks, the discharge itself; adverse
events, process notes and the REMS submission mark."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from kapclinic.audit.services import record_event
from kapclinic.clinical import session_state as sm
from kapclinic.clinical.protocols import Protocol
from kapclinic.clinical.session_state import Event, IllegalTransition, State
from kapclinic.clinical.vitals import LOINC
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.errors import DomainError
from kapclinic.notes.models import ProcessNote
from kapclinic.notes.services import process_note_create
from kapclinic.patients.services import add_timeline_event
from kapclinic.sessions.models import (
    Administration,
    AdverseEvent,
    DosingSession,
    EventKind,
    ObservationKind,
    SessionEvent,
)
from kapclinic.sessions.selectors import (
    MISSED_CHECK_CODE,
    SessionRecord,
    baseline_reading,
    final_reading,
    last_rating,
    missed_check_explanations,
)
from kapclinic.sessions.services.common import (
    _assert_user,
    _audit,
    _check_version,
    _fresh,
    _link,
    _transition,
    protocol_for,
)
from kapclinic.sessions.services.dose import _stock_discharge_problems


def discharge_decision(
    session: DosingSession,
    *,
    escort_present: bool,
    no_driving: bool,
    signed: bool,
    record: SessionRecord | None = None,
) -> sm.DischargeDecision:
    """The discharge gate. ``record`` (the page's preview) gives the facts the page has already read
    (the same ratings, readings and open alerts, found the same way); without it they are read here."""
    protocol = protocol_for(session)
    minimum = protocol.observation.minimum_minutes.value
    ended = administration_ended_at(session, record)
    now = timezone.localtime(clock.now())
    if record is not None:
        last_moaas = record.last_rating(ObservationKind.SEDATION)
        last_dissociation = record.last_rating(ObservationKind.DISSOCIATION)
        final_vitals = record.final_reading()
        baseline = record.baseline_reading()
        open_alerts = len(record.open_alerts)
    else:
        last_moaas = last_rating(session, ObservationKind.SEDATION)
        last_dissociation = last_rating(session, ObservationKind.DISSOCIATION)
        final_vitals = final_reading(session)
        baseline = baseline_reading(session)
        open_alerts = session.alerts.filter(acknowledged_at__isnull=True).count()
    return sm.evaluate_discharge(
        sm.DischargeInput(
            first_dose_at=timezone.localtime(ended) if ended else None,
            now=now,
            minimum_minutes=int(minimum.value) if minimum is not None else None,
            last_moaas=last_moaas,
            last_dissociation=last_dissociation,
            final_vitals=final_vitals,
            baseline=baseline,
            escort_present=escort_present,
            escort_name=session.escort_name,
            no_driving_advice_given=no_driving,
            clinician_signed=signed,
            open_alerts=open_alerts,
            thresholds=protocol.thresholds,
            missing_checks=missing_checks(session, protocol, record),
            final_set=_final_set_problems(session, protocol, now, record),
        )
    )


# ---------------------------------------------------------------- observation clock, schedule, final set


def administration_ended_at(
    session: DosingSession, record: SessionRecord | None = None
) -> dt.datetime | None:
    """The end of administration (the observation clock's start), from what was recorded of the dose;
    ``record`` (the page's reads) gives the administration and devices already read."""
    if record is not None:
        admin = record.admin
        last_device = max((d.at for d in record.devices), default=None)
    else:  # one query: the administration with its last device's time
        admin = (
            Administration.objects.filter(session=session)
            .annotate(last_device=Max("device_uses__at"))
            .first()
        )
        last_device = getattr(admin, "last_device", None)
    if admin is None:
        return None
    return sm.administration_end(
        protocol_for(session).dose.form,
        administered_at=admin.administered_at,
        last_device_at=last_device,
        infusion_stopped_at=admin.infusion_stopped_at,
        hold_minutes=admin.hold_minutes,
    )


def _recovery_start_check(session: DosingSession) -> None:
    minimum = protocol_for(session).observation.minimum_minutes.value
    ended = administration_ended_at(session)
    problems = sm.recovery_start_problems(
        ended_at=timezone.localtime(ended) if ended else None,
        now=timezone.localtime(clock.now()),
        minimum_minutes=int(minimum.value) if minimum is not None else None,
    )
    if problems:
        raise DomainError(list(problems))


def missing_checks(
    session: DosingSession, protocol: Protocol, record: SessionRecord | None = None
) -> tuple[str, ...]:
    """The protocol's timed vitals checks due before recovery started (or now) that were neither done nor
    explained in writing."""
    from kapclinic.sessions.selectors import vitals_due

    if session.first_dose_at is None:
        return ()
    until = session.recovery_started_at or clock.now()
    return sm.missing_scheduled_checks(
        vitals_due(session, protocol, record),
        dose_start=session.first_dose_at,
        until=until,
        explained=record.missed_explanations if record is not None else missed_check_explanations(session),
    )


def _final_set_problems(
    session: DosingSession, protocol: Protocol, now: dt.datetime, record: SessionRecord | None = None
) -> tuple[str, ...]:
    within = protocol.observation.final_set_within_minutes.value
    wanted = {LOINC[v].loinc for v in protocol.vitals_schedule.measures}
    rows: Iterable[tuple[str, int, str, dt.datetime]]
    if record is not None:
        rows = [(o.kind, o.reading, o.code, o.at) for o in record.observations]
    else:
        rows = session.observations.values_list("kind", "reading", "code", "at")
    groups: dict[int, tuple[dt.datetime, set[str]]] = {}
    rated: dict[str, dt.datetime] = {}
    for kind, reading, code, at in rows:
        if kind == ObservationKind.VITAL:
            groups.setdefault(reading, (at, set()))[1].add(code)
        elif kind not in rated or at > rated[kind]:
            rated[kind] = at
    full = [at for at, codes in groups.values() if wanted <= codes]
    ratings: dict[str, dt.datetime | None] = {}
    for key, kind in (("moaas", ObservationKind.SEDATION), ("dissociation", ObservationKind.DISSOCIATION)):
        ratings[key] = timezone.localtime(rated[kind]) if kind in rated else None
    return sm.final_set_problems(
        now=now,
        within_minutes=int(within.value) if within is not None else None,
        full_vitals_at=timezone.localtime(max(full)) if full else None,
        ratings_at=ratings,
        measures_label=", ".join(LOINC[v].label for v in protocol.vitals_schedule.measures),
    )


@transaction.atomic
def missed_check_explain(
    actor: Actor, session: DosingSession, *, offset_minutes: int, text: str
) -> SessionEvent:
    """A written reason why a scheduled vitals check (``offset_minutes`` after the dose start) was not
    done; discharge then accepts the gap. Refused for a check that is not on the schedule or not missed."""
    from kapclinic.sessions.selectors import vitals_due

    session = _fresh(session)
    text = text.strip()
    if State(session.state) not in (State.DOSING, State.MONITORING, State.RECOVERY):
        raise DomainError("A missed vitals check is explained while the patient is being monitored.")
    if not text:
        raise DomainError(
            "Reason is required: say why the scheduled check was not done.", {"text": ["Say why."]}
        )
    assert session.first_dose_at is not None
    due = {
        int((i.due_at - session.first_dose_at).total_seconds() // 60): i
        for i in vitals_due(session, protocol_for(session))
        if i.due_at is not None
    }
    item = due.get(offset_minutes)
    if item is None or item.status == "done" or item.due_at is None or item.due_at > clock.now():
        raise DomainError("That check is not a missed check on this session's vitals schedule.")
    if offset_minutes in missed_check_explanations(session):
        raise DomainError("That missed check is already explained.")
    ev = SessionEvent.objects.create(
        session=session,
        kind=EventKind.NOTE,
        code=f"{MISSED_CHECK_CODE}{offset_minutes}",
        text=f"{item.label} check missed: {text}",
        at=clock.now(),
        recorded_by=_assert_user(actor),
    )
    _audit(actor, session, "create", "session.missed_check_explained", "missed_check_explained")
    return ev


@transaction.atomic
def session_discharge(
    actor: Actor,
    session: DosingSession,
    *,
    expected_version: int,
    escort_present: bool,
    no_driving: bool,
    signed: bool,
    ready_to_leave_minutes: int | None,
    note: str,
) -> DosingSession:
    session = _fresh(session)
    _check_version(session, expected_version)
    if State(session.state) is not State.RECOVERY:
        try:
            sm.next_state(State(session.state), Event.DISCHARGE)
        except IllegalTransition as e:
            raise DomainError(str(e)) from None
    decision = discharge_decision(
        session, escort_present=escort_present, no_driving=no_driving, signed=signed
    )
    stock = _stock_discharge_problems(session)
    if not decision.allowed or stock:
        raise DomainError([*decision.reasons, *stock])
    session = _transition(
        actor,
        session,
        Event.DISCHARGE,
        expected_version=expected_version,
        extra={
            "escort_present": True,
            "no_driving_advice_given": True,
            "discharged_by": actor.user,
            "ready_to_leave_minutes": ready_to_leave_minutes,
            "discharge_note": note.strip(),
        },
    )
    add_timeline_event(
        session.patient,
        kind="sessions.discharged",
        title="Dosing session discharged",
        at=session.discharged_at,
        actor=actor,
        ref=session,
        **_link(session),
    )
    return session


# ---------------------------------------------------------------- adverse events, process notes, REMS


@transaction.atomic
def adverse_event_record(
    actor: Actor,
    session: DosingSession,
    *,
    description: str,
    onset_at: dt.datetime,
    severity: str,
    action_taken: str,
    outcome: str,
) -> AdverseEvent:
    if State(session.state) in (State.SCHEDULED,):
        raise DomainError("Adverse events are recorded once the patient has checked in.")
    if onset_at > clock.now():
        raise DomainError("Onset cannot be in the future.", {"onset_at": ["Onset cannot be in the future."]})
    ae = AdverseEvent.objects.create(
        session=session,
        description=description.strip(),
        onset_at=onset_at,
        severity=severity,
        action_taken=action_taken.strip(),
        outcome=outcome,
        recorded_by=_assert_user(actor),
        recorded_at=clock.now(),
    )
    record_event(actor, "create", patient=session.patient, obj=ae)
    add_timeline_event(
        session.patient,
        kind="sessions.adverse_event",
        title=f"Adverse event ({ae.get_severity_display().lower()}): {ae.description}",
        at=onset_at,
        actor=actor,
        ref=ae,
        **_link(session),
    )
    return ae


def process_note_add(actor: Actor, session: DosingSession, *, text: str) -> ProcessNote:
    """The therapist's process note for this session: a psychotherapy process note of the notes app,
    encrypted at rest and linked to the session; readable only by its author (and whoever the author
    shares it with), never part of the monitoring record, the REMS record, exports or the portal."""
    try:
        return process_note_create(actor, session.patient, text=text, dosing_session=session)
    except DomainError as e:  # the session page shows the sentence at the top and by its field
        raise DomainError([e.message], e.field_errors) from None


@transaction.atomic
def rems_mark_submitted(actor: Actor, session: DosingSession) -> DosingSession:
    session = _fresh(session)
    if session.state != State.DISCHARGED:
        raise DomainError("The REMS monitoring form can be marked submitted only after discharge.")
    if session.rems_submitted_at is not None:
        raise DomainError("The REMS monitoring form is already marked as submitted.")
    session.rems_submitted_at = clock.now()
    session.rems_submitted_by = actor.user
    session.save(update_fields=["rems_submitted_at", "rems_submitted_by"])
    _audit(actor, session, "update", "session.rems_submitted", "rems_submitted")
    return session
