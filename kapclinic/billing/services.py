"""Writes for fees, charges, payments and packages. Every function is transactional and audited.

Money moves under ``select_for_update`` on the patient's billing Account row, so two billers posting a
payment and a write-off on the same account are serialised and each sees the other's result. Editable
rows (fee items, profiles, draft charge lines) use optimistic concurrency (core/concurrency.py).
The arithmetic is kapclinic/clinical/billing/; the rules and their sources are docs/billing.md.

Over 600 lines: every money write follows the one locking rule above, read in one place; the sections
(accounts, identifiers, fee schedule, proposals, payments, packages) are the seams if it grows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import DecimalField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from kapclinic.audit.models import AuditAction
from kapclinic.audit.services import record_event
from kapclinic.billing.models import (
    Account,
    Adjustment,
    AdjustmentKind,
    Allocation,
    BillingProfile,
    ChargeLine,
    ChargeStatus,
    CodeSystem,
    FeeItem,
    Method,
    Package,
    PackagePurchase,
    Payment,
    PaymentKind,
    ProviderProfile,
)
from kapclinic.clinical.billing import codes as code_data
from kapclinic.clinical.billing import ledger as core
from kapclinic.clinical.billing.money import ZERO, MoneyError, line_total, money
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.concurrency import save_versioned
from kapclinic.core.errors import DomainError
from kapclinic.patients.models import DiagnosisStatus, Patient
from kapclinic.policy import ClinicAction, clinic_can

MAX_POINTERS = 4  # diagnosis pointers per line (CMS-1500 box 24E; docs/billing.md section 2)
MAX_CLAIM_DIAGNOSES = 12  # box 21, A-L
PACKAGE_CODE = "PKG"


def _require(actor: Actor) -> None:
    if not clinic_can(actor, ClinicAction.BILLING):
        raise DomainError("Your role may not change billing records.")


def _clinic(actor: Actor) -> Any:
    if actor.clinic is None:
        raise DomainError("Choose a clinic first.")
    return actor.clinic


def _same_clinic(actor: Actor, obj: Any) -> None:
    if actor.clinic is None or obj.clinic_id != actor.clinic.pk:
        raise DomainError("That record belongs to another clinic.")


def _money(value: Any, label: str, *, positive: bool = True) -> Decimal:
    try:
        amount = money(value)
    except MoneyError as exc:
        raise DomainError(f"{label}: {exc}") from exc
    if positive and amount <= 0:
        raise DomainError(f"{label} must be more than zero.")
    return amount


# ---------------------------------------------------------------- accounts and open amounts


def account_for(patient: Patient, *, lock: bool = False) -> Account:
    account, _ = Account.objects.get_or_create(patient=patient, defaults={"clinic_id": patient.clinic_id})
    if lock:
        account = Account.objects.select_for_update().get(pk=account.pk)
    return account


def _sum_sub(model: Any, field: str = "amount") -> Subquery:
    return Subquery(
        model.objects.filter(charge=OuterRef("pk"))
        .order_by()
        .values("charge")
        .annotate(t=Sum(field))
        .values("t")[:1],
        output_field=DecimalField(max_digits=12, decimal_places=2),
    )


def with_open(qs: QuerySet[ChargeLine]) -> QuerySet[ChargeLine]:
    """Posted charge lines annotated with what was paid (allocations), package cover, other
    adjustments and the open amount."""
    zero = Value(ZERO, output_field=DecimalField(max_digits=12, decimal_places=2))
    paid = Coalesce(_sum_sub(Allocation), zero)
    package = Coalesce(
        Subquery(
            Adjustment.objects.filter(charge=OuterRef("pk"), kind=AdjustmentKind.PACKAGE)
            .order_by()
            .values("charge")
            .annotate(t=Sum("amount"))
            .values("t")[:1],
            output_field=DecimalField(max_digits=12, decimal_places=2),
        ),
        zero,
    )
    adjusted = Coalesce(_sum_sub(Adjustment), zero)
    annotated = qs.annotate(  # type: ignore[no-redef]
        paid_amount=paid, package_amount=package, adjusted_amount=adjusted
    )
    return annotated.annotate(  # type: ignore[no-redef]
        open_amount_db=Coalesce("amount", zero) - Coalesce(paid, zero) - Coalesce(adjusted, zero)
    )


def open_charges(patient: Patient) -> list[ChargeLine]:
    return [
        c
        for c in with_open(ChargeLine.objects.filter(patient=patient, status=ChargeStatus.POSTED))
        if money(c.open_amount_db) > 0
    ]


def unapplied_credit(patient: Patient) -> Decimal:
    """Money received not applied to any charge (a credit on the account), net of refunds."""
    received = Payment.objects.filter(patient=patient, kind=PaymentKind.PAYMENT).aggregate(t=Sum("amount"))[
        "t"
    ]
    refunded = Payment.objects.filter(patient=patient, kind=PaymentKind.REFUND).aggregate(t=Sum("amount"))[
        "t"
    ]
    applied = Allocation.objects.filter(payment__patient=patient).aggregate(t=Sum("amount"))["t"]
    return money((received or ZERO) - (refunded or ZERO) - (applied or ZERO))


# ---------------------------------------------------------------- clinic identifiers


def profile_for(clinic: Any) -> BillingProfile:
    found = BillingProfile.objects.filter(clinic=clinic).first()
    return found if found is not None else BillingProfile(clinic=clinic)


def provider_for(clinic: Any, user: Any) -> ProviderProfile:
    found = ProviderProfile.objects.filter(clinic=clinic, user=user).first()
    return found if found is not None else ProviderProfile(clinic=clinic, user=user)


PROFILE_FIELDS = ["legal_name", "organisation_npi", "tax_id", "billing_address", "billing_phone"]
PROVIDER_FIELDS = ["credentials", "licence_number", "licence_state", "npi"]


def _npi_problem(npi: str) -> str | None:
    """An NPI is 10 digits with a Luhn check digit over the prefix 80840 (CMS NPI check digit rule)."""
    if not npi:
        return None
    if len(npi) != 10 or not npi.isdigit():
        return "An NPI is 10 digits."
    digits = [int(c) for c in "80840" + npi[:9]]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    if (10 - total % 10) % 10 != int(npi[9]):
        return f"NPI {npi} fails its check digit; check it against the NPI registry."
    return None


@transaction.atomic
def save_profile(actor: Actor, *, expected_version: int | None, **values: str) -> BillingProfile:
    _require(actor)
    problem = _npi_problem(values.get("organisation_npi", ""))
    if problem:
        raise DomainError(problem)
    profile = profile_for(actor.clinic)
    for name in PROFILE_FIELDS:
        if name in values:
            setattr(profile, name, values[name].strip())
    if profile.pk is None:
        profile.save()
    else:
        save_versioned(profile, expected_version or 0, PROFILE_FIELDS)
    record_event(actor, AuditAction.UPDATE, obj=profile, detail="billing.profile")
    return profile


@transaction.atomic
def save_provider(actor: Actor, user: Any, *, expected_version: int | None, **values: str) -> ProviderProfile:
    from kapclinic.accounts.models import Membership

    _require(actor)
    if not Membership.objects.filter(user=user, clinic=actor.clinic, is_active=True).exists():
        raise DomainError("The provider must be a member of this clinic's staff.")
    problem = _npi_problem(values.get("npi", ""))
    if problem:
        raise DomainError(problem)
    provider = provider_for(actor.clinic, user)
    for name in PROVIDER_FIELDS:
        if name in values:
            setattr(provider, name, values[name].strip())
    if provider.pk is None:
        provider.save()
    else:
        save_versioned(provider, expected_version or 0, PROVIDER_FIELDS)
    record_event(actor, AuditAction.UPDATE, obj=provider, detail="billing.provider")
    return provider


# ---------------------------------------------------------------- fee schedule


def _clean_modifiers(text: str) -> str:
    mods = [m.strip().upper() for m in text.replace(" ", ",").split(",") if m.strip()]
    bad = [m for m in mods if len(m) != 2 or not m.isalnum()]
    if bad:
        raise DomainError("A modifier is two letters or digits (e.g. 95); separate several with commas.")
    if len(mods) > 4:
        raise DomainError("A line carries at most four modifiers.")
    return ",".join(mods)


@transaction.atomic
def add_fee_item(
    actor: Actor,
    *,
    code: str,
    price: Any,
    modifiers: str = "",
    description: str = "",
    system: str = "",
    appointment_kinds: Iterable[str] = (),
    protocols: Iterable[str] = (),
) -> FeeItem:
    """A priced service. Codes in the code data file take its system and version; any other code is the
    clinic's own (system LOCAL unless it says CPT/HCPCS) and needs the clinic's description."""
    _require(actor)
    code = code.strip().upper()
    if not code or len(code) > 12 or not code.replace("-", "").isalnum():
        raise DomainError("A code is letters and digits, at most 12.")
    known = code_data.load().get(code)
    if known is not None:
        system, version = known.system, known.version
    else:
        version = ""
        system = system or CodeSystem.LOCAL
        if system not in CodeSystem.values:
            raise DomainError("Choose CPT, HCPCS or a clinic code.")
        if not description.strip():
            raise DomainError(
                f"{code} is not in the code data shipped with KAP Clinic: give its description "
                "as your clinic uses it (it is printed as your wording)."
            )
    mods = _clean_modifiers(modifiers)
    if FeeItem.objects.filter(clinic=actor.clinic, code=code, modifiers=mods).exists():
        raise DomainError(f"{code}{' with ' + mods if mods else ''} is already on the fee schedule.")
    item = FeeItem.objects.create(
        clinic=_clinic(actor),
        code=code,
        system=system,
        code_version=version,
        description=description.strip(),
        modifiers=mods,
        price=_money(price, "Price", positive=False),
        appointment_kinds=sorted(set(appointment_kinds)),
        protocols=sorted(set(protocols)),
    )
    record_event(actor, AuditAction.CREATE, obj=item, detail=f"billing.fee:{code}")
    return item


@transaction.atomic
def update_fee_item(
    actor: Actor,
    item: FeeItem,
    *,
    expected_version: int,
    price: Any,
    appointment_kinds: Iterable[str],
    protocols: Iterable[str],
    active: bool,
) -> FeeItem:
    _require(actor)
    _same_clinic(actor, item)
    item.price = _money(price, "Price", positive=False)
    item.appointment_kinds = sorted(set(appointment_kinds))
    item.protocols = sorted(set(protocols))
    item.active = active
    save_versioned(item, expected_version, ["price", "appointment_kinds", "protocols", "active"])
    record_event(actor, AuditAction.UPDATE, obj=item, detail=f"billing.fee:{item.code}")
    return item


def describe(code: str, fallback: str = "") -> str:
    known = code_data.load().get(code)
    if known is not None and known.descriptor:
        return known.descriptor
    return fallback


# ---------------------------------------------------------------- proposals


def _diagnoses(patient: Patient) -> list[str]:
    return list(
        patient.diagnoses.filter(status=DiagnosisStatus.ACTIVE)
        .order_by("recorded_at", "id")
        .values_list("icd10", flat=True)[:MAX_POINTERS]
    )


def _fee_items_for(clinic: Any, kind: str, protocol: str = "") -> list[FeeItem]:
    items = [
        i for i in FeeItem.objects.filter(clinic=clinic, active=True) if kind in (i.appointment_kinds or [])
    ]
    if protocol:
        items = [i for i in items if not i.protocols or protocol in i.protocols]
    else:
        items = [i for i in items if not i.protocols]
    return items


def _line(
    actor: Actor,
    patient: Patient,
    item: FeeItem,
    *,
    on: dt.date,
    units: int,
    pos: str,
    dx: list[str],
    provider: Any,
    note: str = "",
    appointment: Any = None,
    session: Any = None,
) -> ChargeLine:
    return ChargeLine(
        clinic=patient.clinic,
        patient=patient,
        service_date=on,
        appointment=appointment,
        session=session,
        fee_item=item,
        code=item.code,
        system=item.system,
        code_version=item.code_version,
        description=item.description or describe(item.code),
        modifiers=item.modifiers,
        units=units,
        unit_price=item.price,
        amount=line_total(item.price, units),
        pos=pos,
        diagnosis_codes=dx,
        provider=provider,
        review_note=note[:300],
        created_by=actor.require_user(),
    )


def _units_and_note(
    item: FeeItem, *, minutes: int | None, dose_mg: Decimal | None, minutes_from: str
) -> tuple[int | None, str]:
    """(units, review note) for a fee item; units None: this code does not apply to what was documented."""
    known = code_data.load().get(item.code)
    if known is None:
        return 1, ""
    rule = known.rule
    if rule.kind == "per_visit" and (rule.dose_mg_max is not None or rule.dose_mg_over is not None):
        if dose_mg is None:
            return None, ""
        return (1, "") if code_data.esketamine_visit_code(dose_mg) == item.code else (None, "")
    if rule.kind == "per_hour_unconfirmed":
        hours = f" ({minutes} documented minutes)" if minutes is not None else ""
        return 1, f"Enter the units: the sources give 'each hour' without a counting rule{hours}."
    units = code_data.units_for(known, minutes=minutes, dose_mg=dose_mg)
    if units is None:
        return None, ""
    note = (
        f"Units from {minutes} minutes ({minutes_from})." if rule.time_based and minutes is not None else ""
    )
    return units, note


def _existing(**source: Any) -> bool:
    return ChargeLine.objects.filter(**source).exclude(status=ChargeStatus.DISCARDED).exists()


@transaction.atomic
def propose_for_appointment(actor: Actor, appointment: Any) -> list[ChargeLine]:
    """Draft charge lines for a completed visit from the fee schedule items of its kind."""
    from kapclinic.scheduling.models import Modality, Status

    _require(actor)
    _same_clinic(actor, appointment)
    if appointment.status != Status.COMPLETED:
        raise DomainError("Only a completed visit has charges.")
    if _existing(appointment=appointment) or _existing(session__appointment=appointment):
        raise DomainError("This visit already has charge lines.")
    patient = appointment.patient
    pos = "02" if appointment.modality == Modality.VIDEO else "11"
    on = timezone.localdate(appointment.starts_at)
    lines = []
    for item in _fee_items_for(appointment.clinic, appointment.kind):
        units, note = _units_and_note(
            item, minutes=appointment.minutes, dose_mg=None, minutes_from="the appointment's booked length"
        )
        if units is None:
            continue
        lines.append(
            _line(
                actor,
                patient,
                item,
                on=on,
                units=units,
                pos=pos,
                dx=_diagnoses(patient),
                provider=appointment.staff,
                note=note,
                appointment=appointment,
            )
        )
    if not lines:
        raise DomainError(
            "No fee schedule item applies to this visit: add one for this appointment kind "
            "on the fee schedule."
        )
    ChargeLine.objects.bulk_create(lines)
    record_event(
        actor, AuditAction.CREATE, patient=patient, obj=appointment, detail=f"billing.propose:{len(lines)}"
    )
    return lines


def _session_minutes(session: Any) -> tuple[int | None, Decimal | None]:
    admin = getattr(session, "administration", None)
    if admin is None:
        return None, None
    minutes = None
    if admin.infusion_stopped_at and admin.administered_at:
        minutes = int((admin.infusion_stopped_at - admin.administered_at).total_seconds() // 60)
    elif admin.infusion_minutes:
        minutes = int(admin.infusion_minutes)
    return minutes, Decimal(admin.dose_mg) if admin.dose_mg is not None else None


@transaction.atomic
def propose_for_session(actor: Actor, session: Any) -> list[ChargeLine]:
    """Draft charge lines for a discharged dosing session: fee items for dosing appointments, filtered by
    the session's protocol; the esketamine visit code by dose, infusion codes by infusion minutes."""
    from kapclinic.scheduling.models import Kind
    from kapclinic.sessions.models import SessionState

    _require(actor)
    _same_clinic(actor, session)
    if session.state != SessionState.DISCHARGED:
        raise DomainError("Only a discharged session has charges.")
    if _existing(session=session) or (
        session.appointment_id and _existing(appointment_id=session.appointment_id)
    ):
        raise DomainError("This session already has charge lines.")
    patient = session.patient
    minutes, dose = _session_minutes(session)
    monitoring = None
    if session.first_dose_at and session.discharged_at:
        monitoring = int((session.discharged_at - session.first_dose_at).total_seconds() // 60)
    on = timezone.localdate(session.discharged_at)
    # The rendering provider: the prescriber who ordered the dose (the supervising physician or QHP the
    # esketamine visit codes name, docs/billing.md [C1]); the discharging clinician when no order exists.
    admin = getattr(session, "administration", None)
    provider = admin.ordered_by if admin is not None else session.discharged_by
    lines = []
    for item in _fee_items_for(session.clinic, Kind.DOSING, session.protocol_id):
        known = code_data.load().get(item.code)
        use_minutes = (
            monitoring if known is not None and known.rule.kind == "per_hour_unconfirmed" else minutes
        )
        units, note = _units_and_note(
            item, minutes=use_minutes, dose_mg=dose, minutes_from="the session record"
        )
        if units is None:
            continue
        lines.append(
            _line(
                actor,
                patient,
                item,
                on=on,
                units=units,
                pos="11",
                dx=_diagnoses(patient),
                provider=provider,
                note=note,
                session=session,
                appointment=session.appointment,
            )
        )
    if not lines:
        raise DomainError(
            "No fee schedule item applies to this session: add one for dosing sessions (and this protocol)."
        )
    ChargeLine.objects.bulk_create(lines)
    record_event(
        actor, AuditAction.CREATE, patient=patient, obj=session, detail=f"billing.propose:{len(lines)}"
    )
    return lines


@transaction.atomic
def add_charge(
    actor: Actor, patient: Patient, *, item: FeeItem, on: dt.date, units: int = 1, pos: str = "11"
) -> ChargeLine:
    """A draft line entered by hand (e.g. a service with no appointment)."""
    _require(actor)
    _same_clinic(actor, patient)
    _same_clinic(actor, item)
    if units < 1:
        raise DomainError("Units must be at least 1.")
    line = _line(actor, patient, item, on=on, units=units, pos=pos, dx=_diagnoses(patient), provider=None)
    line.save()
    record_event(actor, AuditAction.CREATE, patient=patient, obj=line, detail=f"billing.charge:{line.code}")
    return line


def _pointers(text_or_list: Any, patient: Patient) -> list[str]:
    if isinstance(text_or_list, str):
        codes = [c.strip().upper() for c in text_or_list.replace(";", ",").split(",") if c.strip()]
    else:
        codes = [str(c).strip().upper() for c in text_or_list]
    if len(codes) > MAX_POINTERS:
        raise DomainError(f"A line points at most {MAX_POINTERS} diagnosis codes.")
    chart = set(patient.diagnoses.values_list("icd10", flat=True))
    unknown = [c for c in codes if c not in {x.upper() for x in chart}]
    if unknown:
        raise DomainError(f"{', '.join(unknown)} is not a diagnosis on this patient's chart.")
    return codes


@transaction.atomic
def edit_draft(
    actor: Actor,
    line: ChargeLine,
    *,
    expected_version: int,
    units: int,
    modifiers: str,
    diagnosis_codes: Any,
    pos: str,
    unit_price: Any,
) -> ChargeLine:
    _require(actor)
    _same_clinic(actor, line)
    if line.status != ChargeStatus.DRAFT:
        raise DomainError("A posted charge is corrected by an adjustment, never edited.")
    if units < 1:
        raise DomainError("Units must be at least 1.")
    if pos not in {"11", "02"}:
        raise DomainError("Place of service is 11 (office) or 02 (telehealth).")
    line.units = units
    line.modifiers = _clean_modifiers(modifiers)
    line.diagnosis_codes = _pointers(diagnosis_codes, line.patient)
    line.pos = pos
    line.unit_price = _money(unit_price, "Price", positive=False)
    line.amount = line_total(line.unit_price, units)
    line.review_note = ""
    save_versioned(
        line,
        expected_version,
        ["units", "modifiers", "diagnosis_codes", "pos", "unit_price", "amount", "review_note"],
    )
    record_event(
        actor, AuditAction.UPDATE, patient=line.patient, obj=line, detail=f"billing.draft:{line.code}"
    )
    return line


@transaction.atomic
def discard_draft(actor: Actor, line: ChargeLine, *, expected_version: int) -> None:
    _require(actor)
    _same_clinic(actor, line)
    if line.status != ChargeStatus.DRAFT:
        raise DomainError("A posted charge is corrected by an adjustment, never discarded.")
    line.status = ChargeStatus.DISCARDED
    save_versioned(line, expected_version, ["status"])
    record_event(actor, AuditAction.UPDATE, patient=line.patient, obj=line, detail="billing.discard")


@transaction.atomic
def post_charges(actor: Actor, patient: Patient, *, line_ids: Iterable[int]) -> list[ChargeLine]:
    """Post reviewed draft lines (they become part of the balance and are never edited again)."""
    _require(actor)
    _same_clinic(actor, patient)
    account_for(patient, lock=True)
    ids = list(line_ids)
    lines = list(ChargeLine.objects.select_for_update().filter(patient=patient, pk__in=ids))
    if not lines or len(lines) != len(set(ids)):
        raise DomainError("Choose the proposed lines to post.")
    problems = []
    for line in lines:
        if line.status != ChargeStatus.DRAFT:
            problems.append(
                f"{line.code} on {line.service_date:%Y-%m-%d} is already {line.get_status_display()}."
            )
        if not line.diagnosis_codes and line.system != CodeSystem.LOCAL:
            problems.append(
                f"{line.code} on {line.service_date:%Y-%m-%d} needs a diagnosis code from the chart."
            )
        if line.review_note.startswith("Enter the units"):
            problems.append(f"{line.code}: confirm its units first (save the line).")
    if problems:
        raise DomainError(problems)
    now = clock.now()
    user = actor.require_user()
    for line in lines:
        ChargeLine.objects.filter(pk=line.pk).update(
            status=ChargeStatus.POSTED, posted_by=user, posted_at=now
        )
        line.status, line.posted_by, line.posted_at = ChargeStatus.POSTED, user, now
    record_event(
        actor,
        AuditAction.UPDATE,
        patient=patient,
        detail=f"billing.post:{len(lines)}",
        object_type="billing.chargeline",
        object_id=",".join(str(i) for i in sorted(ids))[:60],
    )
    return lines


# ---------------------------------------------------------------- payments, refunds, adjustments


def _apply(payment: Payment, patient: Patient, order: Sequence[int] | None = None) -> Decimal:
    """Allocate what is left of `payment` over the open charges; returns the unapplied credit."""
    left = money(payment.amount) - money(
        Allocation.objects.filter(payment=payment).aggregate(t=Sum("amount"))["t"] or ZERO
    )
    if left <= 0:
        return ZERO
    opened = [core.OpenCharge(c.pk, c.service_date, money(c.open_amount_db)) for c in open_charges(patient)]
    try:
        applied, credit = core.allocate(left, opened, order=order)
    except core.AllocationRefused as exc:
        raise DomainError(str(exc)) from exc
    Allocation.objects.bulk_create(
        Allocation(payment=payment, charge_id=key, amount=amount) for key, amount in applied.items()
    )
    return credit


@transaction.atomic
def record_payment(
    actor: Actor,
    patient: Patient,
    *,
    method: str,
    amount: Any,
    reference: str = "",
    received_on: dt.date | None = None,
    apply_to: Sequence[int] | None = None,
    processor_ref: str = "",
) -> Payment:
    """Record money received and allocate it to open charges (oldest first, or `apply_to` first);
    what is left stays as a credit and is applied to later charges by `apply_credit`."""
    _require(actor)
    _same_clinic(actor, patient)
    if method not in Method.values:
        raise DomainError("Choose how it was paid: card, cash, cheque or bank transfer.")
    if method in {Method.CHEQUE, Method.BANK_TRANSFER} and not reference.strip():
        raise DomainError("A cheque or bank transfer needs its reference (cheque number or transfer id).")
    value = _money(amount, "Amount")
    today = clock.today()
    on = received_on or today
    if on > today:
        raise DomainError("A payment cannot be received in the future.")
    account_for(patient, lock=True)
    payment = Payment.objects.create(
        clinic=patient.clinic,
        patient=patient,
        kind=PaymentKind.PAYMENT,
        method=method,
        amount=value,
        reference=reference.strip()[:80],
        received_on=on,
        created_by=actor.require_user(),
        processor_ref=processor_ref,
    )
    _apply(payment, patient, apply_to)
    record_event(actor, AuditAction.CREATE, patient=patient, obj=payment, detail=f"billing.payment:{method}")
    return payment


@transaction.atomic
def apply_credit(actor: Actor, patient: Patient) -> int:
    """Apply unapplied payment money to open charges, oldest payment first. Returns allocations made."""
    _require(actor)
    _same_clinic(actor, patient)
    account_for(patient, lock=True)
    before = Allocation.objects.filter(payment__patient=patient).count()
    for payment in Payment.objects.filter(patient=patient, kind=PaymentKind.PAYMENT).order_by(
        "received_on", "id"
    ):
        refunded = payment.refunds.aggregate(t=Sum("amount"))["t"] or ZERO
        applied = payment.allocations.aggregate(t=Sum("amount"))["t"] or ZERO
        if money(payment.amount) - money(refunded) - money(applied) > 0 and open_charges(patient):
            left = money(payment.amount) - money(refunded) - money(applied)
            opened = [
                core.OpenCharge(c.pk, c.service_date, money(c.open_amount_db)) for c in open_charges(patient)
            ]
            got, _ = core.allocate(left, opened)
            Allocation.objects.bulk_create(
                Allocation(payment=payment, charge_id=k, amount=v) for k, v in got.items()
            )
    made = Allocation.objects.filter(payment__patient=patient).count() - before
    if made:
        record_event(
            actor,
            AuditAction.UPDATE,
            patient=patient,
            detail=f"billing.apply_credit:{made}",
            object_type="billing.account",
            object_id=patient.pk,
        )
    return made


@transaction.atomic
def refund(
    actor: Actor, payment: Payment, *, amount: Any, method: str, reference: str = "", reason: str = ""
) -> Payment:
    """Give back money from a payment: first its unapplied part, then taken back from its allocations
    (newest first), so the charges it paid are open again."""
    _require(actor)
    _same_clinic(actor, payment)
    if payment.kind != PaymentKind.PAYMENT:
        raise DomainError("Only a payment can be refunded.")
    if method not in Method.values:
        raise DomainError("Choose how the money was given back.")
    value = _money(amount, "Refund")
    account_for(payment.patient, lock=True)
    already = money(payment.refunds.aggregate(t=Sum("amount"))["t"] or ZERO)
    if value > money(payment.amount) - already:
        raise DomainError(f"At most {money(payment.amount) - already} of this payment can still be refunded.")
    allocated = money(payment.allocations.aggregate(t=Sum("amount"))["t"] or ZERO)
    unapplied = money(payment.amount) - already - allocated
    take_back = money(value - max(unapplied, ZERO)) if value > unapplied else ZERO
    out = Payment.objects.create(
        clinic=payment.clinic,
        patient=payment.patient,
        kind=PaymentKind.REFUND,
        method=method,
        amount=value,
        reference=(reference or reason).strip()[:80],
        received_on=clock.today(),
        refund_of=payment,
        created_by=actor.require_user(),
    )
    if take_back > 0:
        per_charge: dict[int, Decimal] = {}
        for a in payment.allocations.order_by("-created_at", "-id"):
            per_charge[a.charge_id] = per_charge.get(a.charge_id, ZERO) + money(a.amount)
        for charge_id, held in sorted(per_charge.items(), reverse=True):
            if take_back <= 0:
                break
            back = min(held, take_back)
            if back > 0:
                Allocation.objects.create(payment=payment, charge_id=charge_id, amount=-back)
                take_back = money(take_back - back)
    record_event(
        actor, AuditAction.CREATE, patient=payment.patient, obj=out, detail=f"billing.refund:{method}"
    )
    return out


@transaction.atomic
def adjust(actor: Actor, charge: ChargeLine, *, kind: str, amount: Any, reason: str) -> Adjustment:
    """Correct a posted charge: a positive amount reduces what is owed, a negative one raises it.
    A write-off or reduction cannot take more than is still open on the charge."""
    _require(actor)
    _same_clinic(actor, charge)
    if kind not in {AdjustmentKind.CORRECTION, AdjustmentKind.WRITE_OFF}:
        raise DomainError("Choose a correction or a write-off.")
    if charge.status != ChargeStatus.POSTED:
        raise DomainError("Only a posted charge is adjusted; edit a proposed line instead.")
    if not reason.strip():
        raise DomainError("Give the reason for the adjustment.")
    value = _money(amount, "Adjustment", positive=False)
    if value == 0:
        raise DomainError("An adjustment of zero changes nothing.")
    if kind == AdjustmentKind.WRITE_OFF and value < 0:
        raise DomainError("A write-off reduces what is owed; enter it as a positive amount.")
    account_for(charge.patient, lock=True)
    current = with_open(ChargeLine.objects.filter(pk=charge.pk)).get()
    if value > money(current.open_amount_db):
        raise DomainError(f"Only {money(current.open_amount_db)} is open on this charge.")
    adj = Adjustment.objects.create(
        clinic=charge.clinic,
        patient=charge.patient,
        charge=charge,
        kind=kind,
        amount=value,
        reason=reason.strip()[:300],
        on=clock.today(),
        created_by=actor.require_user(),
    )
    record_event(actor, AuditAction.CREATE, patient=charge.patient, obj=adj, detail=f"billing.adjust:{kind}")
    return adj


# ---------------------------------------------------------------- packages


@transaction.atomic
def add_package(
    actor: Actor, *, name: str, sessions: int, price: Any, appointment_kinds: Iterable[str]
) -> Package:
    _require(actor)
    if sessions < 1:
        raise DomainError("A package has at least one session.")
    if not name.strip():
        raise DomainError("Give the package a name.")
    pkg = Package.objects.create(
        clinic=_clinic(actor),
        name=name.strip()[:120],
        sessions=sessions,
        price=_money(price, "Price"),
        appointment_kinds=sorted(set(appointment_kinds)),
    )
    record_event(actor, AuditAction.CREATE, obj=pkg, detail="billing.package")
    return pkg


@transaction.atomic
def sell_package(
    actor: Actor, patient: Patient, *, package: Package, on: dt.date | None = None
) -> PackagePurchase:
    """The patient buys a series: one posted charge of the package price; sessions then draw from it."""
    _require(actor)
    _same_clinic(actor, patient)
    _same_clinic(actor, package)
    if not package.active:
        raise DomainError("That package is no longer offered.")
    account_for(patient, lock=True)
    user = actor.require_user()
    day = on or clock.today()
    purchase = PackagePurchase.objects.create(
        clinic=patient.clinic,
        patient=patient,
        package=package,
        name=package.name,
        sessions_bought=package.sessions,
        price=package.price,
        purchased_on=day,
        created_by=user,
    )
    ChargeLine.objects.create(
        clinic=patient.clinic,
        patient=patient,
        service_date=day,
        code=PACKAGE_CODE,
        system=CodeSystem.LOCAL,
        description=f"Package: {package.name} ({package.sessions} sessions)",
        units=1,
        unit_price=package.price,
        amount=package.price,
        status=ChargeStatus.POSTED,
        package_purchase=purchase,
        created_by=user,
        posted_by=user,
        posted_at=clock.now(),
    )
    record_event(actor, AuditAction.CREATE, patient=patient, obj=purchase, detail="billing.package_sold")
    return purchase


@transaction.atomic
def draw_package(
    actor: Actor, purchase: PackagePurchase, *, charges: Sequence[ChargeLine]
) -> PackagePurchase:
    """One session of the package covers these posted charges of one visit: the package's remaining
    sessions go down by one (never below zero) and each charge's open amount is adjusted as covered."""
    _require(actor)
    _same_clinic(actor, purchase)
    if not charges:
        raise DomainError("Choose the session's charges the package covers.")
    account_for(purchase.patient, lock=True)
    locked = PackagePurchase.objects.select_for_update().get(pk=purchase.pk)
    try:
        state = core.draw(core.PackageState(locked.sessions_bought, locked.sessions_used))
    except core.PackageRefused as exc:
        raise DomainError(str(exc)) from exc
    dates = {c.service_date for c in charges}
    if len(dates) != 1:
        raise DomainError("A package session covers the charges of one date of service.")
    user = actor.require_user()
    rows = with_open(ChargeLine.objects.filter(pk__in=[c.pk for c in charges], patient=purchase.patient))
    for c in rows:
        if c.status != ChargeStatus.POSTED or c.package_purchase_id:
            raise DomainError("Only posted session charges are covered by a package.")
        open_amount = money(c.open_amount_db)
        if open_amount > 0:
            Adjustment.objects.create(
                clinic=c.clinic,
                patient=c.patient,
                charge=c,
                kind=AdjustmentKind.PACKAGE,
                amount=open_amount,
                reason=f"Covered by package: {locked.name}",
                on=c.service_date,
                package_purchase=locked,
                created_by=user,
            )
    PackagePurchase.objects.filter(pk=locked.pk).update(sessions_used=state.sessions_used)
    locked.sessions_used = state.sessions_used
    record_event(
        actor, AuditAction.UPDATE, patient=purchase.patient, obj=locked, detail="billing.package_draw"
    )
    return locked
