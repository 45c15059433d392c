"""Arrival and the gate: creating a session (from an appointment or not), the simple transitions, the
pre-dose gate items, their overrides and passing the gate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, cast

from django.db import transaction
from django.utils import timezone

from kapclinic.audit.services import record_event
from kapclinic.clinical import session_state as sm
from kapclinic.clinical.protocols import Protocol, get_protocol
from kapclinic.clinical.session_state import Event, GateCheck, GateResult, IllegalTransition, State
from kapclinic.clinical.vitals import Reading
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.concurrency import save_versioned
from kapclinic.core.errors import DomainError
from kapclinic.core.sentinel import NOT_READ
from kapclinic.patients.models import Patient
from kapclinic.patients.services import add_timeline_event
from kapclinic.policy import ClinicAction, clinic_can
from kapclinic.scheduling.models import Appointment, Kind, Status
from kapclinic.sessions.models import (
    Administration,
    DosingSession,
    GateOverride,
    NasalSteroid,
    PregnancyStatus,
)
from kapclinic.sessions.readiness import readiness_for
from kapclinic.sessions.selectors import baseline_reading, infusion_running, session_phq9
from kapclinic.sessions.services.administration import _dosing_complete_check, infusion_stop_record
from kapclinic.sessions.services.common import (
    _assert_user,
    _audit,
    _check_version,
    _fresh,
    _link,
    _transition,
    protocol_for,
)
from kapclinic.sessions.services.discharge import _recovery_start_check

# ---------------------------------------------------------------- create / simple transitions


@transaction.atomic
def session_create(
    actor: Actor,
    patient: Patient,
    *,
    protocol_key: str,
    scheduled_for: dt.datetime,
    appointment: Appointment | None = None,
) -> DosingSession:
    user = _assert_user(actor)
    if appointment is not None:
        _check_appointment(patient, appointment)
    pid, _, version = protocol_key.partition("@")
    protocol = get_protocol(pid, version or None)
    session = DosingSession.objects.create(
        clinic_id=patient.clinic_id,
        patient=patient,
        protocol_id=protocol.id,
        protocol_version=protocol.version,
        scheduled_for=scheduled_for,
        appointment=appointment,
        created_by=user,
    )
    record_event(actor, "create", patient=patient, obj=session, name="session.create")
    add_timeline_event(
        patient,
        kind="sessions.scheduled",
        title="Dosing session scheduled",
        category="admin",
        at=clock.now(),
        actor=actor,
        ref=session,
        **_link(session),
    )
    return session


@transaction.atomic
def session_transition(
    actor: Actor,
    session: DosingSession,
    event: Event,
    *,
    expected_version: int,
    reason: str = "",
    partial_reason: str = "",
    infusion: dict[str, Any] | None = None,
) -> DosingSession:
    """Check-in, start monitoring, start recovery and abort (the steps with no extra data).

    Starting monitoring marks dosing complete: refused until the route's administration record is
    complete (every ordered esketamine device, the IV stop, the SL hold), or, for esketamine, until a
    written ``partial_reason`` documents a partial dose. Aborting while an IV infusion runs records its
    stop as ``infusion_stop_record`` does (``infusion``: its stopped_at, infused_amount, infused_unit,
    witness) and wastes the rest of the draw with that witness (issue 14)."""
    if event not in (Event.CHECK_IN, Event.START_MONITORING, Event.START_RECOVERY, Event.ABORT):
        raise DomainError("That step has its own form.")
    session = _fresh(session)
    _check_version(session, expected_version)
    if event is Event.ABORT and infusion_running(session):
        from kapclinic.inventory.services import waste_residue

        why = "Session aborted" + (f": {reason.strip()}" if reason.strip() else "")
        stop = {"stopped_at": clock.now(), **(infusion or {})}
        infusion_stop_record(
            actor,
            session,
            expected_version=expected_version,
            actual_rate_ml_per_h=None,
            early_stop_reason=why,
            **stop,
        )
        expected_version += 1  # the stop saved the session
        waste_residue(actor, session, witness=stop.get("witness"), reason="IV infusion aborted: not infused")
    partial: Administration | None = None
    if event is Event.START_MONITORING and State(session.state) is State.DOSING:
        partial, reason = _dosing_complete_check(session, partial_reason)
    if event is Event.START_RECOVERY and State(session.state) is State.MONITORING:
        _recovery_start_check(session)
    session = _transition(actor, session, event, expected_version=expected_version, reason=reason.strip())
    if partial is not None:
        add_timeline_event(
            session.patient,
            kind="sessions.partial_dose",
            title=f"Partial dose: {partial.device_uses.count()} of {partial.devices} devices given",
            at=session.monitoring_started_at,
            actor=actor,
            ref=session,
            **_link(session),
        )
    if event is Event.ABORT:
        session.abort_reason = reason.strip()
        session.save(update_fields=["abort_reason"])
        add_timeline_event(
            session.patient,
            kind="sessions.aborted",
            title="Dosing session aborted",
            at=session.aborted_at,
            actor=actor,
            ref=session,
            **_link(session),
        )
    return session


def _check_appointment(patient: Patient, appointment: Appointment) -> None:
    """A session may be started only from a dosing appointment of this patient that is booked (or
    already marked completed), not cancelled or missed, and has no session yet (an aborted one does not
    count). Locks the appointment row against a second start."""
    locked = Appointment.objects.select_for_update().filter(pk=appointment.pk).first()
    if locked is None or locked.patient_id != patient.pk or locked.clinic_id != patient.clinic_id:
        raise DomainError("That appointment is not one of this patient's appointments.")
    if locked.kind != Kind.DOSING:
        raise DomainError(
            f"A dosing session is started from a dosing appointment; this one is a "
            f"{locked.get_kind_display().lower()}."
        )
    if locked.status in (Status.CANCELLED, Status.NO_SHOW):
        raise DomainError(
            f"This dosing appointment is marked {locked.get_status_display().lower()}; a session can be "
            "started only from a booked (or completed) appointment."
        )
    if DosingSession.objects.filter(appointment=locked).exclude(state=State.ABORTED).exists():
        raise DomainError(
            "This appointment already has a dosing session; open it instead of starting another."
        )


@transaction.atomic
def session_start_from_appointment(actor: Actor, appointment: Appointment) -> tuple[DosingSession, bool]:
    """The nurse's "start session" on a dosing appointment (chair board, schedule): the session is
    created on the patient's signed plan's protocol at the appointment's time and linked to it.
    Returns (session, created); a second start returns the session already started (created=False)
    and writes nothing, so a double click never makes two sessions.

    When the front desk has already marked the patient's arrival on the appointment, the session starts
    checked in at that time (issue 18: the nurse was asked to check the patient in a second time, and the
    day list and chair board went back from "Arrived" to "Scheduled")."""
    from kapclinic.treatment.selectors import signed_plan

    locked = Appointment.objects.select_for_update().filter(pk=appointment.pk).first()  # one start at a time
    existing = DosingSession.objects.filter(appointment=appointment).exclude(state=State.ABORTED).first()
    if existing is not None:
        return existing, False
    patient = appointment.patient
    plan = signed_plan(patient)
    if plan is None:
        raise DomainError(
            "There is no signed treatment plan for this patient, so the session has no protocol to "
            "follow; a prescriber signs the plan first."
        )
    session = session_create(
        actor,
        patient,
        protocol_key=f"{plan.protocol_id}@{plan.protocol_version}",
        scheduled_for=appointment.starts_at,
        appointment=appointment,
    )
    arrived_at = locked.checked_in_at if locked is not None else None
    if arrived_at is not None:
        session = _transition(
            actor,
            session,
            Event.CHECK_IN,
            expected_version=session.version,
            reason=f"Arrival recorded at the front desk at {timezone.localtime(arrived_at):%H:%M}.",
            extra={"checked_in_at": arrived_at},
        )
    return session, True


# ---------------------------------------------------------------- gate


GATE_FIELDS = [
    "weight_kg",
    "height_cm",
    "ideal_body_weight_kg",
    "last_food_at",
    "last_liquid_at",
    "escort_name",
    "escort_phone",
    "medication_changes_reviewed",
    "flagged_medication_classes",
    "pregnancy_status",
    "intention",
    "phq9_waiver_reason",
    "rems_enrolled",
    "nasal_steroid",
]


@transaction.atomic
def gate_update(
    actor: Actor, session: DosingSession, *, expected_version: int, values: dict[str, Any]
) -> DosingSession:
    session = _fresh(session)
    _check_version(session, expected_version)
    if session.state not in (State.SCHEDULED, State.CHECKED_IN):
        raise DomainError("Pre-dose checks can only be changed before they have been passed.")
    for key, value in values.items():
        if key not in GATE_FIELDS:
            raise ValueError(key)
        setattr(session, key, value)
    save_versioned(session, expected_version, list(values))
    _audit(actor, session, "update", "session.gate", "gate")
    return session


NASAL_STEROID_DETAIL: dict[str, str] = {
    NasalSteroid.NONE.value: "None taken today.",
    NasalSteroid.OVER_1H.value: "Taken at least 1 hour before dosing.",
    NasalSteroid.WITHIN_1H.value: "Taken less than 1 hour before dosing; give it at least 1 hour before "
    "([S10] ref §1.3).",
}


def gate_checks(
    session: DosingSession,
    protocol: Protocol,
    *,
    now: dt.datetime | None = None,
    eligibility: Any = None,
    consent: Any = None,
    baseline: Reading | object | None = NOT_READ,
) -> list[GateCheck]:
    """Evaluate every gate item the protocol requires (ref §6.1).

    A page that has already read the patient's eligibility or consent state or the session's baseline
    reading for this request passes them (``baseline`` may be None: no baseline yet) so each fact is
    read once and the checks see the same facts the page shows; otherwise they are read here."""
    now = now or clock.now()
    checks: list[GateCheck] = []
    items = set(protocol.gate_items)
    if items & {"signed_plan", "consent_current", "eligibility_current"}:
        readiness = readiness_for(
            session.patient, session.protocol_id, eligibility=eligibility, consent=consent
        )
        checks.extend(c for c in readiness.checks() if c.key in items)
    if "phq9_done" in items:
        phq = session_phq9(session, now=now)
        checks.append(
            sm.check_phq9_response(
                phq.evidence,
                session.phq9_waiver_reason,
                phq.window,
                open_safety_alerts=phq.open_safety_alerts,
            )
        )
    if "fasting" in items:
        food = protocol.fasting.food_minutes.value
        liquids = protocol.fasting.liquids_minutes.value
        checks.append(
            sm.check_fasting(
                last_food_at=session.last_food_at,
                last_liquid_at=session.last_liquid_at,
                now=now,
                food_minutes=int(food.value) if food else None,
                liquids_minutes=int(liquids.value) if liquids else None,
            )
        )
    if "escort_named" in items:
        checks.append(
            sm.check_text("escort_named", session.escort_name, "No escort or driver home has been named.")
        )
    if "medication_changes_reviewed" in items:
        checks.append(
            sm.check_medication_changes(
                session.medication_changes_reviewed, session.flagged_medication_classes or []
            )
        )
    if "pregnancy_status" in items:
        ps = session.pregnancy_status
        if ps in (PregnancyStatus.NOT_APPLICABLE, PregnancyStatus.NOT_PREGNANT):
            checks.append(GateCheck("pregnancy_status", True, PregnancyStatus(ps).label + "."))
        elif ps in (PregnancyStatus.PREGNANT, PregnancyStatus.BREASTFEEDING):
            checks.append(
                GateCheck(
                    "pregnancy_status",
                    False,
                    f"{PregnancyStatus(ps).label}: not recommended ([S2][S10b] ref §3.2, relative §3.5).",
                )
            )
        else:
            checks.append(GateCheck("pregnancy_status", False, "Pregnancy status has not been recorded."))
    if "intention_noted" in items:
        checks.append(
            sm.check_text("intention_noted", session.intention, "No intention for the session is noted.")
        )
    if "baseline_vitals" in items:
        base = baseline_reading(session) if baseline is NOT_READ else cast("Reading | None", baseline)
        checks.append(sm.check_baseline_vitals(base, protocol.thresholds))
    if "rems_enrolled" in items:
        checks.append(
            sm.check_flag(
                "rems_enrolled",
                session.rems_enrolled,
                "Enrolled in the Spravato REMS.",
                "The patient is not recorded as enrolled in the Spravato REMS ([S5][S6c] ref §2.1).",
            )
        )
    if "nasal_steroid_timing" in items:
        ns = session.nasal_steroid
        checks.append(
            GateCheck(
                "nasal_steroid_timing",
                ns in (NasalSteroid.NONE, NasalSteroid.OVER_1H),
                NASAL_STEROID_DETAIL.get(
                    ns, "Nasal corticosteroid or decongestant use today has not been recorded."
                ),
            )
        )
    if session.weight_kg is None and protocol.dose.basis == "mg_per_kg":
        checks.append(GateCheck("weight_today", False, "Today's weight has not been recorded."))
    return checks


def gate_result(
    session: DosingSession,
    protocol: Protocol | None = None,
    *,
    overrides: Iterable[GateOverride] | None = None,
    eligibility: Any = None,
    consent: Any = None,
    baseline: Reading | object | None = NOT_READ,
) -> GateResult:
    """The gate evaluated now. ``overrides`` (the session's gate overrides in their order), ``eligibility``,
    ``consent`` and ``baseline``: what the caller has already read of them for this request (see
    gate_checks)."""
    protocol = protocol or protocol_for(session)
    rows = session.gate_overrides.all() if overrides is None else overrides
    return sm.evaluate_gate(
        gate_checks(session, protocol, eligibility=eligibility, consent=consent, baseline=baseline),
        {o.item: o.reason for o in rows},
    )


@transaction.atomic
def gate_override(actor: Actor, session: DosingSession, *, item: str, reason: str) -> GateOverride:
    if not clinic_can(actor, ClinicAction.ORDER_DOSE):
        raise DomainError("Only a prescriber can override a failed pre-dose check.")
    reason = reason.strip()
    if not reason:
        raise DomainError(
            "Reason is required: an override needs a written reason.", {"reason": ["Enter the reason."]}
        )
    session = _fresh(session)
    if session.state != State.CHECKED_IN:
        raise DomainError("Pre-dose checks can only be overridden while the patient is checked in.")
    result = gate_result(session)
    match = next((i for i in result.items if i.check.key == item), None)
    if match is None or match.status not in ("blocked", "hard_stop"):
        raise DomainError("That check is not failing, so there is nothing to override.")
    if match.status == "hard_stop":
        raise DomainError(f"{match.check.label} is a hard stop and cannot be overridden.")
    ov = GateOverride.objects.create(
        session=session,
        item=item,
        detail=match.check.detail,
        reason=reason,
        by=_assert_user(actor),
        at=clock.now(),
    )
    _audit(actor, session, "update", "session.gate_override", f"gate_override:{item}", {"item": item})
    return ov


@transaction.atomic
def gate_pass(actor: Actor, session: DosingSession, *, expected_version: int) -> DosingSession:
    session = _fresh(session)
    _check_version(session, expected_version)
    if session.state != State.CHECKED_IN:
        try:
            sm.next_state(State(session.state), Event.PASS_PREDOSE)
        except IllegalTransition as e:
            raise DomainError(str(e)) from None
    result = gate_result(session)
    if not result.passed:
        raise DomainError(result.blocking)
    snapshot = [
        {
            "key": i.check.key,
            "label": i.check.label,
            "status": i.status,
            "detail": i.check.detail,
            "override_reason": i.override_reason or "",
            "waived_reason": i.check.waived_reason or "",
            "flag": i.check.flag or "",
        }
        for i in result.items
    ]
    extra: dict[str, Any] = {"gate_snapshot": snapshot}
    if "phq9_done" in protocol_for(session).gate_items:
        phq = session_phq9(session)
        extra["phq9_done"] = phq.response is not None
        extra["phq9_response"] = phq.response
    return _transition(actor, session, Event.PASS_PREDOSE, expected_version=expected_version, extra=extra)
