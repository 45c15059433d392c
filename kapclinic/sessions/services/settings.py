"""Clinic settings kept by prescribers: alert routing, protocol settings and measure settings, each
change recorded with its reason."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from kapclinic.audit.services import record_event
from kapclinic.core import clock, request_cache
from kapclinic.core.actor import Actor
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.policy import ClinicAction, clinic_can
from kapclinic.sessions.models import (
    ClinicProtocolSetting,
    ClinicSettingChange,
)
from kapclinic.sessions.services.common import clinic_protocol

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
        name="clinic.alert_routing_update",
        data={"changes": {n: {"old": o, "new": v} for n, o, v in changes}},
    )
    actor.clinic.on_call_prescriber = clinic.on_call_prescriber
    actor.clinic.alert_escalation_hours = clinic.alert_escalation_hours
    return out


@transaction.atomic
def protocol_settings_update(
    actor: Actor, protocol_id: str, *, values: dict[str, str | None], reason: str, expected_stamp: int
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
        name="protocol_setting.update",
        data={"protocol": protocol_id, "changes": {k: {"old": o, "new": v} for k, o, v in diffs}},
    )
    return out


@transaction.atomic
def measure_settings_update(
    actor: Actor, *, values: dict[str, Any], reason: str, expected_version: int
) -> list[ClinicSettingChange]:
    """The measures app's clinic settings (alert timing, item 9 urgency, PCL-5 cut-off, link expiry,
    pre-session PHQ-9 window), recorded with who, when and why, and audited once."""
    from kapclinic.measures.services import measure_settings_apply

    _settings_actor(actor)
    assert actor.clinic is not None and actor.user is not None
    changes = measure_settings_apply(actor.clinic, values, expected_version=expected_version, user=actor.user)
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
        name="measure_settings.update",
        data={"changes": {n: {"old": o, "new": v} for n, o, v in changes}},
    )
    return out
