"""Administration record (ref §6.1): what was given, by which route and when it ended
(devices used, infusion stopped, lozenge)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from kapclinic.clinical import session_state as sm
from kapclinic.clinical.session_state import State
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.concurrency import save_versioned
from kapclinic.core.errors import DomainError
from kapclinic.sessions.models import (
    Administration,
    DeviceUse,
    DosingSession,
)
from kapclinic.sessions.services.common import _assert_user, _audit, _check_version, _fresh, protocol_for
from kapclinic.sessions.services.dose import stock_form

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
def device_record(
    actor: Actor, session: DosingSession, *, expected_version: int, at: dt.datetime
) -> DeviceUse:
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
    _audit(actor, session, "update", "session.device_used", f"device:{number}", {"device": number})
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
        return (
            None,
            "",
            [
                f"Amount infused: {how} is more than the {_num(dose)} mg ordered; "
                "enter what the pump delivered."
            ],
        )
    return mg, how, []


def _num(value: Decimal) -> str:
    return f"{value.normalize():f}" if value != 0 else "0"


@transaction.atomic
def infusion_stop_record(
    actor: Actor,
    session: DosingSession,
    *,
    expected_version: int,
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
    _audit(actor, session, "update", "session.infusion_stop", detail, {"partial": partial})
    return admin


@transaction.atomic
def lozenge_record(
    actor: Actor, session: DosingSession, *, expected_version: int, hold_minutes: int, outcome: str
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
    _audit(actor, session, "update", "session.lozenge_hold", "lozenge_hold")
    return admin
