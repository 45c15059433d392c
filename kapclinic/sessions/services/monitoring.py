"""Monitoring: vitals and ratings during observation, the alerts they raise and their
acknowledgement, session events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Q, Subquery

from kapclinic.clinical.session_state import State
from kapclinic.clinical.vitals import (
    LOINC,
    Reading,
    Vital,
    check_dissociation,
    check_moaas,
    check_plausible,
    evaluate_reading,
    evaluate_sedation,
)
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.errors import DomainError
from kapclinic.sessions.models import (
    DosingSession,
    EventKind,
    Observation,
    ObservationKind,
    SessionAlert,
    SessionEvent,
)
from kapclinic.sessions.selectors import latest_reading
from kapclinic.sessions.services.common import _assert_user, _audit, _fresh, protocol_for

# ---------------------------------------------------------------- monitoring


_PHASE_FOR_STATE = {
    State.CHECKED_IN: "pre_dose",
    State.DOSING: "intra",
    State.MONITORING: "intra",
    State.RECOVERY: "recovery",
}


@transaction.atomic
def vitals_record(
    actor: Actor, session: DosingSession, reading: Reading
) -> tuple[list[Observation], list[SessionAlert]]:
    """Append a set of vitals (appends never conflict); raise alerts at once; refuse entry errors."""
    session = _fresh(session)
    phase = _PHASE_FOR_STATE.get(State(session.state))
    if phase is None:
        raise DomainError(
            f"Vitals cannot be recorded while the session is {session.get_state_display().lower()}."
        )
    errors = check_plausible(reading)
    if errors:
        fe: dict[str, list[str]] = {}
        for e in errors:
            fe.setdefault(e.field, []).append(e.message)
        raise DomainError([e.message for e in errors], fe)
    now = clock.now()
    last_group, baseline = _last_group_and_baseline(session)
    group = last_group + 1
    rows = []
    for vital in Vital:
        value = reading.get(vital)
        if value is None:
            continue
        code = LOINC[vital]
        rows.append(
            Observation(
                session=session,
                kind=ObservationKind.VITAL,
                code=code.loinc,
                display=code.display,
                value=value,
                unit=code.ucum,
                at=now,
                reading=group,
                phase=phase,
                recorded_by=_assert_user(actor),
            )
        )
    Observation.objects.bulk_create(rows)
    alerts: list[SessionAlert] = []
    if phase != "pre_dose":
        protocol = protocol_for(session)
        alerts = _raise_alerts(
            session,
            evaluate_reading(reading, baseline=baseline, thresholds=protocol.thresholds),
            now,
        )
    _audit(
        actor,
        session,
        "create",
        "session.vitals",
        f"vitals:{len(rows)}:alerts:{len(alerts)}",
        {"readings": len(rows), "alerts": [a.rule for a in alerts]},
    )
    return rows, alerts


def _last_group_and_baseline(session: DosingSession) -> tuple[int, Reading | None]:
    """In one query, before the new reading is stored: the session's highest reading number (0 when none)
    and its pre-dose baseline (as ``baseline_reading``). The rows are the one observation with the highest
    reading number and the rows of the newest pre-dose vitals reading. The new rows a later phase adds
    are never pre-dose, so the baseline read before the insert is the one read after it."""
    mine = Observation.objects.filter(session_id=session.pk)
    pre_dose = mine.filter(kind=ObservationKind.VITAL, phase="pre_dose")
    top = mine.order_by("-reading", "-id").values("id")[:1]
    newest_pre = pre_dose.order_by("-reading").values("reading")[:1]
    rows = list(
        mine.filter(
            Q(id=Subquery(top))
            | Q(kind=ObservationKind.VITAL, phase="pre_dose", reading=Subquery(newest_pre))
        )
        .order_by("-reading", "-id")
        .values_list("reading", "code", "value", "kind", "phase")
    )
    last = rows[0][0] if rows else 0
    base = [
        (r, code, value)
        for r, code, value, kind, phase in rows
        if kind == ObservationKind.VITAL and phase == "pre_dose"
    ]
    return last, latest_reading(base)


LOCAL_CODES = "https://kapclinic.example/codes"


def _raise_alerts(session: DosingSession, found: Iterable[Any], now: dt.datetime) -> list[SessionAlert]:
    """Store the alerts a pure rule returned; they stay open until acknowledged."""
    return [
        SessionAlert.objects.create(
            session=session,
            rule=a.rule,
            vital=a.vital,
            value=a.value,
            threshold=a.threshold,
            severity=a.severity,
            message=a.message,
            source=a.source,
            raised_at=now,
        )
        for a in found
    ]


@transaction.atomic
def rating_record(
    actor: Actor, session: DosingSession, *, kind: str, value: int
) -> tuple[Observation, list[SessionAlert]]:
    session = _fresh(session)
    if State(session.state) not in (State.DOSING, State.MONITORING, State.RECOVERY):
        raise DomainError("Sedation and dissociation are rated once dosing has started and before discharge.")
    if kind == ObservationKind.SEDATION:
        err, code, display = check_moaas(value), "moaas", "MOAA/S"
    elif kind == ObservationKind.DISSOCIATION:
        err, code, display = check_dissociation(value), "dissociation-0-4", "Dissociation (clinician 0-4)"
    else:
        raise DomainError("Unknown rating.")
    if err:
        raise DomainError(err, {"value": [err]})
    now = clock.now()
    obs = Observation.objects.create(
        session=session,
        kind=kind,
        code_system=LOCAL_CODES,
        code=code,
        display=display,
        value=value,
        unit="{score}",
        at=now,
        phase=_PHASE_FOR_STATE[State(session.state)],
        recorded_by=_assert_user(actor),
    )
    alerts: list[SessionAlert] = []
    if kind == ObservationKind.SEDATION:
        alerts = _raise_alerts(session, evaluate_sedation(value, protocol_for(session).thresholds), now)
    _audit(actor, session, "create", "session.rating", f"rating:{kind}", {"kind": kind})
    return obs, alerts


@transaction.atomic
def event_record(actor: Actor, session: DosingSession, *, kind: str, code: str, text: str) -> SessionEvent:
    session = _fresh(session)
    if State(session.state) in (State.SCHEDULED, State.DISCHARGED, State.ABORTED):
        raise DomainError(
            f"Nothing can be recorded while the session is {session.get_state_display().lower()}."
        )
    if kind not in EventKind.values:
        raise DomainError("Unknown event type.")
    if kind == EventKind.NOTE and not text.strip():
        raise DomainError("Observation text is required.", {"text": ["Write the observation."]})
    if code == "other" and not text.strip():
        raise DomainError("Details are required when 'Other' is chosen.", {"text": ["Describe it."]})
    ev = SessionEvent.objects.create(
        session=session,
        kind=kind,
        code=code,
        text=text.strip(),
        at=clock.now(),
        recorded_by=_assert_user(actor),
    )
    _audit(actor, session, "create", "session.event", f"event:{kind}", {"kind": kind})
    return ev


@transaction.atomic
def alert_acknowledge(actor: Actor, session: DosingSession, *, alert_id: int, action: str) -> SessionAlert:
    action = action.strip()
    if not action:
        raise DomainError(
            "Action taken is required: describe what was done before acknowledging the alert.",
            {"action": ["Describe the action taken."]},
        )
    alert = SessionAlert.objects.select_for_update().filter(session=session, pk=alert_id).first()
    if alert is None:
        raise DomainError("That alert does not exist for this session.")
    if alert.acknowledged_at is not None:
        raise DomainError("This alert has already been acknowledged.")
    alert.acknowledged_by = actor.user
    alert.acknowledged_at = clock.now()
    alert.action_taken = action
    alert.save(update_fields=["acknowledged_by", "acknowledged_at", "action_taken"])
    _audit(actor, session, "update", "session.alert_ack", f"alert_ack:{alert.rule}", {"rule": alert.rule})
    return alert
