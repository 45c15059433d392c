"""Controlled-substance records (issue 14): registrations, stock, a per-container append-only ledger,
counts, discrepancies, loss reports and destruction. Facts: docs/controlled-substances.md (§n below).

Records belong to one DEA registration: records are kept per registered location (§3). Ledger lines are
never changed or deleted (a mistake is corrected by a reversing line, §4); the arithmetic is the pure
core kapclinic/clinical/ledger.py.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from kapclinic.accounts.models import Role
from kapclinic.clinical.dosing import Mg, MgPerMl, Ml
from kapclinic.clinical.ledger import ContainerContent, Devices, dea_number_problem
from kapclinic.core import clock

USER = settings.AUTH_USER_MODEL


def validate_dea_number(value: str) -> None:
    problem = dea_number_problem(value)
    if problem:
        raise ValidationError(problem)


class InventorySettings(models.Model):
    """A clinic's choices: which roles may receive, adjust and destroy stock (prescribers by default),
    and how far an estimated count of an opened container may differ from the ledger (0 by default: no
    sourced value, §2)."""

    clinic = models.OneToOneField("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    stock_roles = models.CharField(max_length=100, default=Role.PRESCRIBER.value)
    estimate_tolerance_mg = models.DecimalField(max_digits=9, decimal_places=3, default=Decimal(0))

    def stock_role_list(self) -> list[str]:
        return [r.strip() for r in self.stock_roles.split(",") if r.strip()]


class Registration(models.Model):
    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    dea_number = models.CharField("DEA number", max_length=9, unique=True, validators=[validate_dea_number])
    registrant = models.CharField(max_length=200)
    address = models.TextField(blank=True)
    expires_on = models.DateField()
    schedules = models.CharField(max_length=40, default="3,3N", help_text="e.g. 2,2N,3,3N,4,5")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering: ClassVar = ["dea_number"]

    def __str__(self) -> str:
        return f"{self.dea_number} ({self.registrant})"


class StorageLocation(models.Model):
    registration = models.ForeignKey(Registration, on_delete=models.PROTECT, related_name="locations")
    name = models.CharField(max_length=120)
    description = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return self.name


class ProductKind(models.TextChoices):
    VIAL = "vial", "Vial (mg/mL)"
    DEVICE_PACK = "device_pack", "Nasal device pack"


class Product(models.Model):
    """A stocked product (§7): a ketamine vial (concentration x volume) or an esketamine device pack."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=120)
    ndc = models.CharField("NDC", max_length=20)
    kind = models.CharField(max_length=12, choices=ProductKind.choices)
    concentration_mg_per_ml = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)
    volume_ml = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)
    devices_per_pack = models.PositiveSmallIntegerField(null=True, blank=True)
    device_strength_mg = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["name"]

    def __str__(self) -> str:
        return f"{self.name} — {self.content().describe()}"

    def content(self) -> ContainerContent:
        if self.kind == ProductKind.VIAL:
            assert self.concentration_mg_per_ml is not None and self.volume_ml is not None
            return ContainerContent.vial(MgPerMl(self.concentration_mg_per_ml), Ml(self.volume_ml))
        assert self.devices_per_pack is not None and self.device_strength_mg is not None
        return ContainerContent.pack(Devices(self.devices_per_pack), Mg(self.device_strength_mg))

    @property
    def unit(self) -> str:
        return "mg" if self.kind == ProductKind.VIAL else "devices"


class Receipt(models.Model):
    """An order received against its invoice (§3: Schedule III receipts are kept as invoices)."""

    registration = models.ForeignKey(Registration, on_delete=models.PROTECT, related_name="receipts")
    supplier = models.CharField(max_length=200)
    supplier_dea_number = models.CharField(max_length=9, validators=[validate_dea_number])
    invoice_number = models.CharField(max_length=60)
    invoice_date = models.DateField()
    received_on = models.DateField()
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    lot = models.CharField(max_length=60)
    expiry = models.DateField()
    containers = models.PositiveSmallIntegerField()
    location = models.ForeignKey(StorageLocation, on_delete=models.PROTECT, related_name="+")
    received_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering: ClassVar = ["-received_on", "-pk"]


