"""Writes for controlled-substance records. Every function is transactional and audited.

Every ledger line is written under ``select_for_update`` on its container row, so two nurses drawing
from the same vial at once are serialised: the second sees the first's balance (and is refused if the
vial no longer holds enough). The arithmetic and its refusal sentences are kapclinic/clinical/ledger.py.
Facts: docs/controlled-substances.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction

from kapclinic.accounts.models import Role
from kapclinic.audit.services import record_event
from kapclinic.clinical import ledger as core
from kapclinic.clinical.dosing import Mg, Ml, QuantityError
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.errors import DomainError
from kapclinic.inventory.models import (
    ClinicHoliday,
    Container,
    Count,
    CountLine,
    Destruction,
    DestructionMethod,
    Discrepancy,
    EntryKind,
    InventorySettings,
    LedgerEntry,
    LossReport,
    Product,
    ProductKind,
    Receipt,
    Registration,
    SessionDraw,
    StorageLocation,
)
from kapclinic.policy import ClinicAction, clinic_can


def settings_for(clinic: Any) -> InventorySettings:
    found = InventorySettings.objects.filter(clinic=clinic).first()
    return found if found is not None else InventorySettings(clinic=clinic)


def stock_roles(clinic: Any) -> frozenset[str]:
    """Roles that may receive, adjust and destroy stock (a clinic setting; prescribers by default)."""
    return frozenset(settings_for(clinic).stock_role_list())


def _require(actor: Actor, action: ClinicAction, what: str) -> None:
    if not clinic_can(actor, action):
        raise DomainError(f"Your role may not {what}.")


def _staff_ok(actor: Actor, user: Any, label: str) -> None:
    from kapclinic.accounts.models import Membership

    if user is None:
        return
    if not Membership.objects.filter(user=user, clinic=actor.clinic, is_active=True).exists():
        raise DomainError(f"The {label} must be a member of this clinic's staff.")


# ---- registrations and products ------------------------------------------------------------------


@transaction.atomic
def create_registration(
    actor: Actor,
    *,
    dea_number: str,
    registrant: str,
    expires_on: dt.date,
    schedules: str = "3,3N",
    address: str = "",
    location_names: Sequence[str] = ("Locked cabinet",),
) -> Registration:
    _require(actor, ClinicAction.REGISTER_DEA, "register a DEA registration")
    problem = core.dea_number_problem(dea_number)
    if problem:
        raise DomainError(problem)
    if actor.clinic is None:
        raise DomainError("Choose a clinic first.")
    reg = Registration.objects.create(
        clinic=actor.clinic,
        dea_number=dea_number.strip().upper(),
        registrant=registrant,
        expires_on=expires_on,
        schedules=schedules,
        address=address,
    )
    for name in location_names:
        StorageLocation.objects.create(registration=reg, name=name)
    record_event(actor, "create", obj=reg, detail="inventory.registration")
    return reg


# ---- receipt -------------------------------------------------------------------------------------


def label_text(container: Container) -> str:
    p = container.product
    return (
        f"{container.identifier}\n{p.name} {p.content().describe()}\nNDC {p.ndc}  Lot {container.lot}  "
        f"Exp {container.expiry.isoformat()}\nCIII  DEA {container.registration.dea_number}"
    )


@transaction.atomic
def receive_delivery(
    actor: Actor,
    *,
    registration: Registration,
    product: Product,
    location: StorageLocation,
    supplier: str,
    supplier_dea_number: str,
    invoice_number: str,
    invoice_date: dt.date,
    received_on: dt.date,
    lot: str,
    expiry: dt.date,
    containers: int,
) -> Receipt:
    """Record an order received against its invoice; each container gets an identifier, a label and
    its opening ledger line (the labelled content)."""
    _require(actor, ClinicAction.HANDLE_STOCK, "receive controlled substances")
    user = actor.require_user()
    reasons: list[str] = []
    problem = core.dea_number_problem(supplier_dea_number)
    if problem:
        reasons.append(f"Supplier: {problem}")
    if containers < 1:
        reasons.append("A delivery has at least one container.")
    if received_on > clock.today():
        reasons.append("The date received cannot be in the future.")
    if invoice_date > received_on:
        reasons.append("The invoice date cannot be after the date received.")
    if (
        registration.clinic_id != getattr(actor.clinic, "pk", None)
        or location.registration_id != registration.pk
    ):
        reasons.append("Choose a storage location of this registration.")
    if reasons:
        raise DomainError(reasons)
    receipt = Receipt.objects.create(
        registration=registration,
        supplier=supplier,
        supplier_dea_number=supplier_dea_number.strip().upper(),
        invoice_number=invoice_number,
        invoice_date=invoice_date,
        received_on=received_on,
        product=product,
        lot=lot,
        expiry=expiry,
        containers=containers,
        location=location,
        received_by=user,
    )
    prefix = "K" if product.unit == "mg" else "S"
    # container identifiers are numbered per registration: lock it so two deliveries never share one
    Registration.objects.select_for_update().filter(pk=registration.pk).first()
    existing = Container.objects.filter(registration=registration).count()
    content = product.content()
    at = (
        dt.datetime.combine(received_on, dt.time(12, 0), tzinfo=dt.UTC)
        if received_on < clock.today()
        else clock.now()
    )
    for i in range(containers):
        c = Container(
            registration=registration,
            receipt=receipt,
            product=product,
            location=location,
            identifier=f"{prefix}-{existing + i + 1:04d}",
            lot=lot,
            expiry=expiry,
            label_text="",
        )
        c.label_text = label_text(c)
        c.save()
        amount: core.Amount = Mg(content.labelled) if content.is_vial else core.Devices(content.labelled)
        _append(
            actor,
            c,
            core.ProposedEntry(core.EntryKind.RECEIPT, by=str(user.pk), at=at, amount=amount),
            user=user,
            witness=None,
            reason=f"Invoice {invoice_number}",
        )
    record_event(actor, "create", obj=receipt, detail=f"inventory.receipt containers={containers}")
    return receipt


# ---- ledger lines --------------------------------------------------------------------------------


def _ledger_of(container: Container) -> core.Ledger:
    content = container.product.content()
    lines = tuple(
        core.LedgerLine(
            seq=e.seq,
            kind=core.EntryKind(e.kind),
            delta=e.delta,
            balance_after=e.balance_after,
            by=str(e.by_id),
            witness=str(e.witness_id) if e.witness_id else None,
            at=e.at,
            reason=e.reason,
            reverses=e.reverses.seq if e.reverses_id and e.reverses else None,
        )
        for e in container.entries.select_related("reverses").order_by("seq")
    )
    return core.Ledger(content=content, expiry=container.expiry, lines=lines)


def _append(
    actor: Actor,
    container: Container,
    proposed: core.ProposedEntry,
    *,
    user: Any,
    witness: Any,
    reason: str = "",
    session: Any = None,
    patient: Any = None,
    route: str = "",
) -> LedgerEntry:
    """Apply under the caller's lock; write the line and the container's mirror."""
    try:
        new = core.apply_entry(_ledger_of(container), proposed)
    except core.LedgerRefused as exc:
        raise DomainError(exc.reasons) from None
    line = new.lines[-1]
    content = new.content
    amount = abs(line.delta)
    reverses = None
    if line.reverses is not None:
        reverses = LedgerEntry.objects.get(container=container, seq=line.reverses)
    entry = LedgerEntry.objects.create(
        container=container,
        seq=line.seq,
        kind=line.kind.value,
        unit=content.base_unit,
        amount=amount,
        delta=line.delta,
        balance_after=line.balance_after,
        amount_mg=amount
        if content.is_vial
        else (amount * content.device_strength.value if content.device_strength else None),
        amount_ml=content.ml_of(amount).quantize(Decimal("0.0001")) if content.is_vial else None,  # type: ignore[union-attr]
        devices=int(amount) if not content.is_vial else None,
        at=proposed.at,
        by=user,
        witness=witness,
        session=session,
        patient=patient,
        route=route,
        reason=reason or proposed.reason,
        reverses=reverses,
    )
    container.balance = line.balance_after
    container.last_seq = line.seq
    if line.kind is core.EntryKind.ADMINISTRATION and container.opened_at is None:
        container.opened_at = proposed.at
    container.save(update_fields=["balance", "last_seq", "opened_at"])
    return entry


def _amount(container: Container, value: Decimal | str | int, unit: str) -> core.Amount:
    try:
        if unit == "mg":
            return Mg(value)
        if unit == "mL":
            return Ml(value)
        if unit == "devices":
            return core.Devices(value)
    except QuantityError as exc:
        raise DomainError(str(exc)) from None
    raise DomainError(f"{unit!r} is not a unit the ledger knows (mg, mL or devices).")


def _locked(actor: Actor, container_id: int) -> Container:
    try:
        return (
            Container.objects.select_for_update()
            .select_related("product", "registration")
            .get(pk=container_id, registration__clinic=actor.clinic)
        )
    except Container.DoesNotExist:
        raise DomainError("That container is not in this clinic's stock.") from None


# Who may add each kind of line, and the refusal's words.
KIND_ACTIONS = {
    EntryKind.ADMINISTRATION: (ClinicAction.HANDLE_DOSES, "administer or waste controlled substances"),
    EntryKind.WASTE: (ClinicAction.HANDLE_DOSES, "administer or waste controlled substances"),
    EntryKind.ADJUSTMENT: (ClinicAction.HANDLE_STOCK, "adjust controlled-substance stock"),
    EntryKind.REVERSAL: (ClinicAction.CORRECT_INVENTORY, "reverse a ledger entry (prescribers only)"),
}


@transaction.atomic
def record_entry(
    actor: Actor,
    container_id: int,
    *,
    kind: str,
    amount: Decimal | str | int | None = None,
    unit: str = "mg",
    witness: Any = None,
    reason: str = "",
    increase: bool | None = None,
    reverses_seq: int | None = None,
    session: Any = None,
    patient: Any = None,
    route: str = "",
    at: dt.datetime | None = None,
) -> LedgerEntry:
    """Add one line (administration, waste, adjustment or reversal) to a container's ledger."""
    ekind = EntryKind(kind)
    need = KIND_ACTIONS.get(ekind)
    if need is None:
        raise DomainError("Receipts and destructions have their own pages.")
    _require(actor, *need)
    user = actor.require_user()
    _staff_ok(actor, witness, "witness")
    if at is not None and at > clock.now():
        raise DomainError("An entry cannot be dated in the future.")
    container = _locked(actor, container_id)
    # "now" is read under the lock: a draw that waited for another one is dated after it
    when = at or clock.now()
    qty = _amount(container, amount, unit) if amount is not None and ekind != EntryKind.REVERSAL else None
    proposed = core.ProposedEntry(
        kind=core.EntryKind(ekind.value),
        by=str(user.pk),
        at=when,
        amount=qty,
        witness=str(witness.pk) if witness is not None else None,
        reason=reason,
        increase=increase,
        reverses=reverses_seq,
    )
    entry = _append(
        actor,
        container,
        proposed,
        user=user,
        witness=witness,
        reason=reason,
        session=session,
        patient=patient,
        route=route,
    )
    record_event(actor, "create", patient=patient, obj=entry, detail=f"inventory.{ekind.value}")
    return entry


