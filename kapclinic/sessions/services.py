"""Every write for dosing sessions: transactional, audited once, attributed and timestamped."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from django.db import transaction
from django.db.models import Max, Q, Subquery
from django.utils import timezone

from kapclinic.accounts.models import User
from kapclinic.audit.services import record_event
from kapclinic.clinical import session_state as sm
from kapclinic.clinical.dosing import (
    Cm,
    DoseCalculation,
    Kg,
    Mg,
    MgPerKg,
    MgPerMl,
    Minutes,
    Ml,
    calculate_dose,
)
from kapclinic.clinical.protocols import Protocol, apply_clinic_settings, get_protocol
from kapclinic.clinical.session_state import Event, GateCheck, GateResult, IllegalTransition, State
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
from kapclinic.core import clock, request_cache
from kapclinic.core.actor import Actor
from kapclinic.core.concurrency import ConflictError, save_versioned
from kapclinic.core.errors import DomainError
from kapclinic.core.sentinel import NOT_READ
from kapclinic.notes.models import ProcessNote
from kapclinic.notes.services import process_note_create
from kapclinic.patients.models import Patient
from kapclinic.patients.services import add_timeline_event
from kapclinic.policy import ClinicAction, clinic_can
from kapclinic.scheduling.models import Appointment, Kind, Status
from kapclinic.sessions.models import (
    Administration,
    AdverseEvent,
    ClinicProtocolSetting,
    ClinicSettingChange,
    DeviceUse,
    DosingSession,
    EventKind,
    GateOverride,
    NasalSteroid,
    Observation,
    ObservationKind,
    PregnancyStatus,
    SessionAlert,
    SessionEvent,
    SessionTransition,
    SupersededDoseOrder,
)
from kapclinic.sessions.readiness import readiness_for

if TYPE_CHECKING:
    from kapclinic.sessions.selectors import SessionRecord


# ---------------------------------------------------------------- protocol with clinic settings


def protocol_for(session: DosingSession) -> Protocol:
    return clinic_protocol(session.clinic_id, session.protocol_id, session.protocol_version)


def clinic_protocol(clinic_id: int, protocol_id: str, version: str | None = None) -> Protocol:
    """The protocol with the clinic's settings applied; read once per request (request_cache), and
    read again after ``protocol_settings_update`` changes them (it calls ``request_cache.forget()``)."""

    def read() -> dict[str, str | int | None]:
        values: dict[str, str | int | None] = {}
        for key, value in ClinicProtocolSetting.objects.filter(
            clinic_id=clinic_id, protocol_id=protocol_id
        ).values_list("key", "value"):
            values[key] = int(value) if key.startswith("thresholds.") or key == "sessions.count" else value
        return values

    def load() -> Protocol:
        base = get_protocol(protocol_id, version)
        # The clinic's values belong to the protocol, whatever its version: read once per request.
        values = request_cache.remember(("kap_sessions.protocol_settings", clinic_id, protocol_id), read)
        return apply_clinic_settings(base, values) if values else base

    return request_cache.remember(("kap_sessions.clinic_protocol", clinic_id, protocol_id, version), load)


def settings_url(protocol_id: str) -> str:
    """Where the medical director sets the protocol's values (the clinic settings page)."""
    return f"/sessions/settings/?protocol={protocol_id}"


def protocol_gaps_sentence(protocol: Protocol) -> str | None:
    """A sentence naming the values the protocol still lacks for this clinic (None when usable)."""
    from kapclinic.clinical.protocols import field_label

    gaps = protocol.usability_gaps()
    if not gaps:
        return None
    names = ", ".join(field_label(k) for k in gaps)
    return (
        f"The protocol '{protocol.title}' cannot be used yet: the medical director must set {names} on "
        f"the clinic settings page ({settings_url(protocol.id)})."
    )


# ---------------------------------------------------------------- helpers


def _fresh(session: DosingSession) -> DosingSession:
    """The session's row again, locked for this change. The patient and clinic the caller's copy already
    holds (the views read them with the session) are handed on rather than read a second time for the
    audit entry: a session never moves to another patient or clinic (issue #7)."""
    fresh = DosingSession.objects.select_for_update().get(pk=session.pk)
    clinic = session.clinic if DosingSession.clinic.is_cached(session) else None
    if clinic is not None and clinic.pk == fresh.clinic_id:
        fresh.clinic = clinic
    if DosingSession.patient.is_cached(session) and session.patient.pk == fresh.patient_id:
        patient = session.patient
        if clinic is not None and clinic.pk == patient.clinic_id and not Patient.clinic.is_cached(patient):
            patient.clinic = clinic
        fresh.patient = patient
    return fresh


def _check_version(session: DosingSession, expected_version: int | None) -> None:
    if expected_version is not None and session.version != expected_version:
        raise ConflictError()


_STAMP = {
    Event.CHECK_IN: "checked_in_at",
    Event.PASS_PREDOSE: "predose_passed_at",
    Event.START_DOSING: "first_dose_at",
    Event.START_MONITORING: "monitoring_started_at",
    Event.START_RECOVERY: "recovery_started_at",
    Event.DISCHARGE: "discharged_at",
    Event.ABORT: "aborted_at",
}


def _transition(
    actor: Actor,
    session: DosingSession,
    event: Event,
    expected_version: int,
    *,
    reason: str = "",
    extra: dict[str, Any] | None = None,
) -> DosingSession:
    """Apply ``event`` (pure state machine), stamp the time, version-check, record transition + audit."""
    current = State(session.state)
    try:
        target = sm.next_state(current, event, reason=reason)
    except IllegalTransition as e:
        raise DomainError(str(e)) from None
    now = clock.now()
    session.state = target.value
    setattr(session, _STAMP[event], now)
    fields = ["state", _STAMP[event]]
    for name, value in (extra or {}).items():
        setattr(session, name, value)
        fields.append(name)
    save_versioned(session, expected_version, fields)
    SessionTransition.objects.create(
        session=session,
        event=event.value,
        from_state=current.value,
        to_state=target.value,
        at=now,
        by=_assert_user(actor),
        reason=reason,
    )
    record_event(actor, "update", patient=session.patient, obj=session, detail=f"transition:{event.value}")
    return session


