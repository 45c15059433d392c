"""Fees, charges, payments and packages (issue 16; rules in docs/billing.md, arithmetic in
kapclinic/clinical/billing/).

Money columns are DecimalField(12, 2). A posted ChargeLine is never edited: corrections are
Adjustment rows. Money-moving writes lock the patient's Account row (select_for_update).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from django.conf import settings
from django.db import models

from kapclinic.core import clock
from kapclinic.core.concurrency import VersionedModel

USER = settings.AUTH_USER_MODEL


def money_field(**kwargs: Any) -> models.DecimalField[Any, Any]:
    return models.DecimalField(max_digits=12, decimal_places=2, **kwargs)


class BillingProfile(VersionedModel):
    """The clinic's billing identifiers for superbills (docs/billing.md section 3)."""

    clinic = models.OneToOneField("accounts.Clinic", on_delete=models.PROTECT, related_name="billing_profile")
    legal_name = models.CharField(max_length=200, blank=True, help_text="As registered with the tax id.")
    organisation_npi = models.CharField("organisation NPI", max_length=10, blank=True)
    tax_id = models.CharField("tax id (EIN)", max_length=20, blank=True)
    billing_address = models.TextField(blank=True, help_text="Blank: the clinic's address.")
    billing_phone = models.CharField(max_length=40, blank=True)
    currency = models.CharField(max_length=3, default="USD")


class ProviderProfile(VersionedModel):
    """A clinician's billing identifiers in one clinic: credentials, licence, individual NPI."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    credentials = models.CharField(max_length=60, blank=True, help_text="e.g. MD, PMHNP-BC, LCSW")
    licence_number = models.CharField(max_length=40, blank=True)
    licence_state = models.CharField(max_length=40, blank=True)
    npi = models.CharField("individual NPI", max_length=10, blank=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["clinic", "user"], name="provider_profile_once")
        ]


class CodeSystem(models.TextChoices):
    CPT = "CPT", "CPT"
    HCPCS = "HCPCS", "HCPCS"
    LOCAL = "LOCAL", "Clinic code"


class FeeItem(VersionedModel):
    """One priced service of the clinic's fee schedule."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    code = models.CharField(max_length=12)
    system = models.CharField(max_length=5, choices=CodeSystem.choices)
    code_version = models.CharField(max_length=20, blank=True, help_text="Version of the code data file.")
    description = models.CharField(
        max_length=300, blank=True, help_text="Clinic codes: the clinic's wording."
    )
    modifiers = models.CharField(max_length=20, blank=True, help_text="Comma-separated, e.g. 95")
    price = money_field()
    appointment_kinds = models.JSONField(default=list, blank=True)
    protocols = models.JSONField(default=list, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering: ClassVar = ["code", "modifiers"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["clinic", "code", "modifiers"], name="fee_item_once"),
            models.CheckConstraint(condition=models.Q(price__gte=0), name="fee_price_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.code}{'-' + self.modifiers if self.modifiers else ''}"


class Account(VersionedModel):
    """A patient's billing account: the row locked while money moves on it."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    patient = models.OneToOneField(
        "patients.Patient", on_delete=models.PROTECT, related_name="billing_account"
    )
    insurance_member_id = models.CharField(max_length=40, blank=True)
    insurance_payer = models.CharField(max_length=120, blank=True)


class ChargeStatus(models.TextChoices):
    DRAFT = "draft", "Proposed"
    POSTED = "posted", "Posted"
    DISCARDED = "discarded", "Discarded"


class POS(models.TextChoices):
    OFFICE = "11", "11 Office"
    TELEHEALTH = "02", "02 Telehealth"


class ChargeLine(VersionedModel):
    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="charge_lines")
    service_date = models.DateField()
    appointment = models.ForeignKey(
        "scheduling.Appointment", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    session = models.ForeignKey(
        "kap_sessions.DosingSession", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    fee_item = models.ForeignKey(FeeItem, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    code = models.CharField(max_length=12)
    system = models.CharField(max_length=5, choices=CodeSystem.choices)
    code_version = models.CharField(max_length=20, blank=True)
    description = models.CharField(max_length=400, blank=True)
    modifiers = models.CharField(max_length=20, blank=True)
    units = models.PositiveIntegerField(default=1)
    unit_price = money_field()
    amount = money_field()
    pos = models.CharField("place of service", max_length=2, choices=POS.choices, default=POS.OFFICE)
    diagnosis_codes = models.JSONField(default=list, blank=True)  # ICD-10, at most 4 (box 24E)
    provider = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    review_note = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=10, choices=ChargeStatus.choices, default=ChargeStatus.DRAFT)
    package_purchase = models.ForeignKey(
        "PackagePurchase", null=True, blank=True, on_delete=models.PROTECT, related_name="sale_lines"
    )
    created_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)
    posted_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    posted_at = models.DateTimeField(null=True, blank=True)

    # Set by services.with_open() annotations.
    paid_amount: Decimal
    package_amount: Decimal
    adjusted_amount: Decimal
    open_amount_db: Decimal

    class Meta:
        ordering: ClassVar = ["service_date", "id"]
        indexes: ClassVar = [
            models.Index(fields=["patient", "status", "service_date"], name="charge_patient_status"),
            models.Index(fields=["clinic", "status", "service_date"], name="charge_clinic_status"),
        ]
        constraints: ClassVar = [
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="charge_amount_not_negative"),
        ]


class Method(models.TextChoices):
    CARD = "card", "Card"
    CASH = "cash", "Cash"
    CHEQUE = "cheque", "Cheque"
    BANK_TRANSFER = "bank_transfer", "Bank transfer"


class PaymentKind(models.TextChoices):
    PAYMENT = "payment", "Payment"
    REFUND = "refund", "Refund"


class Payment(models.Model):
    """Money received (payment) or given back (refund). Append-only."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="payments")
    kind = models.CharField(max_length=10, choices=PaymentKind.choices, default=PaymentKind.PAYMENT)
    method = models.CharField(max_length=15, choices=Method.choices)
    amount = money_field()
    reference = models.CharField(max_length=80, blank=True)
    received_on = models.DateField()
    refund_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="refunds"
    )
    processor_ref = models.CharField(max_length=120, blank=True, help_text="A card processor's id, later.")
    created_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering: ClassVar = ["received_on", "id"]
        constraints: ClassVar = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="payment_positive")
        ]


