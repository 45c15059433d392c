"""Writes for controlled-substance records. Every function is transactional and audited.

Every ledger line is written under ``select_for_update`` on its container row, so two nurses drawing
from the same vial at once are serialised: the second sees the first's balance (and is refused if the
vial no longer holds enough). The arithmetic and its refusal sentences are kapclinic/clinical/ledger.py.
Facts: docs/controlled-substances.md.

Over 600 lines: every ledger write follows the one locking rule above; not split yet because other
changes to it were in flight (issue 13); its sections are the seams.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Sum

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
    audit: bool = True,
) -> LedgerEntry:
    """Add one line (administration, waste, adjustment or reversal) to a container's ledger. ``audit``
    False: the caller's request writes its own one audit event (an esketamine device recorded)."""
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
    if audit:
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
    audit: bool = True,
) -> LedgerEntry:
    """The ledger line for a dose given in a dosing session: ``amount_mg`` from a vial or ``devices``
    from an esketamine pack, inside the caller's administration transaction (``draw_for_session``,
    ``administer_device``): the container row is locked, an expired container or the wrong unit is refused."""
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
        audit=audit,
    )


# ---- dosing sessions draw from stock --------------------------------------------------------------

#: The protocol dose forms drawn from stock, and the product kind each draws from (a compounded lozenge
#: is not a stocked product yet: its lot and expiry are typed).
STOCKED_FORMS = {
    "vial_iv": ProductKind.VIAL,
    "vial_im": ProductKind.VIAL,
    "nasal_device": ProductKind.DEVICE_PACK,
}


def outstanding(container_ids: Iterable[int]) -> dict[int, Decimal]:
    """What dosing sessions drew from each container and have not yet given, wasted or returned (a
    syringe's residue not yet wasted; esketamine devices taken out and not yet used). It is still on the
    ledger's balance but no longer in the container, so no other session may draw it. Two queries,
    however many containers."""
    ids = list(container_ids)
    out: dict[int, Decimal] = {}
    if not ids:
        return out
    for row in (
        SessionDraw.objects.filter(container_id__in=ids)
        .order_by()
        .values("container_id")
        .annotate(d=Sum("drawn"), g=Sum("given"), r=Sum("returned"))
    ):
        out[row["container_id"]] = Decimal(row["d"]) - Decimal(row["g"]) - Decimal(row["r"])
    for row in (
        LedgerEntry.objects.filter(
            container_id__in=ids, kind=EntryKind.WASTE, session__isnull=False, reversed_by__isnull=True
        )
        .order_by()
        .values("container_id")
        .annotate(w=Sum("amount"))
    ):
        cid = row["container_id"]
        out[cid] = out.get(cid, Decimal(0)) - Decimal(row["w"])
    return {cid: max(left, Decimal(0)) for cid, left in out.items()}