def draw_for_administration(
    actor: Actor,
    *,
    container_id: int,
    session: Any,
    route: str,
    amount_mg: Decimal | None = None,
    devices: int | None = None,
    witness: Any = None,
    at: dt.datetime | None = None,
) -> LedgerEntry:
    """The ledger line for a dose given in a dosing session: ``amount_mg`` from a vial or ``devices``
    from an esketamine pack. For the sessions app to call inside its own administration transaction
    (not wired yet): the container row is locked, an expired container or the wrong unit is refused."""
    if getattr(session, "clinic_id", None) != getattr(actor.clinic, "pk", None):
        raise DomainError("That dosing session is not in this clinic.")
    if (amount_mg is None) == (devices is None):
        raise DomainError("Give the dose either in mg (a vial) or in devices (a nasal device pack).")
    amount: Decimal | int = amount_mg if amount_mg is not None else devices  # type: ignore[assignment]
    return record_entry(
        actor,
        container_id,
        kind="administration",
        amount=amount,
        unit="mg" if amount_mg is not None else "devices",
        witness=witness,
        session=session,
        patient=session.patient,
        route=route,
        at=at,
    )


# ---- dosing sessions draw from stock --------------------------------------------------------------

#: The protocol dose forms drawn from stock, and the product kind each draws from (a compounded lozenge
#: is not a stocked product yet: its lot and expiry are typed).
STOCKED_FORMS = {
    "vial_iv": ProductKind.VIAL,
    "vial_im": ProductKind.VIAL,
    "nasal_device": ProductKind.DEVICE_PACK,
}