class Container(models.Model):
    """One vial or device pack with its own identifier. ``balance`` (base unit: mg or devices) and
    ``last_seq`` mirror the newest ledger line; they are written only under the row lock."""

    registration = models.ForeignKey(Registration, on_delete=models.PROTECT, related_name="containers")
    receipt = models.ForeignKey(Receipt, on_delete=models.PROTECT, related_name="container_set")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    location = models.ForeignKey(StorageLocation, on_delete=models.PROTECT, related_name="+")
    identifier = models.CharField(max_length=30)
    lot = models.CharField(max_length=60)
    expiry = models.DateField()
    label_text = models.TextField()
    balance = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal(0))
    last_seq = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    #: Set by inventory.services.stock_for_form: the balance less what sessions drew and have not yet
    #: given, wasted or returned (not a column).
    available: Decimal

    class Meta:
        ordering: ClassVar = ["identifier"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["registration", "identifier"], name="container_identifier_unique")
        ]

    def __str__(self) -> str:
        return self.identifier

    def is_expired(self, on: dt.date | None = None) -> bool:
        return (on or clock.today()) > self.expiry


class EntryKind(models.TextChoices):
    RECEIPT = "receipt", "Received"
    ADMINISTRATION = "administration", "Administered"
    WASTE = "waste", "Wasted"
    DESTRUCTION = "destruction", "Destroyed"
    ADJUSTMENT = "adjustment", "Adjustment"
    REVERSAL = "reversal", "Reversal"