def stock_for_form(clinic: Any, form: str, *, on: dt.date | None = None) -> list[Container]:
    """Containers a session with this dose form may draw from: on hand, not closed, not expired, with
    something left that no other session has drawn (``available``); the earliest expiry first."""
    kind = STOCKED_FORMS.get(form)
    if kind is None:
        return []
    found = list(
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
    drawn = outstanding(c.pk for c in found)
    for c in found:
        c.available = c.balance - drawn.get(c.pk, Decimal(0))
    return [c for c in found if c.available > 0]


def _fmt(value: Decimal) -> str:
    return f"{value.normalize():f}" if value != 0 else "0"


def _same_strength(a: Product, b: Product) -> bool:
    if a.kind != b.kind:
        return False
    if a.kind == ProductKind.VIAL:
        return a.concentration_mg_per_ml == b.concentration_mg_per_ml
    return a.device_strength_mg == b.device_strength_mg


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
    second_container_id: int | None = None,
    second_drawn_mg: Decimal | None = None,
) -> list[SessionDraw]:
    """Dosing starts: the dose given is written on the containers' ledgers in the caller's transaction,
    and the amount drawn (at least the dose; vials only) is kept so what was drawn but not given is
    wasted with a witness before discharge.

    One container, or two of the same product strength when the first holds less than the dose (lot and
    expiry of each shown; an expired one refused). Two vials: ``drawn_mg`` is what was drawn up from the
    first (all of it is given: it is less than the dose) and ``second_drawn_mg`` from the second (the rest
    of the dose by default; what is drawn beyond the rest is its residue). Two esketamine packs: the
    first pack's devices are used first, the rest are taken from the second. Esketamine: the first
    device is used now (its line is written now); each further device's line is written when it is
    recorded (``administer_device``). An amount above what a container holds (less what other sessions
    drew from it and have not yet given or wasted) is refused with a sentence; nothing is clamped and
    nothing is stored when any part is refused."""
    kind = STOCKED_FORMS.get(form)
    if kind is None:
        raise DomainError("This dose form is not drawn from controlled-substance stock.")
    ids = [container_id] if second_container_id is None else [container_id, second_container_id]
    if len(set(ids)) < len(ids):
        raise DomainError("The second container must be a different container from the first.")
    # Lock the rows in pk order: two sessions drawing from the same two containers never deadlock, and
    # each sees what the other drew.
    rows = {
        c.pk: c
        for c in Container.objects.select_for_update(of=("self",))
        .select_related("product")
        .filter(pk__in=ids, registration__clinic=actor.clinic)
        .order_by("pk")
    }
    if any(i not in rows for i in ids):
        raise DomainError("That container is not in this clinic's stock.")
    chosen = [rows[i] for i in ids]
    problems: list[str] = []
    for c in chosen:
        if c.product.kind != kind:
            problems.append(
                f"{c.identifier} is a {c.product.get_kind_display().lower()}; this dose is "
                f"given from a {ProductKind(kind).label.lower()}."
            )
        elif c.is_expired():
            problems.append(
                f"{c.identifier} (lot {c.lot}) expired on {c.expiry.isoformat()}; it cannot be used."
            )
        elif c.closed_at is not None:
            problems.append(f"{c.identifier} is closed; it cannot be used.")
    if not problems and len(chosen) == 2 and not _same_strength(chosen[0].product, chosen[1].product):
        a, b = chosen
        problems.append(
            f"{b.identifier} ({b.product.content().describe()}) is not the strength of {a.identifier} "
            f"({a.product.content().describe()}); a dose is drawn from two containers of the same strength."
        )
    if problems:
        raise DomainError(problems)
    held = outstanding(ids)
    avail = {c.pk: c.balance - held.get(c.pk, Decimal(0)) for c in chosen}
    # (container, drawn, given now), in the container's base unit
    plan: list[tuple[Container, Decimal, Decimal]] = []
    vial = kind == ProductKind.VIAL
    if vial:
        if dose_mg is None:
            raise DomainError("The dose has no amount in mg.")
        if len(chosen) == 1:
            drawn = dose_mg if drawn_mg is None else drawn_mg
            if drawn < dose_mg:
                raise DomainError(
                    f"The amount drawn ({_fmt(drawn)} mg) cannot be less than the dose ({_fmt(dose_mg)} mg)."
                )
            plan.append((chosen[0], drawn, dose_mg))
        else:
            first, second = chosen
            if drawn_mg is None:
                raise DomainError(
                    f"Enter the amount drawn up from {first.identifier}, the first container, and from "
                    f"{second.identifier} the rest."
                )
            if drawn_mg <= 0:
                raise DomainError(f"The amount drawn from {first.identifier} must be above zero.")
            if drawn_mg >= dose_mg:
                raise DomainError(
                    f"{_fmt(drawn_mg)} mg from {first.identifier} covers the dose of {_fmt(dose_mg)} mg; "
                    "leave the second container empty."
                )
            rest = dose_mg - drawn_mg
            drawn2 = rest if second_drawn_mg is None else second_drawn_mg
            if drawn2 < rest:
                raise DomainError(
                    f"The amounts drawn ({_fmt(drawn_mg)} mg from {first.identifier} and {_fmt(drawn2)} mg "
                    f"from {second.identifier}) cannot be less than the dose ({_fmt(dose_mg)} mg)."
                )
            plan += [(first, drawn_mg, drawn_mg), (second, drawn2, rest)]
    else:
        if not devices:
            raise DomainError("The dose has no number of devices.")
        want = Decimal(devices)
        if len(chosen) == 1:
            plan.append((chosen[0], want, Decimal(1)))
        else:
            first, second = chosen
            from_first = max(avail[first.pk], Decimal(0))
            if from_first >= want:
                raise DomainError(
                    f"{first.identifier} holds {_fmt(from_first)} devices, enough for the {devices} "
                    "ordered; leave the second pack empty."
                )
            plan += [(first, from_first, Decimal(1)), (second, want - from_first, Decimal(0))]
    unit = "mg" if vial else "devices"
    for c, drawn, _given in plan:
        if drawn <= 0:
            problems.append(f"{c.identifier} has nothing left to draw.")
        elif drawn > avail[c.pk]:
            other = held.get(c.pk, Decimal(0))
            elsewhere = (
                f" ({_fmt(other)} {unit} of its balance were drawn for another session and are not yet "
                "given, wasted or returned)"
                if other
                else ""
            )
            hint = (
                " Choose another container, or a second container for the rest of the dose"
                if len(plan) == 1
                else " Choose other containers"
            )
            problems.append(
                f"{c.identifier} holds {_fmt(max(avail[c.pk], Decimal(0)))} {unit}{elsewhere}; "
                f"{_fmt(drawn)} {unit} cannot be drawn from it.{hint}"
                + (" (or record an overfill adjustment on the container's page)." if vial else ".")
            )
    if problems:
        raise DomainError(problems)
    user = actor.require_user()
    draws: list[SessionDraw] = []
    for c, drawn, given in plan:
        entry = None
        if given > 0:
            entry = draw_for_administration(
                actor,
                container_id=c.pk,
                session=session,
                route=route,
                amount_mg=given if vial else None,
                devices=None if vial else int(given),
                witness=witness,
            )
        draws.append(
            SessionDraw.objects.create(
                session=session,
                container=c,
                entry=entry,
                unit=c.product.unit,
                drawn=drawn,
                given=given,
                at=entry.at if entry is not None else clock.now(),
                by=user,
            )
        )
    record_event(
        actor,
        "create",
        patient=session.patient,
        obj=draws[0],
        detail=f"inventory.draw unit={unit}" + (f" containers={len(draws)}" if len(draws) > 1 else ""),
    )
    return draws