def stock_for_form(clinic: Any, form: str, on: dt.date | None = None) -> list[Container]:
    """Containers a session with this dose form may draw from: on hand, not closed, not expired; the
    earliest expiry first."""
    kind = STOCKED_FORMS.get(form)
    if kind is None:
        return []
    return list(
        Container.objects.filter(
            registration__clinic=clinic,
            product__kind=kind,
            balance__gt=0,
            closed_at__isnull=True,
            expiry__gte=on or clock.today(),
        )
        .select_related("product")
        .order_by("expiry", "identifier")
    )


@transaction.atomic
def draw_for_session(
    actor: Actor,
    session: Any,
    *,
    container_id: int,
    form: str,
    dose_mg: Decimal | None,
    devices: int | None,
    drawn_mg: Decimal | None = None,
    route: str = "",
    witness: Any = None,
) -> SessionDraw:
    """Dosing starts: the dose given is the container's administration line, in the caller's
    transaction; the amount drawn (at least the dose; vials only) is kept so what was drawn but not
    given is wasted with a witness before discharge."""
    kind = STOCKED_FORMS.get(form)
    if kind is None:
        raise DomainError("This dose form is not drawn from controlled-substance stock.")
    container = (
        Container.objects.select_related("product")
        .filter(pk=container_id, registration__clinic=actor.clinic)
        .first()
    )
    if container is None:
        raise DomainError("That container is not in this clinic's stock.")
    if container.product.kind != kind:
        raise DomainError(
            f"{container.identifier} is a {container.product.get_kind_display().lower()}; this dose is "
            f"given from a {ProductKind(kind).label.lower()}."
        )
    if container.is_expired():
        raise DomainError(
            f"{container.identifier} (lot {container.lot}) expired on {container.expiry.isoformat()}; "
            "it cannot be used."
        )
    if kind == ProductKind.VIAL:
        if dose_mg is None:
            raise DomainError("The dose has no amount in mg.")
        drawn = dose_mg if drawn_mg is None else drawn_mg
        if drawn < dose_mg:
            raise DomainError(
                f"The amount drawn ({drawn.normalize():f} mg) cannot be less than the dose "
                f"({dose_mg.normalize():f} mg)."
            )
        if drawn > container.balance:
            raise DomainError(
                f"{container.identifier} holds {container.balance.normalize():f} mg; "
                f"{drawn.normalize():f} mg cannot be drawn from it. Choose another container (or record "
                "an overfill adjustment on the container's page)."
            )
        entry = draw_for_administration(
            actor, container_id=container.pk, session=session, route=route, amount_mg=dose_mg, witness=witness
        )
        given = dose_mg
    else:
        if not devices:
            raise DomainError("The dose has no number of devices.")
        entry = draw_for_administration(
            actor, container_id=container.pk, session=session, route=route, devices=devices, witness=witness
        )
        drawn = given = Decimal(devices)
    draw = SessionDraw.objects.create(
        session=session,
        container=container,
        entry=entry,
        unit=container.product.unit,
        drawn=drawn,
        given=given,
        at=entry.at,
        by=actor.require_user(),
    )
    record_event(
        actor, "create", patient=session.patient, obj=draw, detail=f"inventory.draw unit={draw.unit}"
    )
    return draw