class Allocation(models.Model):
    """Part of a payment applied to a charge (negative: taken back by a refund)."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="allocations")
    charge = models.ForeignKey(ChargeLine, on_delete=models.PROTECT, related_name="allocations")
    amount = money_field()
    created_at = models.DateTimeField(default=clock.now)


class AdjustmentKind(models.TextChoices):
    CORRECTION = "correction", "Correction"
    WRITE_OFF = "write_off", "Write-off"
    PACKAGE = "package", "Covered by package"


class Adjustment(models.Model):
    """Reduces (positive) or raises (negative) what is owed; the only way to correct a posted charge."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="adjustments")
    charge = models.ForeignKey(
        ChargeLine, null=True, blank=True, on_delete=models.PROTECT, related_name="adjustments"
    )
    kind = models.CharField(max_length=12, choices=AdjustmentKind.choices)
    amount = money_field()
    reason = models.CharField(max_length=300)
    on = models.DateField()
    package_purchase = models.ForeignKey(
        "PackagePurchase", null=True, blank=True, on_delete=models.PROTECT, related_name="draws"
    )
    created_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering: ClassVar = ["on", "id"]


class Package(VersionedModel):
    """A series sold at a package price, e.g. six infusions with integration sessions."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=120)
    sessions = models.PositiveSmallIntegerField()
    price = money_field()
    appointment_kinds = models.JSONField(default=list, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering: ClassVar = ["name"]


class PackagePurchase(VersionedModel):
    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="packages")
    package = models.ForeignKey(Package, on_delete=models.PROTECT, related_name="purchases")
    name = models.CharField(max_length=120)
    sessions_bought = models.PositiveSmallIntegerField()
    sessions_used = models.PositiveSmallIntegerField(default=0)
    price = money_field()
    purchased_on = models.DateField()
    created_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=models.Q(sessions_used__lte=models.F("sessions_bought")),
                name="package_not_overdrawn",
            )
        ]

    @property
    def remaining(self) -> int:
        return self.sessions_bought - self.sessions_used