def administer_device(
    actor: Actor, session: Any, *, at: dt.datetime, route: str = "", witness: Any = None
) -> LedgerEntry | None:
    """A further esketamine device used: its administration line (1 device), from the pack it was taken
    out of (the first of the session's draws with a device still in hand), in the caller's transaction.
    None when the session holds no device taken out for it (nothing was drawn from stock)."""
    draw = next(
        (
            d
            for d in SessionDraw.objects.select_for_update()
            .filter(session=session, unit="devices")
            .order_by("pk")
            if d.given + d.returned < d.drawn
        ),
        None,
    )
    if draw is None:
        return None
    entry = record_entry(
        actor,
        draw.container_id,
        kind="administration",
        amount=1,
        unit="devices",
        witness=witness,
        session=session,
        patient=session.patient,
        route=route,
        at=at,
        audit=False,  # the device's own request writes the one audit event
    )
    draw.given += 1
    if draw.entry_id is None:
        draw.entry = entry
    draw.save(update_fields=["given", "entry"])
    return entry


@transaction.atomic
def correct_for_partial_infusion(
    actor: Actor, session: Any, *, infused_mg: Decimal, witness: Any, reason: str
) -> list[LedgerEntry]:
    """An IV infusion that delivered less than the dose drawn for it (stopped early): each
    administration line written when dosing started is reversed (a witnessed reversal with the reason;
    lines are never edited, docs/controlled-substances.md §4) and, for what was infused, a new
    administration line is written. What stays in the bag becomes the draw's residue, wasted with a
    witness before discharge like syringe residue (§5 [A24]). With two vials, the amount infused is
    counted against the first vial first (the drug from both was mixed in one bag). An amount infused
    above what the session was given, or below zero, is refused; nothing is clamped. Returns the new lines."""
    _require(actor, ClinicAction.HANDLE_DOSES, "administer or waste controlled substances")
    user = actor.require_user()
    draws = list(
        SessionDraw.objects.select_for_update(of=("self",))
        .select_related("entry")
        .filter(session=session, unit="mg")
        .order_by("pk")
    )
    given = sum((d.given for d in draws), Decimal(0))
    if not draws:
        raise DomainError("This session's dose was not drawn from controlled-substance stock.")
    if infused_mg < 0:
        raise DomainError("The amount infused cannot be below zero.")
    if infused_mg > given:
        raise DomainError(
            f"{_fmt(infused_mg)} mg infused is more than the {_fmt(given)} mg the session's ledger lines "
            "say was given; enter what the infusion actually delivered."
        )
    if infused_mg == given:
        return []
    if witness is None:
        raise DomainError(
            f"Less than the dose was infused ({_fmt(infused_mg)} of {_fmt(given)} mg): correcting the "
            "ledger needs a second person as witness, signed in on this form."
        )
    if witness.pk == user.pk:
        raise DomainError("The witness must be a different person from the one recording the infusion.")
    _staff_ok(actor, witness, "witness")
    for cid in sorted({d.container_id for d in draws}):
        _locked(actor, cid)  # in pk order, like draw_for_session
    written: list[LedgerEntry] = []
    left = infused_mg
    for d in draws:
        share = min(d.given, left)
        left -= share
        if share == d.given:
            continue
        assert d.entry is not None  # a vial draw that gave something has its administration line
        container = _locked(actor, d.container_id)
        original = d.entry
        when = clock.now()
        _append(
            actor,
            container,
            core.ProposedEntry(
                core.EntryKind.REVERSAL,
                by=str(user.pk),
                at=when,
                witness=str(witness.pk),
                reason=reason,
                reverses=original.seq,
            ),
            user=user,
            witness=witness,
            reason=reason,
            session=session,
            patient=session.patient,
            route=original.route,
        )
        new_entry = None
        if share > 0:
            new_entry = _append(
                actor,
                container,
                core.ProposedEntry(
                    core.EntryKind.ADMINISTRATION,
                    by=str(user.pk),
                    at=when,
                    amount=Mg(share),
                    witness=str(witness.pk),
                    reason=reason,
                ),
                user=user,
                witness=witness,
                reason=reason,
                session=session,
                patient=session.patient,
                route=original.route,
            )
            written.append(new_entry)
        d.given = share
        d.entry = new_entry
        d.save(update_fields=["given", "entry"])
    record_event(
        actor,
        "create",
        patient=session.patient,
        obj=draws[0],
        detail="inventory.infusion_corrected",
    )
    return written


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
    unaccounted: Decimal  # drawn - given - wasted - returned (base unit)
    disposal_needed: bool  # esketamine: used devices not yet recorded as disposed

    @property
    def unused_devices(self) -> bool:
        """Esketamine devices taken out and not (yet) used: returned to stock or disposed of once dosing
        is complete."""
        return self.draw.unit == "devices" and self.unaccounted > 0


