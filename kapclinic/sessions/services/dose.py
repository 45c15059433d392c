"""The dose: calculation, the prescriber's order and co-signature, the nurse's double check, dosing
start (from stock when the clinic keeps it, issue 14)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import transaction

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
from kapclinic.clinical.session_state import Event, IllegalTransition, State
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.concurrency import save_versioned
from kapclinic.core.errors import DomainError
from kapclinic.patients.services import add_timeline_event
from kapclinic.policy import ClinicAction, clinic_can
from kapclinic.sessions.models import (
    Administration,
    DeviceUse,
    DosingSession,
    SupersededDoseOrder,
)
from kapclinic.sessions.services.common import (
    _assert_user,
    _audit,
    _check_version,
    _fresh,
    _link,
    _transition,
    protocol_for,
    protocol_gaps_sentence,
)

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
    actor: Actor, session: DosingSession, *, expected_version: int, inputs: dict[str, Any]
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
    _audit(
        actor,
        session,
        "update",
        "session.dose_order",
        detail,
        {"superseded": previous is not None, "flags": flags},
    )
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
    _audit(actor, session, "sign", "session.dose_cosign", "dose_cosign;above_max", {"flags": ["above_max"]})
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
    _audit(actor, session, "update", "session.dose_double_check", "dose_double_check")
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
    _audit(actor, session, "update", "session.dose_double_check_withdrawn", "dose_double_check_withdrawn")
    return admin


@transaction.atomic
def dosing_start(
    actor: Actor,
    session: DosingSession,
    *,
    expected_version: int,
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
    session = _transition(actor, session, Event.START_DOSING, expected_version=expected_version)
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
    *,
    expected_version: int,
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
        expected_version=expected_version,
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