def _assert_user(actor: Actor) -> User:
    if actor.user is None:
        raise DomainError("A signed-in staff member is required.")
    return actor.user


# ---------------------------------------------------------------- create / simple transitions


@transaction.atomic
def session_create(
    actor: Actor,
    patient: Patient,
    protocol_key: str,
    scheduled_for: dt.datetime,
    *,
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
    record_event(actor, "create", patient=patient, obj=session)
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
    expected_version: int,
    reason: str = "",
    *,
    partial_reason: str = "",
    infusion: dict[str, Any] | None = None,
) -> DosingSession:
    """Check-in, start monitoring, start recovery and abort (the steps with no extra data).

    Starting monitoring marks dosing complete: refused until the route's administration record is
    complete (every ordered esketamine device, the IV stop, the SL hold), or, for esketamine, until a
    written ``partial_reason`` documents a partial dose. Aborting while an IV infusion runs records its
    stop as ``infusion_stop_record`` does (``infusion``: its stopped_at, infused_amount, infused_unit,
    witness) and wastes the rest of the draw with that witness (issue 14)."""
    from kapclinic.sessions import selectors as sessions_selectors

    if event not in (Event.CHECK_IN, Event.START_MONITORING, Event.START_RECOVERY, Event.ABORT):
        raise DomainError("That step has its own form.")
    session = _fresh(session)
    _check_version(session, expected_version)
    if event is Event.ABORT and sessions_selectors.infusion_running(session):
        from kapclinic.inventory.services import waste_residue

        why = "Session aborted" + (f": {reason.strip()}" if reason.strip() else "")
        stop = {"stopped_at": clock.now(), **(infusion or {})}
        infusion_stop_record(
            actor, session, expected_version, actual_rate_ml_per_h=None, early_stop_reason=why, **stop
        )
        expected_version += 1  # the stop saved the session
        waste_residue(actor, session, witness=stop.get("witness"), reason="IV infusion aborted: not infused")
    partial: Administration | None = None
    if event is Event.START_MONITORING and State(session.state) is State.DOSING:
        partial, reason = _dosing_complete_check(session, partial_reason)
    if event is Event.START_RECOVERY and State(session.state) is State.MONITORING:
        _recovery_start_check(session)
    session = _transition(actor, session, event, expected_version, reason=reason.strip())
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
        f"{plan.protocol_id}@{plan.protocol_version}",
        appointment.starts_at,
        appointment=appointment,
    )
    arrived_at = locked.checked_in_at if locked is not None else None
    if arrived_at is not None:
        session = _transition(
            actor,
            session,
            Event.CHECK_IN,
            session.version,
            reason=f"Arrival recorded at the front desk at {timezone.localtime(arrived_at):%H:%M}.",
            extra={"checked_in_at": arrived_at},
        )
    return session, True


def _link(session: DosingSession) -> dict[str, Any]:
    """The timeline line's link to the session page (built with reverse when the timeline is shown)."""
    kwargs = {"patient_id": session.patient_id, "session_id": session.pk}
    return {"url_name": "sessions:detail", "url_kwargs": kwargs}


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
    actor: Actor, session: DosingSession, expected_version: int, values: dict[str, Any]
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
    record_event(actor, "update", patient=session.patient, obj=session, detail="gate")
    return session


def baseline_reading(session: DosingSession) -> Reading | None:
    return latest_reading(
        Observation.objects.filter(session_id=session.pk, kind=ObservationKind.VITAL, phase="pre_dose")
        .order_by("-reading", "-id")
        .values_list("reading", "code", "value")[:5]
    )


def latest_reading(rows: Iterable[tuple[int, str, Any]]) -> Reading | None:
    """The newest reading of (reading, code, value) rows given newest first (ordered by -reading, -id,
    at most 5): the baseline (pre-dose) and final (recovery) readings are this over their phase's rows."""
    rows = list(rows)[:5]
    if not rows:
        return None
    latest = rows[0][0]
    return _reading_values((code, value) for reading, code, value in rows if reading == latest)


def _reading_values(pairs: Iterable[tuple[str, Any]]) -> Reading:
    """A Reading from (LOINC code, value) pairs; codes that are not vitals are ignored."""
    by_code = {v: k for k, v in ((vital, LOINC[vital].loinc) for vital in Vital)}
    values: dict[str, int] = {}
    for code, value in pairs:
        vital = by_code.get(code)
        if vital is not None:
            values[vital.value] = value
    return Reading(**values)


def previous_dose_at(session: DosingSession) -> dt.datetime | None:
    """First-dose time of the patient's previous dosed session (for the PHQ-9 window)."""
    return (
        DosingSession.objects.filter(patient_id=session.patient_id, first_dose_at__isnull=False)
        .exclude(pk=session.pk)
        .order_by("-first_dose_at")
        .values_list("first_dose_at", flat=True)
        .first()
    )


def session_phq9(session: DosingSession, now: dt.datetime | None = None) -> Any:
    """The PHQ-9 (measures app) that counts for this session, per the clinic's window setting."""
    from kapclinic.measures.selectors import session_phq9 as measures_session_phq9

    return measures_session_phq9(
        session.patient, now=now or clock.now(), previous_dose_at=previous_dose_at(session)
    )


NASAL_STEROID_DETAIL: dict[str, str] = {
    NasalSteroid.NONE.value: "None taken today.",
    NasalSteroid.OVER_1H.value: "Taken at least 1 hour before dosing.",
    NasalSteroid.WITHIN_1H.value: "Taken less than 1 hour before dosing; give it at least 1 hour before "
    "([S10] ref §1.3).",
}