def draw_statuses(session: Any) -> list[DrawStatus]:
    """Each draw of the session with what of it was wasted: one query, however many draws."""
    from django.db.models import DecimalField, OuterRef, Subquery, Value
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
        .select_related(
            "container__product",
            "devices_disposed_by",
            "devices_disposal_witness",
            "returned_by",
            "return_witness",
        )
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
                disposal_needed=d.unit == "devices" and d.given > 0 and d.devices_disposed_at is None,
            )
        )
    return out


def discharge_stock_problems(session: Any) -> list[str]:
    """Sentences for each drawn amount not yet accounted for (residue not wasted, devices taken out and
    not used that were neither returned nor disposed of, used devices whose disposal is not recorded);
    discharge is refused while there is one."""
    problems = []
    for st in draw_statuses(session):
        c = st.draw.container
        if st.unused_devices:
            problems.append(
                f"Controlled substances: {_fmt(st.unaccounted)} esketamine device(s) taken from "
                f"{c.identifier} (lot {c.lot}) were not used; return them to stock or record their "
                "disposal, with a witness, before discharge."
            )
        elif st.unaccounted > 0:
            problems.append(
                f"Controlled substances: {_fmt(st.unaccounted)} {st.draw.unit} drawn from "
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
        raise DomainError(
            "Esketamine devices are not wasted here: return the unused devices to stock or record their "
            "disposal, and record the used devices' disposal."
        )
    if amount_mg <= 0:
        raise DomainError("The amount wasted must be above zero.")
    if witness is None:
        raise DomainError("A waste needs a second person as witness, signed in.")
    # the container row is locked first; the session's earlier waste is read after it
    _locked(actor, draw.container_id)
    left = draw.residue - _session_waste(session, draw.container_id)
    if amount_mg > left:
        raise DomainError(
            f"Only {_fmt(max(left, Decimal(0)))} mg drawn from {draw.container.identifier} is not "
            f"yet accounted for; {_fmt(amount_mg)} mg cannot be wasted."
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
def waste_residue(actor: Actor, session: Any, *, witness: Any, reason: str) -> list[LedgerEntry]:
    """Everything a session drew in mg and neither gave nor wasted (what stayed in an aborted infusion's
    bag and in the syringe), wasted now in front of ``witness``: each draw's rest through
    ``waste_for_session``, so an aborted session's record closes with no drug unaccounted for (§5 [A24]).
    Without a witness while something is left: refused, nothing stored. Returns the waste lines."""
    left = [st for st in draw_statuses(session) if st.draw.unit == "mg" and st.unaccounted > 0]
    if left and witness is None:
        what = ", ".join(f"{_fmt(st.unaccounted)} mg from {st.draw.container.identifier}" for st in left)
        sentence = (
            f"What was drawn and not given ({what}) is wasted when the session is aborted: a second "
            "person witnesses it, signed in on this form."
        )
        raise DomainError(field_errors={"witness_email": [sentence]})
    return [
        waste_for_session(
            actor, session, draw_id=st.draw.pk, amount_mg=st.unaccounted, witness=witness, reason=reason
        )
        for st in left
    ]


def _still_dosing(session: Any) -> bool:
    from kapclinic.sessions.models import DosingSession

    state = DosingSession.objects.filter(pk=session.pk).values_list("state", flat=True).first()
    return state == "dosing"


#: What happens to esketamine devices taken out for a session and not used.
UNUSED_DEVICE_CHOICES = (
    ("return", "Returned to stock, unopened"),
    ("dispose", "Disposed of (wasted)"),
)


@transaction.atomic
def settle_unused_devices(actor: Actor, session: Any, *, draw_id: int, how: str, witness: Any) -> SessionDraw:
    """Esketamine devices taken out for a session and not used (a partial dose, a session stopped),
    once dosing is over: returned to stock (no ledger line: they never left its balance; the draw
    records who returned them and the witness) or disposed of (a witnessed waste line). Either way,
    with a witness, all of the draw's unused devices at once, so the ledger and the draws add up."""
    _require(actor, ClinicAction.HANDLE_DOSES, "return or dispose of unused devices")
    user = actor.require_user()
    draw = SessionDraw.objects.select_related("container").filter(pk=draw_id, session=session).first()
    if draw is None:
        raise DomainError("That draw is not part of this session.")
    if draw.unit != "devices":
        raise DomainError("Only esketamine devices are returned or disposed of unused.")
    if how not in dict(UNUSED_DEVICE_CHOICES):
        raise DomainError("Say whether the unused devices went back to stock or were disposed of.")
    if _still_dosing(session):
        raise DomainError(
            "Dosing is still going on: the devices not used are recorded once dosing is complete (or "
            "the session is stopped)."
        )
    if witness is None:
        raise DomainError("Returning or disposing of unused devices needs a second person as witness.")
    if witness.pk == user.pk:
        raise DomainError("The witness must be a different person from the one returning or disposing.")
    _staff_ok(actor, witness, "witness")
    _locked(actor, draw.container_id)  # serialised with draws and counts of this pack
    draw = SessionDraw.objects.select_for_update().select_related("container").get(pk=draw.pk)
    left = draw.residue - _session_waste(session, draw.container_id)
    if left <= 0:
        raise DomainError(
            f"Every device taken from {draw.container.identifier} for this session is accounted for."
        )
    if how == "dispose":
        record_entry(
            actor,
            draw.container_id,
            kind="waste",
            amount=int(left),
            unit="devices",
            witness=witness,
            reason="Taken out, not used (partial dose): disposed of",
            session=session,
            patient=session.patient,
        )
        return draw
    draw.returned += left
    draw.returned_at = clock.now()
    draw.returned_by = user
    draw.return_witness = witness
    draw.save(update_fields=["returned", "returned_at", "returned_by", "return_witness"])
    record_event(
        actor,
        "update",
        patient=session.patient,
        obj=draw,
        detail=f"inventory.devices_returned n={int(left)}",
    )
    return draw


@transaction.atomic
def dispose_devices(actor: Actor, session: Any, *, draw_id: int, witness: Any) -> SessionDraw:
    """The used esketamine devices of a draw went to medical waste under controlled-substance rules
    (§7 [A49]), witnessed, once dosing is over. Not a ledger line: the devices were administered."""
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
    if _still_dosing(session):
        raise DomainError("Dosing is still going on: record the used devices' disposal once it is complete.")
    if draw.given <= 0:
        raise DomainError(f"No device from {draw.container.identifier} was used in this session.")
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