def session_draws(session: Any) -> list[SessionDraw]:
    return list(
        SessionDraw.objects.filter(session=session)
        .select_related("container__product", "entry", "devices_disposed_by", "devices_disposal_witness")
        .order_by("at", "pk")
    )


def _session_waste(session: Any, container_id: int) -> Decimal:
    rows = LedgerEntry.objects.filter(
        session=session, container_id=container_id, kind=EntryKind.WASTE, reversed_by__isnull=True
    ).values_list("amount", flat=True)
    return sum(rows, Decimal(0))


@dataclass(frozen=True)
class DrawStatus:
    draw: SessionDraw
    wasted: Decimal
    unaccounted: Decimal  # drawn - given - wasted (base unit)
    disposal_needed: bool  # esketamine: used devices not yet recorded as disposed


def draw_statuses(session: Any) -> list[DrawStatus]:
    """Each draw of the session with what of it was wasted: one query, however many draws."""
    from django.db.models import DecimalField, OuterRef, Subquery, Sum, Value
    from django.db.models.functions import Coalesce

    waste = (
        LedgerEntry.objects.filter(
            session=OuterRef("session"),
            container=OuterRef("container"),
            kind=EntryKind.WASTE,
            reversed_by__isnull=True,
        )
        .order_by()
        .values("container")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    rows = (
        SessionDraw.objects.filter(session=session)
        .select_related("container__product", "devices_disposed_by", "devices_disposal_witness")
        .annotate(
            wasted=Coalesce(
                Subquery(waste, output_field=DecimalField(max_digits=12, decimal_places=4)),
                Value(Decimal(0)),
                output_field=DecimalField(max_digits=12, decimal_places=4),
            )
        )
        .order_by("at", "pk")
    )
    out = []
    for d in rows:
        wasted = Decimal(d.wasted)
        out.append(
            DrawStatus(
                draw=d,
                wasted=wasted,
                unaccounted=max(d.residue - wasted, Decimal(0)),
                disposal_needed=d.unit == "devices" and d.devices_disposed_at is None,
            )
        )
    return out


def discharge_stock_problems(session: Any) -> list[str]:
    """Sentences for each drawn amount not yet accounted for (residue not wasted, used devices whose
    disposal is not recorded); discharge is refused while there is one."""
    problems = []
    for st in draw_statuses(session):
        c = st.draw.container
        if st.unaccounted > 0:
            problems.append(
                f"Controlled substances: {st.unaccounted.normalize():f} {st.draw.unit} drawn from "
                f"{c.identifier} (lot {c.lot}) was not given and is not recorded as waste; record the "
                "waste with a witness before discharge."
            )
        if st.disposal_needed:
            problems.append(
                f"Controlled substances: the disposal of the {int(st.draw.given)} used esketamine "
                f"device(s) from {c.identifier} (lot {c.lot}) is not recorded; record it with a witness "
                "before discharge."
            )
    return problems


@transaction.atomic
def waste_for_session(
    actor: Actor, session: Any, *, draw_id: int, amount_mg: Decimal, witness: Any, reason: str = ""
) -> LedgerEntry:
    """Waste what a session drew but did not give (e.g. syringe residue), witnessed; never more than
    is unaccounted for."""
    draw = SessionDraw.objects.select_related("container").filter(pk=draw_id, session=session).first()
    if draw is None:
        raise DomainError("That draw is not part of this session.")
    if draw.unit != "mg":
        raise DomainError("Esketamine devices are not wasted here: record the used devices' disposal.")
    if amount_mg <= 0:
        raise DomainError("The amount wasted must be above zero.")
    if witness is None:
        raise DomainError("A waste needs a second person as witness, signed in.")
    # the container row is locked by record_entry; the session's earlier waste is read after it
    left = draw.residue - _session_waste(session, draw.container_id)
    if amount_mg > left:
        raise DomainError(
            f"Only {max(left, Decimal(0)).normalize():f} mg drawn from {draw.container.identifier} is not "
            f"yet accounted for; {amount_mg.normalize():f} mg cannot be wasted."
        )
    return record_entry(
        actor,
        draw.container_id,
        kind="waste",
        amount=amount_mg,
        unit="mg",
        witness=witness,
        reason=reason.strip() or "Drawn, not given (syringe residue)",
        session=session,
        patient=session.patient,
    )


@transaction.atomic
def dispose_devices(actor: Actor, session: Any, *, draw_id: int, witness: Any) -> SessionDraw:
    """The used esketamine devices of a draw went to medical waste under controlled-substance rules
    (§7 [A49]), witnessed. Not a ledger line: the devices were administered."""
    _require(actor, ClinicAction.HANDLE_DOSES, "record device disposal")
    user = actor.require_user()
    draw = (
        SessionDraw.objects.select_for_update()
        .select_related("container")
        .filter(pk=draw_id, session=session)
        .first()
    )
    if draw is None:
        raise DomainError("That draw is not part of this session.")
    if draw.unit != "devices":
        raise DomainError("Only esketamine devices have a disposal record.")
    if draw.devices_disposed_at is not None:
        raise DomainError("The disposal of these devices is already recorded.")
    if witness is None:
        raise DomainError("The disposal needs a second person as witness, signed in.")
    if witness.pk == user.pk:
        raise DomainError("The witness must be a different person from the one disposing.")
    _staff_ok(actor, witness, "witness")
    draw.devices_disposed_at = clock.now()
    draw.devices_disposed_by = user
    draw.devices_disposal_witness = witness
    draw.save(update_fields=["devices_disposed_at", "devices_disposed_by", "devices_disposal_witness"])
    record_event(actor, "create", patient=session.patient, obj=draw, detail="inventory.devices_disposed")
    return draw


# ---- destruction ---------------------------------------------------------------------------------


@transaction.atomic
def destroy(
    actor: Actor,
    container_id: int,
    *,
    method: str,
    place: str,
    reason: str,
    witness_1: Any,
    witness_2: Any,
    reverse_distributor: str = "",
    reverse_distributor_dea_number: str = "",
    at: dt.datetime | None = None,
) -> Destruction:
    """Destroy what remains of a container (Form 41 fields, two witnesses, §5)."""
    _require(actor, ClinicAction.HANDLE_STOCK, "destroy controlled substances")
    user = actor.require_user()
    reasons: list[str] = []
    if witness_1 is None or witness_2 is None:
        reasons.append("A destruction needs two witnesses.")
    elif len({user.pk, witness_1.pk, witness_2.pk}) < 3:
        reasons.append("The two witnesses must be two different people, neither of them the one destroying.")
    if method == DestructionMethod.REVERSE_DISTRIBUTOR:
        if not reverse_distributor.strip():
            reasons.append("Name the reverse distributor.")
        problem = core.dea_number_problem(reverse_distributor_dea_number)
        if problem:
            reasons.append(f"Reverse distributor: {problem}")
    elif method != DestructionMethod.ON_SITE:
        reasons.append("Choose how the stock was destroyed.")
    if not place.strip():
        reasons.append("Say where it was destroyed.")
    if reasons:
        raise DomainError(reasons)
    _staff_ok(actor, witness_1, "first witness")
    _staff_ok(actor, witness_2, "second witness")
    container = _locked(actor, container_id)
    when = at or clock.now()  # read under the lock, after any entry that held it
    if container.balance <= 0:
        raise DomainError("This container has nothing left to destroy.")
    unit = container.product.unit
    proposed = core.ProposedEntry(
        kind=core.EntryKind.DESTRUCTION,
        by=str(user.pk),
        at=when,
        amount=Mg(container.balance) if unit == "mg" else core.Devices(container.balance),
        witness=str(witness_1.pk),
        reason=reason,
    )
    entry = _append(actor, container, proposed, user=user, witness=witness_1, reason=reason)
    container.closed_at = when
    container.save(update_fields=["closed_at"])
    d = Destruction.objects.create(
        registration=container.registration,
        container=container,
        entry=entry,
        method=method,
        reverse_distributor=reverse_distributor,
        reverse_distributor_dea_number=reverse_distributor_dea_number.upper(),
        place=place,
        reason=reason,
        destroyed_at=when,
        by=user,
        witness_1=witness_1,
        witness_2=witness_2,
    )
    record_event(actor, "create", obj=d, detail="inventory.destruction")
    return d


# ---- counts and discrepancies --------------------------------------------------------------------


@dataclass(frozen=True)
class CountInput:
    container_id: int
    counted: Decimal
    exact: bool


@transaction.atomic
def record_count(
    actor: Actor,
    registration: Registration,
    *,
    timing: str,
    witness: Any,
    lines: Sequence[CountInput],
    kind: str = "on_demand",
    taken_at: dt.datetime | None = None,
) -> Count:
    """A count (opening/close of business, witnessed, §2); each line that disagrees opens a discrepancy."""
    _require(actor, ClinicAction.HANDLE_DOSES, "take a count")
    user = actor.require_user()
    when = taken_at or clock.now()
    reasons: list[str] = []
    if when > clock.now():
        reasons.append("A count cannot be dated in the future.")
    if witness is None:
        reasons.append("A count needs a second person as witness.")
    elif witness.pk == user.pk:
        reasons.append("The witness must be a different person from the one taking the count.")
    if timing not in ("opening", "close"):
        reasons.append("Say whether the count was taken at the opening or the close of business.")
    if not lines and Container.objects.filter(registration=registration, balance__gt=0).exists():
        reasons.append("Count every container on hand (a zero inventory only when nothing is on hand).")
    if reasons:
        raise DomainError(reasons)
    _staff_ok(actor, witness, "witness")
    tolerance = settings_for(actor.clinic).estimate_tolerance_mg
    count = Count.objects.create(
        registration=registration, kind=kind, timing=timing, taken_at=when, taken_by=user, witness=witness
    )
    opened = 0
    for item in lines:
        container = (
            Container.objects.select_for_update()
            .select_related("product")
            .filter(pk=item.container_id, registration=registration)
            .first()
        )
        if container is None:
            raise DomainError("A counted container is not in this registration's stock.")
        if item.counted < 0:
            raise DomainError(f"{container.identifier}: a count cannot be negative.")
        tol = tolerance if container.product.unit == "mg" else Decimal(0)
        cmp = core.compare_count(
            container.balance, item.counted, container.product.unit, exact=item.exact, tolerance=tol
        )
        line = CountLine.objects.create(
            count=count,
            container=container,
            counted=item.counted,
            exact=item.exact,
            ledger_balance=container.balance,
            agrees=cmp.agrees,
        )
        if not cmp.agrees:
            Discrepancy.objects.create(
                registration=registration,
                container=container,
                count_line=line,
                difference=cmp.difference,
                opened_at=when,
            )
            opened += 1
    record_event(
        actor, "create", obj=count, detail=f"inventory.count lines={len(lines)} discrepancies={opened}"
    )
    return count


@transaction.atomic
def resolve_discrepancy(actor: Actor, discrepancy_id: int, *, explanation: str) -> Discrepancy:
    _require(actor, ClinicAction.CORRECT_INVENTORY, "resolve a discrepancy (prescribers only)")
    d = (
        Discrepancy.objects.select_for_update()
        .filter(pk=discrepancy_id, registration__clinic=actor.clinic)
        .first()
    )
    if d is None:
        raise DomainError("That discrepancy is not in this clinic's records.")
    if not d.is_open:
        raise DomainError("This discrepancy was already resolved.")
    if not explanation.strip():
        raise DomainError("Write the explanation of what was found.")
    d.explanation = explanation.strip()
    d.resolved_by = actor.require_user()
    d.resolved_at = clock.now()
    d.save(update_fields=["explanation", "resolved_by", "resolved_at"])
    record_event(actor, "update", obj=d, detail="inventory.discrepancy.resolved")
    return d


# ---- loss reports --------------------------------------------------------------------------------


def next_business_day(day: dt.date, holidays: frozenset[dt.date] | set[dt.date] = frozenset()) -> dt.date:
    """The business day after ``day``: Saturdays, Sundays and the clinic's recorded holidays skipped
    (which holidays count is the clinic's field office's word, so the clinic records them, §6)."""
    nxt = day + dt.timedelta(days=1)
    while nxt.weekday() >= 5 or nxt in holidays:
        nxt += dt.timedelta(days=1)
    return nxt


def clinic_holidays(clinic: Any, start: dt.date | None = None) -> frozenset[dt.date]:
    """The clinic's recorded holidays (from ``start`` on, when given)."""
    rows = ClinicHoliday.objects.filter(clinic=clinic)
    if start is not None:
        rows = rows.filter(day__gte=start)
    return frozenset(rows.values_list("day", flat=True))


FORM_106_DAYS = 45  # docs/controlled-substances.md §6 [A31][A32]


def loss_deadlines(
    discovered: dt.date, holidays: frozenset[dt.date] | set[dt.date] = frozenset()
) -> tuple[dt.date, dt.date]:
    """(written notice due, Form 106 due) for a loss discovered on ``discovered`` (§6). The notice is
    due the next business day (weekends and the clinic's holidays skipped); Form 106 in 45 calendar days."""
    return next_business_day(discovered, holidays), discovered + dt.timedelta(days=FORM_106_DAYS)


@transaction.atomic
def add_holiday(actor: Actor, *, day: dt.date, name: str) -> ClinicHoliday:
    """Record a clinic holiday (admins and the stock roles)."""
    _require(actor, ClinicAction.REGISTER_DEA, "record clinic holidays")
    name = name.strip()
    if actor.clinic is None:
        raise DomainError("Choose a clinic first.")
    if not name:
        raise DomainError("Name the holiday.")
    if ClinicHoliday.objects.filter(clinic=actor.clinic, day=day).exists():
        raise DomainError(f"{day.isoformat()} is already recorded as a holiday.")
    h = ClinicHoliday.objects.create(clinic=actor.clinic, day=day, name=name)
    record_event(actor, "create", obj=h, detail="inventory.holiday")
    return h


@transaction.atomic
def remove_holiday(actor: Actor, holiday_id: int) -> None:
    _require(actor, ClinicAction.REGISTER_DEA, "record clinic holidays")
    h = ClinicHoliday.objects.filter(pk=holiday_id, clinic=actor.clinic).first()
    if h is None:
        raise DomainError("That holiday is not in this clinic's calendar.")
    record_event(actor, "update", obj=h, detail="inventory.holiday.removed")
    h.delete()


@transaction.atomic
def open_loss_report(
    actor: Actor,
    registration: Registration,
    *,
    discovered_at: dt.datetime,
    description: str,
    discrepancy: Discrepancy | None = None,
) -> LossReport:
    _require(actor, ClinicAction.HANDLE_STOCK, "open a loss report")
    reasons = []
    if discovered_at > clock.now():
        reasons.append("The discovery cannot be in the future.")
    if not description.strip():
        reasons.append("Describe what was lost or stolen.")
    if reasons:
        raise DomainError(reasons)
    report = LossReport.objects.create(
        registration=registration,
        discovered_at=discovered_at,
        description=description.strip(),
        discrepancy=discrepancy,
        created_by=actor.require_user(),
    )
    record_event(actor, "create", obj=report, detail="inventory.loss_report")
    return report


@transaction.atomic
def mark_loss_filed(actor: Actor, report_id: int, *, which: str) -> LossReport:
    _require(actor, ClinicAction.HANDLE_STOCK, "mark a loss report filed")
    report = (
        LossReport.objects.select_for_update().filter(pk=report_id, registration__clinic=actor.clinic).first()
    )
    if report is None:
        raise DomainError("That loss report is not in this clinic's records.")
    field = {"notice": "notice_filed_at", "form106": "form106_filed_at"}.get(which)
    if field is None:
        raise DomainError("Say which filing: the written notice or Form 106.")
    if getattr(report, field) is not None:
        raise DomainError("That filing was already marked.")
    setattr(report, field, clock.now())
    report.save(update_fields=[field])
    record_event(actor, "update", obj=report, detail=f"inventory.loss_report.{which}_filed")
    return report


# ---- clinic settings -----------------------------------------------------------------------------

STOCK_ROLE_CHOICES = (Role.PRESCRIBER, Role.NURSE, Role.ADMIN)


@transaction.atomic
def update_settings(
    actor: Actor, *, roles: Sequence[str], estimate_tolerance_mg: Decimal
) -> InventorySettings:
    """Which roles receive, adjust and destroy stock; how far an estimate may differ (admins only)."""
    _require(actor, ClinicAction.MANAGE_CLINIC, "change the controlled-substance settings")
    reasons = []
    chosen = [r for r in STOCK_ROLE_CHOICES if r in roles]
    if not chosen or len(chosen) != len(set(roles)):
        reasons.append("Choose at least one of prescriber, nurse or admin.")
    if estimate_tolerance_mg < 0:
        reasons.append("The tolerance cannot be negative.")
    if reasons:
        raise DomainError(reasons)
    found, _ = InventorySettings.objects.select_for_update().get_or_create(clinic=actor.clinic)
    found.stock_roles = ",".join(chosen)
    found.estimate_tolerance_mg = estimate_tolerance_mg
    found.save()
    record_event(actor, "update", obj=found, detail=f"inventory.settings roles={found.stock_roles}")
    return found
