from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from kapclinic.accounts.models import Membership, Role, User
from kapclinic.clinical.ledger import dea_number_problem
from kapclinic.core import clock
from kapclinic.core.forms import KapForm
from kapclinic.inventory.models import (
    CountKind,
    CountTiming,
    DestructionMethod,
    Product,
    ProductKind,
    Registration,
    StorageLocation,
)
from kapclinic.inventory.witness import add_witness_fields

DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
DATETIME = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


def staff_choices(clinic: Any, roles: tuple[str, ...] = (Role.NURSE, Role.PRESCRIBER)) -> Any:
    ids = Membership.objects.filter(clinic=clinic, is_active=True, role__in=roles).values("user_id")
    return User.objects.filter(pk__in=ids, is_active=True).order_by("full_name")


class UserChoice(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.full_name)


def _dea(value: str) -> str:
    problem = dea_number_problem(value)
    if problem:
        raise ValidationError(problem)
    return value.strip().upper()


class RegistrationForm(forms.Form):
    dea_number = forms.CharField(label="DEA registration number", max_length=9)
    registrant = forms.CharField(max_length=200)
    address = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    expires_on = forms.DateField(label="Registration expires", widget=DATE)
    schedules = forms.CharField(initial="3,3N", max_length=40, help_text="e.g. 2,2N,3,3N,4,5")
    location = forms.CharField(label="Locked storage location", initial="Locked cabinet", max_length=120)

    def clean_dea_number(self) -> str:
        value = _dea(self.cleaned_data["dea_number"])
        if Registration.objects.filter(dea_number=value).exists():
            raise ValidationError("This DEA number is already registered.")
        return value


class ProductForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Product
        fields = (
            "name",
            "ndc",
            "kind",
            "concentration_mg_per_ml",
            "volume_ml",
            "devices_per_pack",
            "device_strength_mg",
        )
        labels = {
            "concentration_mg_per_ml": "Concentration (mg/mL)",
            "volume_ml": "Volume per vial (mL)",
            "devices_per_pack": "Devices per pack",
            "device_strength_mg": "mg per device",
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("kind") == ProductKind.VIAL:
            for f in ("concentration_mg_per_ml", "volume_ml"):
                if not data.get(f) or data[f] <= 0:
                    self.add_error(f, "A vial needs a concentration and a volume above zero.")
            data["devices_per_pack"] = data["device_strength_mg"] = None
        elif data.get("kind") == ProductKind.DEVICE_PACK:
            if data.get("devices_per_pack") not in (2, 3):
                self.add_error("devices_per_pack", "Spravato packs hold 2 or 3 devices.")
            if not data.get("device_strength_mg") or data["device_strength_mg"] <= 0:
                self.add_error("device_strength_mg", "Give the mg per device.")
            data["concentration_mg_per_ml"] = data["volume_ml"] = None
        return data


class ReceiveForm(forms.Form):
    registration = forms.ModelChoiceField(queryset=Registration.objects.none())
    product = forms.ModelChoiceField(queryset=Product.objects.none())
    location = forms.ModelChoiceField(label="Storage location", queryset=StorageLocation.objects.none())
    supplier = forms.CharField(max_length=200)
    supplier_dea_number = forms.CharField(label="Supplier DEA number", max_length=9)
    invoice_number = forms.CharField(max_length=60)
    invoice_date = forms.DateField(widget=DATE)
    received_on = forms.DateField(label="Date actually received", widget=DATE)
    lot = forms.CharField(max_length=60)
    expiry = forms.DateField(widget=DATE)
    containers = forms.IntegerField(label="Number of containers", min_value=1, max_value=200)

    def __init__(self, clinic: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["registration"].queryset = Registration.objects.filter(clinic=clinic)  # type: ignore[attr-defined]
        self.fields["product"].queryset = Product.objects.filter(clinic=clinic)  # type: ignore[attr-defined]
        self.fields["location"].queryset = StorageLocation.objects.filter(registration__clinic=clinic)  # type: ignore[attr-defined]

    def clean_supplier_dea_number(self) -> str:
        return _dea(self.cleaned_data["supplier_dea_number"])

    def clean_received_on(self) -> Any:
        value = self.cleaned_data["received_on"]
        if value > clock.today():
            raise ValidationError("The date received cannot be in the future.")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        reg, loc = data.get("registration"), data.get("location")
        if reg and loc and loc.registration_id != reg.pk:
            self.add_error("location", "Choose a storage location of this registration.")
        if (
            data.get("invoice_date")
            and data.get("received_on")
            and data["invoice_date"] > data["received_on"]
        ):
            self.add_error("invoice_date", "The invoice date cannot be after the date received.")
        return data


ENTRY_KINDS = [
    ("administration", "Administered"),
    ("waste", "Wasted (witnessed)"),
    ("overfill", "Overfill adjustment: more than the label (two people)"),
    ("underfill", "Underfill adjustment: container empty (two people)"),
    ("reversal", "Reverse an earlier line (prescriber)"),
]


class EntryForm(forms.Form):
    kind = forms.ChoiceField(label="Entry", choices=ENTRY_KINDS)
    amount = forms.DecimalField(required=False, max_digits=12, decimal_places=4)
    unit = forms.ChoiceField(choices=[("mg", "mg"), ("mL", "mL"), ("devices", "devices")])
    patient_mrn = forms.CharField(label="Patient record number", required=False, max_length=20)
    route = forms.CharField(required=False, max_length=8)
    reverses_seq = forms.IntegerField(label="Line to reverse", required=False, min_value=1)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, clinic: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # waste and adjustments: the witness signs in here (issue 14)
        add_witness_fields(self, label="Witness (waste, adjustments)")

    def clean_amount(self) -> Decimal | None:
        value: Decimal | None = self.cleaned_data.get("amount")
        if value is not None and value <= 0:
            raise ValidationError("The amount must be above zero.")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind")
        if kind != "reversal" and data.get("amount") is None and "amount" not in self.errors:
            self.add_error("amount", "Enter the amount.")
        if kind == "reversal" and not data.get("reverses_seq"):
            self.add_error("reverses_seq", "Choose the line to reverse.")
        return data


class CountForm(forms.Form):
    kind = forms.ChoiceField(choices=CountKind.choices, initial=CountKind.ON_DEMAND)
    timing = forms.ChoiceField(label="Taken at", choices=CountTiming.choices, widget=forms.RadioSelect)
    taken_at = forms.DateTimeField(label="Date and time", widget=DATETIME)

    def __init__(self, clinic: Any, containers: list[Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.containers = containers
        for c in containers:
            self.fields[f"counted_{c.pk}"] = forms.DecimalField(
                label=f"{c.identifier} counted ({c.product.unit})",
                min_value=Decimal(0),
                max_digits=12,
                decimal_places=4,
            )
            self.fields[f"estimated_{c.pk}"] = forms.BooleanField(
                label=f"{c.identifier}: opened container, estimated", required=False
            )
        add_witness_fields(self)  # the witness signs in here, after the counts (issue 14)

    def clean_taken_at(self) -> Any:
        value = self.cleaned_data["taken_at"]
        if value > clock.now():
            raise ValidationError("A count cannot be dated in the future.")
        return value

    def rows(self) -> list[tuple[Any, Any, Any]]:
        return [(c, self[f"counted_{c.pk}"], self[f"estimated_{c.pk}"]) for c in self.containers]


class ResolveForm(forms.Form):
    explanation = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="Written explanation")


class LossForm(forms.Form):
    registration = forms.ModelChoiceField(queryset=Registration.objects.none())
    discovered_at = forms.DateTimeField(label="Discovered at", widget=DATETIME)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="What was lost or stolen")

    def __init__(self, clinic: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["registration"].queryset = Registration.objects.filter(clinic=clinic)  # type: ignore[attr-defined]

    def clean_discovered_at(self) -> Any:
        value = self.cleaned_data["discovered_at"]
        if value > clock.now():
            raise ValidationError("The discovery cannot be in the future.")
        return value


class DestroyForm(forms.Form):
    method = forms.ChoiceField(choices=DestructionMethod.choices, widget=forms.RadioSelect)
    place = forms.CharField(max_length=200)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
    reverse_distributor = forms.CharField(required=False, max_length=200)
    reverse_distributor_dea_number = forms.CharField(
        required=False, max_length=9, label="Reverse distributor DEA number"
    )

    def __init__(self, clinic: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        add_witness_fields(self, "witness_1", "First witness")
        add_witness_fields(self, "witness_2", "Second witness")


class ReportForm(forms.Form):
    registration = forms.ModelChoiceField(queryset=Registration.objects.none(), to_field_name="dea_number")
    start = forms.DateField(label="From", widget=DATE)
    end = forms.DateField(label="To", widget=DATE)

    def __init__(self, clinic: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["registration"].queryset = Registration.objects.filter(clinic=clinic)  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            self.add_error("end", "The end date cannot be before the start date.")
        return data


class SettingsForm(forms.Form):
    roles = forms.MultipleChoiceField(
        label="Roles that may receive, adjust and destroy stock",
        choices=[(Role.PRESCRIBER, "Prescriber"), (Role.NURSE, "Nurse"), (Role.ADMIN, "Admin")],
        widget=forms.CheckboxSelectMultiple,
    )
    estimate_tolerance_mg = forms.DecimalField(
        label="Estimated counts of opened vials may differ from the ledger by up to (mg)",
        min_value=Decimal(0),
        max_digits=9,
        decimal_places=3,
        help_text="0 means any difference opens a discrepancy. No sourced value exists; the clinic decides.",
    )


class HolidayForm(KapForm):
    """A clinic holiday: business-day deadlines skip it (docs/controlled-substances.md §6)."""

    day = forms.DateField(label="Date", widget=DATE)
    name = forms.CharField(label="Holiday", max_length=120)