class AppendOnlyQuerySet(models.QuerySet[Any]):
    def update(self, **kwargs: Any) -> int:
        raise PermissionError("Ledger entries cannot be changed; record a reversing entry.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("Ledger entries cannot be deleted; record a reversing entry.")


class LedgerEntry(models.Model):
    """One ledger line. ``amount`` is positive in the container's base unit (mg or devices); ``delta``
    is signed; ``amount_mg``/``amount_ml``/``devices`` are the typed columns for reports."""

    container = models.ForeignKey(Container, on_delete=models.PROTECT, related_name="entries")
    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=EntryKind.choices)
    unit = models.CharField(max_length=8)
    amount = models.DecimalField(max_digits=12, decimal_places=4)
    delta = models.DecimalField(max_digits=12, decimal_places=4)
    balance_after = models.DecimalField(max_digits=12, decimal_places=4)
    amount_mg = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    amount_ml = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    devices = models.PositiveSmallIntegerField(null=True, blank=True)
    at = models.DateTimeField()
    by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    witness = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    session = models.ForeignKey(
        "kap_sessions.DosingSession", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    patient = models.ForeignKey(
        "patients.Patient", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    route = models.CharField(max_length=8, blank=True)
    reason = models.TextField(blank=True)
    reverses = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by"
    )
    recorded_at = models.DateTimeField(default=clock.now)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering: ClassVar = ["container_id", "seq"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["container", "seq"], name="ledger_container_seq_unique")
        ]
        indexes: ClassVar = [
            # The administration log (inventory.selectors.administration_log): the date range walked in
            # the log's order (at, container, seq), so a page reads its 50 rows without sorting the month;
            # kind and reverses make it covering for the log's count (no table row read per line). It
            # replaces (kind, at), whose two ranges the log's kind filter made SQLite merge and sort.
            models.Index(fields=["at", "container", "seq", "kind", "reverses"], name="ledger_log_at_order"),
        ]

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise PermissionError("Ledger entries cannot be changed; record a reversing entry.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError("Ledger entries cannot be deleted; record a reversing entry.")


class CountTiming(models.TextChoices):
    OPENING = "opening", "Opening of business"
    CLOSE = "close", "Close of business"


class CountKind(models.TextChoices):
    INITIAL = "initial", "Initial inventory"
    BIENNIAL = "biennial", "Biennial inventory"
    ON_DEMAND = "on_demand", "Count"


class Count(models.Model):
    """An inventory or count (§2): opening or close of business, taken by one person, witnessed by another."""

    registration = models.ForeignKey(Registration, on_delete=models.PROTECT, related_name="counts")
    kind = models.CharField(max_length=10, choices=CountKind.choices, default=CountKind.ON_DEMAND)
    timing = models.CharField(max_length=8, choices=CountTiming.choices)
    taken_at = models.DateTimeField()
    taken_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    witness = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering: ClassVar = ["-taken_at", "-pk"]


class CountLine(models.Model):
    count = models.ForeignKey(Count, on_delete=models.PROTECT, related_name="lines")
    container = models.ForeignKey(Container, on_delete=models.PROTECT, related_name="count_lines")
    counted = models.DecimalField(max_digits=12, decimal_places=4)
    exact = models.BooleanField(default=True)
    ledger_balance = models.DecimalField(max_digits=12, decimal_places=4)
    agrees = models.BooleanField()


class Discrepancy(models.Model):
    registration = models.ForeignKey(Registration, on_delete=models.PROTECT, related_name="discrepancies")
    container = models.ForeignKey(Container, on_delete=models.PROTECT, related_name="discrepancies")
    count_line = models.OneToOneField(CountLine, on_delete=models.PROTECT, related_name="discrepancy")
    difference = models.DecimalField(max_digits=12, decimal_places=4)  # counted - ledger
    opened_at = models.DateTimeField()
    explanation = models.TextField(blank=True)
    resolved_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-opened_at", "-pk"]

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class LossReport(models.Model):
    """A theft or significant loss (§6): its two clocks run from discovery until marked filed."""

    registration = models.ForeignKey(Registration, on_delete=models.PROTECT, related_name="loss_reports")
    discovered_at = models.DateTimeField()
    description = models.TextField()
    discrepancy = models.ForeignKey(
        Discrepancy, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    notice_filed_at = models.DateTimeField(null=True, blank=True)
    form106_filed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering: ClassVar = ["-discovered_at", "-pk"]


class DestructionMethod(models.TextChoices):
    ON_SITE = "on_site", "Destroyed on site to a non-retrievable state"
    REVERSE_DISTRIBUTOR = "reverse_distributor", "Transferred to a reverse distributor"


class Destruction(models.Model):
    """Inventory destruction as Form 41 records it (§5): two witnesses."""

    registration = models.ForeignKey(Registration, on_delete=models.PROTECT, related_name="destructions")
    container = models.ForeignKey(Container, on_delete=models.PROTECT, related_name="destructions")
    entry = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, related_name="destruction")
    method = models.CharField(max_length=20, choices=DestructionMethod.choices)
    reverse_distributor = models.CharField(max_length=200, blank=True)
    reverse_distributor_dea_number = models.CharField(max_length=9, blank=True)
    place = models.CharField(max_length=200)
    reason = models.TextField()
    destroyed_at = models.DateTimeField()
    by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    witness_1 = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    witness_2 = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")


class SessionDraw(models.Model):
    """What a dosing session drew from one container when dosing started (issue 14): the ledger's
    administration line (the dose given) and the amount drawn, in the container's base unit. A dose may
    be drawn from two containers of the same strength (one draw each). What was drawn but not given
    (syringe residue) is recorded as witnessed waste before discharge; the used esketamine devices'
    disposal is recorded with a witness (docs/controlled-substances.md §5, §7).

    Esketamine: ``drawn`` is the devices taken out of the pack, ``given`` the devices used so far (each
    device's administration line is written when it is used; ``entry`` is the first, None until one is
    used). Devices taken out but not used (a partial dose) are either ``returned`` to stock (no ledger
    line: they never left it) or disposed of as witnessed waste."""

    session = models.ForeignKey("kap_sessions.DosingSession", on_delete=models.PROTECT, related_name="+")
    container = models.ForeignKey(Container, on_delete=models.PROTECT, related_name="draws")
    entry = models.OneToOneField(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="draw"
    )
    unit = models.CharField(max_length=8)
    drawn = models.DecimalField(max_digits=12, decimal_places=4)
    given = models.DecimalField(max_digits=12, decimal_places=4)
    returned = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal(0))
    returned_at = models.DateTimeField(null=True, blank=True)
    returned_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    return_witness = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    at = models.DateTimeField()
    by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    devices_disposed_at = models.DateTimeField(null=True, blank=True)
    devices_disposed_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    devices_disposal_witness = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering: ClassVar = ["at", "pk"]

    @property
    def residue(self) -> Decimal:
        """Drawn and not given (syringe residue; esketamine devices taken out and not used)."""
        return self.drawn - self.given - self.returned


class ClinicHoliday(models.Model):
    """A day the clinic's business-day deadlines skip besides weekends (§6: which holidays count is
    the clinic's field office's word, so the clinic records them)."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    day = models.DateField()
    name = models.CharField(max_length=120)

    class Meta:
        ordering: ClassVar = ["day"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["clinic", "day"], name="clinic_holiday_unique")
        ]

    def __str__(self) -> str:
        return f"{self.day.isoformat()} {self.name}"
