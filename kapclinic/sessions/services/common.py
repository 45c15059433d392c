"""Shared by every phase: the session's protocol with the clinic's settings, re-reading and version
checks, the one state-transition helper, the timeline link."""

from __future__ import annotations

from typing import Any

from kapclinic.accounts.models import User
from kapclinic.audit.services import record_event
from kapclinic.clinical import session_state as sm
from kapclinic.clinical.protocols import Protocol, apply_clinic_settings, get_protocol
from kapclinic.clinical.session_state import Event, IllegalTransition, State
from kapclinic.core import clock, request_cache
from kapclinic.core.actor import Actor
from kapclinic.core.concurrency import ConflictError, save_versioned
from kapclinic.core.errors import DomainError
from kapclinic.patients.models import Patient
from kapclinic.sessions.models import (
    ClinicProtocolSetting,
    DosingSession,
    SessionTransition,
)

# ---------------------------------------------------------------- protocol with clinic settings


def _audit(
    actor: Actor,
    session: DosingSession,
    kind: str,
    name: str,
    detail: str,
    data: dict[str, Any] | None = None,
) -> None:
    """The audit event of a step on a dosing session: its kind (view, update, ...), namespaced name
    (`session.transition`), short code and data (codes and counts, never clinical text)."""
    record_event(actor, kind, patient=session.patient, obj=session, detail=detail, name=name, data=data)


def protocol_for(session: DosingSession) -> Protocol:
    return clinic_protocol(session.clinic_id, session.protocol_id, version=session.protocol_version)


def clinic_protocol(clinic_id: int, protocol_id: str, *, version: str | None = None) -> Protocol:
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
    *,
    expected_version: int,
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
    _audit(
        actor,
        session,
        "update",
        "session.transition",
        f"transition:{event.value}",
        {"event": event.value, "from": current.value, "to": target.value},
    )
    return session


def _assert_user(actor: Actor) -> User:
    if actor.user is None:
        raise DomainError("A signed-in staff member is required.")
    return actor.user


def _link(session: DosingSession) -> dict[str, Any]:
    """The timeline line's link to the session page (built with reverse when the timeline is shown)."""
    kwargs = {"patient_id": session.patient_id, "session_id": session.pk}
    return {"url_name": "sessions:detail", "url_kwargs": kwargs}