def gate_checks(
    session: DosingSession,
    protocol: Protocol,
    now: dt.datetime | None = None,
    *,
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
        phq = session_phq9(session, now)
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
def gate_override(actor: Actor, session: DosingSession, item: str, reason: str) -> GateOverride:
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
    record_event(actor, "update", patient=session.patient, obj=session, detail=f"gate_override:{item}")
    return ov


@transaction.atomic
def gate_pass(actor: Actor, session: DosingSession, expected_version: int) -> DosingSession:
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
    return _transition(actor, session, Event.PASS_PREDOSE, expected_version, extra=extra)


# ---------------------------------------------------------------- dose


def _dec(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def calculate_for_session(session: DosingSession, inputs: dict[str, Any]) -> DoseCalculation:
    protocol = protocol_for(session)
    strengths = inputs.get("stocked_strengths") or None
    return calculate_dose(
        protocol,
        weight=Kg(session.weight_kg) if session.weight_kg is not None else None,
        height=Cm(session.height_cm) if session.height_cm is not None else None,
        ideal_body_weight=Kg(session.ideal_body_weight_kg)
        if session.ideal_body_weight_kg is not None
        else None,
        mg_per_kg=MgPerKg(d) if (d := _dec(inputs.get("mg_per_kg"))) is not None else None,
        fixed_dose=Mg(d) if (d := _dec(inputs.get("fixed_mg"))) is not None else None,
        vial_concentration=MgPerMl(d) if (d := _dec(inputs.get("concentration"))) is not None else None,
        diluent_volume=Ml(d) if (d := _dec(inputs.get("diluent_ml"))) is not None else None,
        infusion_time=Minutes(d) if (d := _dec(inputs.get("infusion_minutes"))) is not None else None,
        stocked_strengths=[Mg(s) for s in strengths] if strengths else None,
        override_reason=inputs.get("override_reason") or None,
        low_dose_reason=inputs.get("low_dose_reason") or None,
    )


def _order_snapshot(admin: Administration) -> dict[str, str]:
    """The fields of an order as it was, kept when a new order supersedes it."""
    names = (
        "product", "route", "dose_mg", "mg_per_kg", "weight_basis", "weight_used_kg", "maximum_mg",
        "ceiling_mg", "above_maximum", "override_reason", "below_minimum", "low_dose_reason",
        "concentration_mg_per_ml", "volume_ml", "diluent_ml", "infusion_minutes", "rate_ml_per_h",
        "devices", "units_description",
    )  # fmt: skip
    out: dict[str, str] = {}
    for name in names:
        value = getattr(admin, name)
        if value not in (None, ""):
            out[name] = str(value)
    return out


@transaction.atomic
def dose_order(
    actor: Actor, session: DosingSession, expected_version: int, inputs: dict[str, Any]
) -> Administration:
    if not clinic_can(actor, ClinicAction.ORDER_DOSE):
        raise DomainError("Only a prescriber can order the dose.")
    session = _fresh(session)
    _check_version(session, expected_version)
    if session.state != State.PREDOSE_PASSED:
        raise DomainError(
            "The dose can only be ordered after the pre-dose checks have passed and before dosing starts."
        )
    protocol = protocol_for(session)
    gaps = protocol_gaps_sentence(protocol)
    if gaps:
        raise DomainError(gaps)
    previous = Administration.objects.select_for_update().filter(session=session).first()
    reorder_reason = str(inputs.get("reorder_reason") or "").strip()
    if previous is not None and not reorder_reason:
        raise DomainError(
            "A dose is already ordered: say why it is being replaced (the earlier order stays in the "
            "record as superseded).",
            {"reorder_reason": ["Say why the earlier order is replaced."]},
        )
    calc = calculate_for_session(session, inputs)
    if not calc.ok or calc.dose is None:
        fields: dict[str, list[str]] = {}
        for r in calc.refusals:
            if r.startswith("Infusion time"):
                fields.setdefault("infusion_minutes", []).append(r)
            elif "below the protocol minimum" in r:
                fields.setdefault("low_dose_reason", []).append(r)
        raise DomainError(calc.refusals, fields)
    now = clock.now()
    if previous is not None:
        SupersededDoseOrder.objects.create(
            session=session,
            order=_order_snapshot(previous),
            ordered_by_id=previous.ordered_by_id,
            ordered_at=previous.ordered_at,
            double_checked_by_id=previous.double_checked_by_id,
            cosigned_by_id=previous.cosigned_by_id,
            superseded_by=_assert_user(actor),
            superseded_at=now,
            reason=reorder_reason,
        )
    values = {
        "product": protocol.product,
        "route": protocol.route,
        "dose_mg": calc.dose.value,
        "mg_per_kg": calc.mg_per_kg.value if calc.mg_per_kg else None,
        "weight_basis": calc.weight_basis.value if calc.weight_basis else "",
        "weight_used_kg": calc.weight_used.value if calc.weight_used else None,
        "maximum_mg": calc.maximum.value if calc.maximum else None,
        "above_maximum": calc.above_maximum,
        "override_reason": calc.override_reason or "",
        "concentration_mg_per_ml": _dec(inputs.get("concentration")),
        "volume_ml": calc.volume.volume.value if calc.volume else None,
        "diluent_ml": _dec(inputs.get("diluent_ml")),
        "infusion_minutes": int(calc.infusion_minutes.value) if calc.infusion_minutes else None,
        "ceiling_mg": calc.ceiling.value if calc.ceiling else None,
        "minimum_mg": calc.minimum.value if calc.minimum else None,
        "below_minimum": calc.below_minimum,
        "low_dose_reason": calc.low_dose_reason or "",
        "cosigned_by": None,
        "cosigned_at": None,
        "rate_ml_per_h": calc.rate.rate.value if calc.rate else None,
        "devices": calc.devices.devices if calc.devices else None,
        "units_description": (
            calc.lozenges.describe("lozenge")
            if calc.lozenges
            else f"{calc.devices.devices} × {calc.devices.device_strength} device"
            if calc.devices
            else ""
        ),
        "calculation": [{"label": s.label, "working": s.working} for s in calc.steps],
        "warnings": list(calc.warnings),
        "ordered_by": _assert_user(actor),
        "ordered_at": now,
        "double_checked_by": None,
        "double_checked_at": None,
    }
    admin, _created = Administration.objects.update_or_create(session=session, defaults=values)
    save_versioned(session, expected_version, [])  # bump the version: the order changed
    flags = [f for f, on in (("above_max", calc.above_maximum), ("below_min", calc.below_minimum)) if on]
    detail = "dose_order" + (";superseded" if previous is not None else "") + "".join(f";{f}" for f in flags)
    record_event(actor, "update", patient=session.patient, obj=session, detail=detail)
    return admin


@transaction.atomic
def dose_cosign(actor: Actor, session: DosingSession) -> Administration:
    """A second prescriber co-signs an order above the protocol maximum (its written reason stands on
    the record); dosing cannot start until they have (docs/clinical-reference-dosing.md §2)."""
    if not clinic_can(actor, ClinicAction.ORDER_DOSE):
        raise DomainError("Only a prescriber can co-sign a dose above the protocol maximum.")
    session = _fresh(session)
    admin = Administration.objects.select_for_update().filter(session=session).first()
    if admin is None:
        raise DomainError("There is no dose order to co-sign yet.")
    if not admin.above_maximum:
        raise DomainError("This order is within the protocol maximum; it needs no co-signature.")
    if admin.administered_at is not None:
        raise DomainError("The dose has already been given.")
    if admin.cosigned_by_id is not None:
        raise DomainError("This order is already co-signed.")
    if admin.ordered_by_id == actor.user_id:
        raise DomainError(
            "Co-signature: a second prescriber, not the one who ordered the dose, must co-sign an order "
            "above the protocol maximum."
        )
    admin.cosigned_by = actor.user
    admin.cosigned_at = clock.now()
    admin.save(update_fields=["cosigned_by", "cosigned_at"])
    record_event(actor, "sign", patient=session.patient, obj=session, detail="dose_cosign;above_max")
    add_timeline_event(
        session.patient,
        kind="sessions.dose_cosigned",
        title="Dose above the protocol maximum co-signed by a second prescriber",
        at=admin.cosigned_at,
        actor=actor,
        ref=session,
        **_link(session),
    )
    return admin


@transaction.atomic
def dose_double_check(actor: Actor, session: DosingSession) -> Administration:
    session = _fresh(session)
    admin = Administration.objects.select_for_update().filter(session=session).first()
    if admin is None:
        raise DomainError("There is no dose order to double-check yet.")
    if admin.administered_at is not None:
        raise DomainError("The dose has already been given.")
    if admin.ordered_by_id == actor.user_id:
        raise DomainError(
            "Double-check: a second staff member, not the prescriber who ordered the dose, must check it."
        )
    admin.double_checked_by = actor.user
    admin.double_checked_at = clock.now()
    admin.save(update_fields=["double_checked_by", "double_checked_at"])
    record_event(actor, "update", patient=session.patient, obj=session, detail="dose_double_check")
    return admin


@transaction.atomic
def dose_double_check_withdraw(actor: Actor, session: DosingSession) -> Administration:
    """The person who double-checked the dose withdraws it before the dose is given (for example because
    she will give it herself, and the person who double-checks cannot also give it). Audited; refused
    once the dose has been given or for anyone but the person who checked."""
    session = _fresh(session)
    admin = Administration.objects.select_for_update().filter(session=session).first()
    if admin is None or admin.double_checked_by_id is None:
        raise DomainError("There is no double-check to withdraw.")
    if admin.administered_at is not None:
        raise DomainError(
            "The dose has already been given, so its double-check is part of the record and cannot be "
            "withdrawn."
        )
    if admin.double_checked_by_id != actor.user_id:
        raise DomainError("Only the person who double-checked the dose can withdraw that double-check.")
    admin.double_checked_by = None
    admin.double_checked_at = None
    admin.save(update_fields=["double_checked_by", "double_checked_at"])
    record_event(actor, "update", patient=session.patient, obj=session, detail="dose_double_check_withdrawn")
    return admin


@transaction.atomic
def dosing_start(
    actor: Actor,
    session: DosingSession,
    expected_version: int,
    *,
    lot_number: str,
    expiry_date: dt.date | None,
) -> DosingSession:
    session = _fresh(session)
    _check_version(session, expected_version)
    if State(session.state) is not State.PREDOSE_PASSED:
        try:
            sm.next_state(State(session.state), Event.START_DOSING)
        except IllegalTransition as e:
            raise DomainError(str(e)) from None
    admin = Administration.objects.select_for_update().filter(session=session).first()
    problems: list[str] = []
    fields: dict[str, list[str]] = {}
    if admin is None:
        problems.append("Dose: no dose has been ordered by a prescriber.")
    protocol = protocol_for(session)
    if admin is not None and admin.awaiting_cosign:
        problems.append(
            f"Co-signature: the dose of {admin.dose_mg.normalize():f} mg is above the protocol maximum "
            f"of {(admin.maximum_mg or Decimal(0)).normalize():f} mg; a second prescriber must co-sign "
            "the order before dosing can start."
        )
    if admin is not None and protocol.dose.double_check_required:
        if admin.double_checked_by_id is None:
            problems.append(
                f"Double-check: {protocol.route} doses must be double-checked by a second staff member."
            )
        elif admin.double_checked_by_id == actor.user_id:
            problems.append(
                "Double-check: the person who double-checked the dose cannot also be the one giving it."
            )
    if not lot_number.strip():
        problems.append("Lot number is required.")
        fields["lot_number"] = ["Enter the lot number of the medicine used."]
    if expiry_date is None:
        problems.append("Expiry date is required.")
        fields["expiry_date"] = ["Enter the expiry date of the medicine used."]
    elif expiry_date < clock.today():
        problems.append(f"Expiry date {expiry_date:%Y-%m-%d} has passed; this medicine cannot be used.")
        fields["expiry_date"] = ["This medicine has expired."]
    if problems:
        raise DomainError(problems, fields)
    assert admin is not None
    now = clock.now()
    admin.lot_number = lot_number.strip()
    admin.expiry_date = expiry_date
    admin.administered_by = actor.user
    admin.administered_at = now
    admin.save(update_fields=["lot_number", "expiry_date", "administered_by", "administered_at"])
    session = _transition(actor, session, Event.START_DOSING, expected_version)
    if protocol.dose.form == "nasal_device" and admin.devices:
        # The first device is used when dosing starts: its time is the first-dose time (clock zero).
        assert session.first_dose_at is not None
        DeviceUse.objects.create(
            administration=admin,
            number=1,
            at=session.first_dose_at,
            recorded_by=_assert_user(actor),
            recorded_at=session.first_dose_at,
        )
    return session


# ---------------------------------------------------------------- dosing draws from stock (issue 14)


def stock_form(session: DosingSession) -> bool:
    """Whether this session's dose is drawn from controlled-substance stock (vials, esketamine packs)."""
    from kapclinic.inventory.services import STOCKED_FORMS

    return protocol_for(session).dose.form in STOCKED_FORMS


NO_STOCK = (
    "Controlled substances: this clinic has no {what} on hand (in stock, not expired) to give this dose "
    "from. Receive stock on the Controlled substances page first."
)


@transaction.atomic
def dosing_start_from_stock(
    actor: Actor,
    session: DosingSession,
    expected_version: int,
    *,
    container_id: int | None,
    drawn_mg: Decimal | None = None,
    second_container_id: int | None = None,
    second_drawn_mg: Decimal | None = None,
) -> DosingSession:
    """Dosing starts from the container the nurse or prescriber chose (or two containers of the same
    strength when the first holds less than the dose): their lots and expiry are the administration's
    (the earlier expiry), and each container's ledger line (the dose given from it, linked to this
    session) is written in the same transaction. Nothing is stored when any of it is refused."""
    from kapclinic.inventory import services as inventory
    from kapclinic.inventory.models import Container

    protocol = protocol_for(session)
    form = protocol.dose.form
    kind = inventory.STOCKED_FORMS.get(form)
    if kind is None:
        raise DomainError("This session's dose is not drawn from controlled-substance stock.")
    if container_id is None:
        if not inventory.stock_for_form(session.clinic, form):
            raise DomainError(NO_STOCK.format(what=kind.label.lower() + "s"))
        raise DomainError(
            "Choose the container the dose is drawn from.", {"container": ["Choose the container."]}
        )
    ids = [container_id] if second_container_id is None else [container_id, second_container_id]
    found = {c.pk: c for c in Container.objects.filter(pk__in=ids, registration__clinic=session.clinic)}
    if container_id not in found:
        raise DomainError("That container is not in this clinic's stock.", {"container": ["Choose again."]})
    if second_container_id is not None and second_container_id not in found:
        raise DomainError(
            "That container is not in this clinic's stock.", {"second_container": ["Choose again."]}
        )
    chosen = [found[i] for i in ids]
    lots = list(dict.fromkeys(c.lot for c in chosen))
    session = dosing_start(
        actor,
        session,
        expected_version,
        lot_number=" + ".join(lots)[:60],
        expiry_date=min(c.expiry for c in chosen),
    )
    admin = Administration.objects.get(session=session)
    try:
        inventory.draw_for_session(
            actor,
            session,
            container_id=container_id,
            form=form,
            dose_mg=admin.dose_mg if kind == "vial" else None,
            devices=admin.devices if kind != "vial" else None,
            drawn_mg=drawn_mg,
            route=protocol.route,
            witness=admin.double_checked_by,
            second_container_id=second_container_id,
            second_drawn_mg=second_drawn_mg,
        )
    except DomainError as e:
        raise DomainError(e.all_messages, {"container": e.all_messages[:1]}) from None
    return session


def _stock_discharge_problems(session: DosingSession) -> list[str]:
    from kapclinic.inventory.services import discharge_stock_problems

    return discharge_stock_problems(session)


# ---------------------------------------------------------------- administration record (ref §6.1)


def administration_record(session: DosingSession, admin: Administration | None) -> sm.AdministrationRecord:
    """What has been recorded of the dose given, as the pure completion rule reads it."""
    form = protocol_for(session).dose.form
    if admin is None:
        return sm.AdministrationRecord(form)
    return sm.AdministrationRecord(
        form,
        devices_ordered=admin.devices or 0,
        devices_recorded=admin.device_uses.count(),
        infusion_stopped=admin.infusion_stopped_at is not None,
        lozenge_recorded=admin.hold_minutes is not None and bool(admin.sl_outcome),
        partial_reason=admin.partial_dose_reason,
    )


def _dosing_complete_check(session: DosingSession, partial_reason: str) -> tuple[Administration | None, str]:
    """Refuse "dosing complete" while the administration record has gaps. Returns the administration
    when a partial esketamine dose is being documented (its reason is stored), and the transition
    reason to record."""
    admin = Administration.objects.select_for_update().filter(session=session).first()
    partial_reason = partial_reason.strip()
    record = administration_record(session, admin)
    gaps = sm.dosing_completion_gaps(
        sm.AdministrationRecord(
            record.form,
            devices_ordered=record.devices_ordered,
            devices_recorded=record.devices_recorded,
            infusion_stopped=record.infusion_stopped,
            lozenge_recorded=record.lozenge_recorded,
            partial_reason=partial_reason,
        )
    )
    if gaps:
        raise DomainError(list(gaps), {"partial_reason": [gaps[0]]} if record.partial else None)
    if admin is None or not record.partial:
        return None, ""
    admin.partial_dose_reason = partial_reason
    admin.save(update_fields=["partial_dose_reason"])
    return (
        admin,
        f"Partial dose, {record.devices_recorded} of {record.devices_ordered} devices: {partial_reason}",
    )


def _dosing_admin(session: DosingSession, form: str, wrong_route: str) -> Administration:
    """The administration of a session that is dosing, with the route the step is for."""
    if State(session.state) is not State.DOSING:
        raise DomainError(
            "The dose given is recorded while the session is dosing, before dosing is marked complete; "
            f"the session is {session.get_state_display().lower()}."
        )
    admin = Administration.objects.select_for_update().filter(session=session).first()
    if admin is None or admin.administered_at is None:
        raise DomainError("Dosing has not started, so there is no dose to record.")
    if protocol_for(session).dose.form != form:
        raise DomainError(wrong_route)
    return admin


def _time_problems(label: str, at: dt.datetime, session: DosingSession) -> list[str]:
    return sm.check_entered_time(
        label,
        timezone.localtime(at),
        not_before=timezone.localtime(session.checked_in_at) if session.checked_in_at else None,
        now=timezone.localtime(clock.now()),
    )


@transaction.atomic
def device_record(actor: Actor, session: DosingSession, expected_version: int, at: dt.datetime) -> DeviceUse:
    """The next esketamine device, used at ``at`` (back-dated within the session, never in the future):
    refused beyond the devices ordered or less than the protocol's spacing after the previous device
    (5 minutes, [S7] ref §1.3)."""
    session = _fresh(session)
    _check_version(session, expected_version)
    admin = _dosing_admin(session, "nasal_device", "This session's dose is not given with nasal devices.")
    previous = admin.device_uses.order_by("-number").first()
    number = (previous.number if previous else 0) + 1
    spacing = protocol_for(session).dose.device_spacing_minutes.value
    assert spacing is not None  # the loader refuses a nasal-device protocol without it
    problems = _time_problems(f"Device {number}", at, session)
    problems += sm.check_device(
        number,
        timezone.localtime(at),
        ordered=admin.devices or 0,
        previous_at=timezone.localtime(previous.at) if previous else None,
        spacing_minutes=int(spacing.value),
    )
    if problems:
        raise DomainError(problems, {"at": [problems[0]]})
    use = DeviceUse.objects.create(
        administration=admin, number=number, at=at, recorded_by=_assert_user(actor), recorded_at=clock.now()
    )
    if stock_form(session):
        # the device's administration line, from the pack it was taken out of (issue 14)
        from kapclinic.inventory.services import administer_device

        checker = admin.double_checked_by if admin.double_checked_by_id != actor.user_id else None
        administer_device(actor, session, at=at, route=protocol_for(session).route, witness=checker)
    save_versioned(session, expected_version, [])
    record_event(actor, "update", patient=session.patient, obj=session, detail=f"device:{number}")
    return use


#: Units the amount an IV infusion delivered may be entered in: mg of ketamine, or mL of the infusion
#: (drug plus diluent) as the pump counts it.
INFUSED_UNITS = (("mg", "mg of ketamine"), ("mL", "mL of the infusion (the pump's volume infused)"))


def _infused_mg(
    admin: Administration, amount: Decimal | None, unit: str
) -> tuple[Decimal | None, str, list[str]]:
    """The amount an infusion delivered, in mg, with how it was reckoned; or the problems with it.
    mL of the infusion are converted at the bag's concentration (the dose in drug plus diluent). An
    amount above the dose, below zero or in another unit is refused; nothing is clamped."""
    if amount is None:
        return None, "", []
    dose = admin.dose_mg
    if unit not in dict(INFUSED_UNITS):
        return None, "", [f"Amount infused: enter it in mg or in mL of the infusion, not in {unit!r}."]
    if amount < 0:
        return None, "", ["Amount infused: it cannot be below zero."]
    if unit == "mg":
        mg, how = amount, f"{_num(amount)} mg"
    else:
        if admin.volume_ml is None:
            return None, "", ["Amount infused: this order has no infusion volume; enter the amount in mg."]
        total = admin.volume_ml + (admin.diluent_ml or Decimal(0))
        mg = (amount * dose / total).quantize(Decimal("0.01"))
        how = f"{_num(amount)} mL of the {_num(total)} mL infusion = {_num(mg)} mg"
    if mg > dose:
        return None, "", [
            f"Amount infused: {how} is more than the {_num(dose)} mg ordered; enter what the pump delivered."
        ]
    return mg, how, []


def _num(value: Decimal) -> str:
    return f"{value.normalize():f}" if value != 0 else "0"


@transaction.atomic
def infusion_stop_record(
    actor: Actor,
    session: DosingSession,
    expected_version: int,
    *,
    stopped_at: dt.datetime,
    actual_rate_ml_per_h: Decimal | None,
    early_stop_reason: str = "",
    infused_amount: Decimal | None = None,
    infused_unit: str = "mg",
    witness: Any = None,
) -> Administration:
    """When the IV infusion stopped (it started at the first-dose time) and the pump rate if changed.
    A stop before the ordered infusion time needs a written reason, shown on the record, and, when the
    dose was drawn from stock, what the infusion actually delivered (``infused_amount`` in mg or mL of
    the infusion): the ledger's administration lines are corrected to it by a witnessed reversal and a
    new line, and what stays in the bag is wasted with a witness before discharge (issue 14;
    inventory.services.correct_for_partial_infusion). An amount may also be entered for a full-length
    infusion that delivered less (a rate turned down)."""
    from kapclinic.inventory.models import SessionDraw

    session = _fresh(session)
    _check_version(session, expected_version)
    admin = _dosing_admin(session, "vial_iv", "This session's dose is not an IV infusion.")
    if admin.infusion_stopped_at is not None:
        raise DomainError("The infusion stop is already recorded.")
    problems = _time_problems("Infusion stop", stopped_at, session)
    problems += sm.check_infusion_stop(
        timezone.localtime(stopped_at),
        started_at=timezone.localtime(admin.administered_at) if admin.administered_at else None,
        actual_rate_ml_per_h=actual_rate_ml_per_h,
    )
    early_stop_reason = early_stop_reason.strip()
    early: list[str] = []
    ran: int | None = None
    if not problems and admin.administered_at is not None and admin.infusion_minutes:
        ran = sm.minutes_between(admin.administered_at, stopped_at)
        if ran < admin.infusion_minutes and not early_stop_reason:
            early.append(
                f"Early stop: the infusion ran {ran} min of the {admin.infusion_minutes} min ordered; "
                "enter the reason it was stopped early."
            )
        elif ran >= admin.infusion_minutes:
            early_stop_reason = ""
    infused_mg, how, infused = _infused_mg(admin, infused_amount, infused_unit)
    stopped_early = ran is not None and admin.infusion_minutes is not None and ran < admin.infusion_minutes
    drawn = SessionDraw.objects.filter(session=session, unit="mg").exists()
    if stopped_early and drawn and infused_amount is None:
        rate = actual_rate_ml_per_h or admin.rate_ml_per_h
        hint = ""
        if rate is not None and admin.volume_ml is not None and ran is not None:
            ml = (rate * ran / 60).quantize(Decimal("0.1"))
            est, _how, bad = _infused_mg(admin, ml, "mL")
            if est is not None and not bad:
                hint = (
                    f" At {_num(rate)} mL/h for {ran} min the pump would have delivered about "
                    f"{_num(ml)} mL ({_num(est)} mg)."
                )
        infused.append(
            "Amount infused: the infusion stopped early, so enter what it delivered (mg, or mL from the "
            f"pump); the ledger records that as given and the rest in the bag as waste.{hint}"
        )
    if problems or early or infused:
        fields = {"stopped_at": [p for p in problems if not p.startswith("Actual rate")]}
        rate_problems = [p for p in problems if p.startswith("Actual rate")]
        raise DomainError(
            problems + early + infused,
            {
                **({"actual_rate_ml_per_h": rate_problems} if rate_problems else {}),
                **({"early_stop_reason": early} if early else {}),
                **({"infused_amount": infused} if infused else {}),
                **({"stopped_at": fields["stopped_at"]} if fields["stopped_at"] else {}),
            },
        )
    partial = infused_mg is not None and infused_mg < admin.dose_mg
    admin.infusion_stopped_at = stopped_at
    admin.actual_rate_ml_per_h = actual_rate_ml_per_h
    admin.infusion_stop_reason = early_stop_reason
    admin.infused_mg = infused_mg if partial else None
    admin.route_recorded_by = _assert_user(actor)
    admin.route_recorded_at = clock.now()
    admin.save(
        update_fields=[
            "infusion_stopped_at",
            "actual_rate_ml_per_h",
            "infusion_stop_reason",
            "infused_mg",
            "route_recorded_by",
            "route_recorded_at",
        ]
    )
    if partial and drawn:
        from kapclinic.inventory.services import correct_for_partial_infusion

        assert infused_mg is not None
        ran_text = (
            f" after {ran} of {admin.infusion_minutes} min" if stopped_early and ran is not None else ""
        )
        try:
            correct_for_partial_infusion(
                actor,
                session,
                infused_mg=infused_mg,
                witness=witness,
                reason=(
                    f"IV infusion stopped{ran_text}: {how} infused of the {_num(admin.dose_mg)} mg "
                    "dose; the rest stayed in the bag (wasted separately)"
                ),
            )
        except DomainError as e:
            about_witness = [m for m in e.all_messages if "witness" in m.lower()]
            raise DomainError(
                e.all_messages, {"witness_email": about_witness} if about_witness else {}
            ) from None
    save_versioned(session, expected_version, [])
    detail = "infusion_stop" + (";partial" if partial else "")
    record_event(actor, "update", patient=session.patient, obj=session, detail=detail)
    return admin


@transaction.atomic
def lozenge_record(
    actor: Actor, session: DosingSession, expected_version: int, *, hold_minutes: int, outcome: str
) -> Administration:
    """How long the sublingual lozenge was held and whether it was spat out or swallowed."""
    session = _fresh(session)
    _check_version(session, expected_version)
    admin = _dosing_admin(session, "lozenge", "This session's dose is not a sublingual lozenge.")
    if admin.hold_minutes is not None:
        raise DomainError("The lozenge hold time is already recorded.")
    assert admin.administered_at is not None
    problems = sm.check_lozenge(
        hold_minutes, outcome, minutes_since_first_dose=sm.minutes_between(admin.administered_at, clock.now())
    )
    if problems:
        raise DomainError(
            problems,
            {
                "hold_minutes": [p for p in problems if p.startswith("Hold time")],
                "outcome": [p for p in problems if p.startswith("Spat")],
            },
        )
    admin.hold_minutes = hold_minutes
    admin.sl_outcome = outcome
    admin.route_recorded_by = _assert_user(actor)
    admin.route_recorded_at = clock.now()
    admin.save(update_fields=["hold_minutes", "sl_outcome", "route_recorded_by", "route_recorded_at"])
    save_versioned(session, expected_version, [])
    record_event(actor, "update", patient=session.patient, obj=session, detail="lozenge_hold")
    return admin


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
    record_event(
        actor,
        "create",
        patient=session.patient,
        obj=session,
        detail=f"vitals:{len(rows)}:alerts:{len(alerts)}",
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
    actor: Actor, session: DosingSession, kind: str, value: int
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
    record_event(actor, "create", patient=session.patient, obj=session, detail=f"rating:{kind}")
    return obs, alerts


@transaction.atomic
def event_record(actor: Actor, session: DosingSession, kind: str, code: str, text: str) -> SessionEvent:
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
    record_event(actor, "create", patient=session.patient, obj=session, detail=f"event:{kind}")
    return ev


@transaction.atomic
def alert_acknowledge(actor: Actor, session: DosingSession, alert_id: int, action: str) -> SessionAlert:
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
    record_event(actor, "update", patient=session.patient, obj=session, detail=f"alert_ack:{alert.rule}")
    return alert


# ---------------------------------------------------------------- discharge


def last_rating(session: DosingSession, kind: str) -> int | None:
    obs = session.observations.filter(kind=kind).order_by("-at", "-id").first()
    return obs.value if obs else None


def final_reading(session: DosingSession) -> Reading | None:
    return latest_reading(
        session.observations.filter(kind=ObservationKind.VITAL, phase="recovery")
        .order_by("-reading", "-id")
        .values_list("reading", "code", "value")[:5]
    )


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
            Administration.objects.filter(session=session).annotate(last_device=Max("device_uses__at")).first()
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


MISSED_CHECK_CODE = "missed_check:"


def missed_check_explanations(session: DosingSession) -> dict[int, str]:
    """{minutes after the dose start: the written reason} for the scheduled checks explained as missed."""
    out: dict[int, str] = {}
    for code, text in session.events.filter(code__startswith=MISSED_CHECK_CODE).values_list("code", "text"):
        out[int(code.removeprefix(MISSED_CHECK_CODE))] = text
    return out


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
    actor: Actor, session: DosingSession, offset_minutes: int, text: str
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
    record_event(actor, "create", patient=session.patient, obj=session, detail="missed_check_explained")
    return ev


@transaction.atomic
def session_discharge(
    actor: Actor,
    session: DosingSession,
    expected_version: int,
    *,
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
        expected_version,
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


def process_note_add(actor: Actor, session: DosingSession, text: str) -> ProcessNote:
    """The therapist's process note for this session: a psychotherapy process note of the notes app,
    encrypted at rest and linked to the session; readable only by its author (and whoever the author
    shares it with), never part of the monitoring record, the REMS record, exports or the portal."""
    try:
        return process_note_create(actor, session.patient, text, dosing_session=session)
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
    record_event(actor, "update", patient=session.patient, obj=session, detail="rems_submitted")
    return session


# ---------------------------------------------------------------- clinic settings (prescriber)


def _settings_actor(actor: Actor) -> None:
    if not clinic_can(actor, ClinicAction.CHANGE_CLINICAL_SETTINGS):
        raise DomainError("Only a prescriber can change the clinic's clinical settings.")


def _need_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise DomainError(
            "Reason is required: every change to a clinical setting needs a written reason.",
            {"reason": ["Say why the setting changes."]},
        )
    return reason


@transaction.atomic
def alert_routing_update(
    actor: Actor, *, on_call: Any, escalation_hours: int, reason: str, expected_stamp: int
) -> list[ClinicSettingChange]:
    """Set the clinic's on-call prescriber and safety-alert escalation time (area "alerts" of the
    change history). The on-call prescriber can be replaced but never removed: alerts of patients
    without a care team, and escalations, go to them."""
    from kapclinic.accounts.models import Clinic

    _settings_actor(actor)
    assert actor.clinic is not None and actor.user is not None
    clinic = (
        Clinic.objects.select_for_update(of=("self",))
        .select_related("on_call_prescriber")
        .get(pk=actor.clinic.pk)
    )
    latest = (
        ClinicSettingChange.objects.filter(clinic=clinic, area="alerts")
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    if (latest or 0) != expected_stamp:
        raise ConflictError()
    if on_call is None and clinic.on_call_prescriber_id is not None:
        raise DomainError(
            "The on-call prescriber can be replaced but not removed: choose who takes over.",
            {"on_call_prescriber": ["Choose the prescriber who takes over."]},
        )
    changes: list[tuple[str, str, str]] = []
    if on_call is not None and on_call.pk != clinic.on_call_prescriber_id:
        old = clinic.on_call_prescriber
        changes.append(("on_call_prescriber", old.full_name if old else "", on_call.full_name))
        clinic.on_call_prescriber = on_call
    if escalation_hours != clinic.alert_escalation_hours:
        changes.append(("alert_escalation_hours", str(clinic.alert_escalation_hours), str(escalation_hours)))
        clinic.alert_escalation_hours = escalation_hours
    if not changes:
        return []
    reason = _need_reason(reason)
    clinic.save(update_fields=["on_call_prescriber", "alert_escalation_hours"])
    now = clock.now()
    out = [
        ClinicSettingChange.objects.create(
            clinic=clinic, area="alerts", key=name, old_value=old, new_value=new, reason=reason,
            by=actor.user, at=now,
        )
        for name, old, new in changes
    ]  # fmt: skip
    record_event(
        actor,
        "admin",
        object_type="accounts.clinic",
        object_id=str(clinic.pk),
        detail="alert routing: " + ",".join(n for n, _o, _n in changes),
    )
    actor.clinic.on_call_prescriber = clinic.on_call_prescriber
    actor.clinic.alert_escalation_hours = clinic.alert_escalation_hours
    return out


@transaction.atomic
def protocol_settings_update(
    actor: Actor, protocol_id: str, values: dict[str, str | None], *, reason: str, expected_stamp: int
) -> list[ClinicSettingChange]:
    """Set (or clear, with None) the clinic's values for ``protocol_id``. Refused with a sentence for a
    non-prescriber or a missing reason; ConflictError when someone changed this protocol's settings since
    the page was loaded (``expected_stamp`` = id of the latest change then, 0 for none)."""
    _settings_actor(actor)
    clinic = actor.clinic
    assert clinic is not None and actor.user is not None
    latest = (
        ClinicSettingChange.objects.select_for_update()
        .filter(clinic=clinic, area="protocol", protocol_id=protocol_id)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    if (latest or 0) != expected_stamp:
        raise ConflictError()
    current = dict(
        ClinicProtocolSetting.objects.filter(clinic=clinic, protocol_id=protocol_id).values_list(
            "key", "value"
        )
    )
    diffs = [(k, current.get(k), v) for k, v in values.items() if (current.get(k) or None) != (v or None)]
    if not diffs:
        return []
    reason = _need_reason(reason)
    now = clock.now()
    out = []
    for key, old, new in diffs:
        if new is None:
            ClinicProtocolSetting.objects.filter(clinic=clinic, protocol_id=protocol_id, key=key).delete()
        else:
            ClinicProtocolSetting.objects.update_or_create(
                clinic=clinic,
                protocol_id=protocol_id,
                key=key,
                defaults={"value": new, "set_by": actor.user, "set_at": now},
            )
        out.append(
            ClinicSettingChange.objects.create(
                clinic=clinic,
                area="protocol",
                protocol_id=protocol_id,
                key=key,
                old_value=old or "",
                new_value=new or "",
                reason=reason,
                by=actor.user,
                at=now,
            )
        )
    request_cache.forget()  # the rest of this request (and the check below) reads the new values
    clinic_protocol(clinic.pk, protocol_id)  # the stored values must still make a valid protocol
    record_event(
        actor,
        "admin",
        object_type="kap_sessions.clinicprotocolsetting",
        object_id=protocol_id,
        detail=f"protocol settings {protocol_id}: " + ",".join(k for k, _o, _n in diffs),
    )
    return out


@transaction.atomic
def measure_settings_update(
    actor: Actor, values: dict[str, Any], *, reason: str, expected_version: int
) -> list[ClinicSettingChange]:
    """The measures app's clinic settings (alert timing, item 9 urgency, PCL-5 cut-off, link expiry,
    pre-session PHQ-9 window), recorded with who, when and why, and audited once."""
    from kapclinic.measures.services import measure_settings_apply

    _settings_actor(actor)
    assert actor.clinic is not None and actor.user is not None
    changes = measure_settings_apply(actor.clinic, values, expected_version, actor.user)
    if not changes:
        return []
    reason = _need_reason(reason)  # refusing here rolls the write back (one transaction)
    now = clock.now()
    out = [
        ClinicSettingChange.objects.create(
            clinic=actor.clinic,
            area="measures",
            key=name,
            old_value=old,
            new_value=new,
            reason=reason,
            by=actor.user,
            at=now,
        )
        for name, old, new in changes
    ]
    record_event(
        actor,
        "admin",
        object_type="measures.measuresettings",
        object_id=str(actor.clinic.pk),
        detail="measure settings: " + ",".join(n for n, _o, _n in changes),
    )
    return out
