"""Forms of the dosing-session pages, one per step (gate, dose order, start, devices, infusion stop,
vitals, discharge, settings).

Over 600 lines: about thirty small forms, each validating one step's input; read form by form.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from django import forms

from kapclinic.accounts.models import Role
from kapclinic.clinical.protocols import protocol_choices
from kapclinic.clinical.session_state import MEDICATION_CLASS_LABELS, SL_OUTCOMES
from kapclinic.clinical.vitals import DISSOCIATION_ANCHORS, MOAAS_LEVELS
from kapclinic.core import dates
from kapclinic.core.forms import KapForm, choice_field
from kapclinic.sessions.models import (
    INTERVENTIONS,
    SIDE_EFFECTS,
    AEOutcome,
    AESeverity,
    NasalSteroid,
    PregnancyStatus,
)

DT_FORMAT = "%Y-%m-%dT%H:%M"


def dt_field(label: str, required: bool = False, help_text: str = "") -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        required=required,
        help_text=help_text,
        input_formats=[DT_FORMAT, "%Y-%m-%d %H:%M"],
        validators=[dates.scheduled_validator(label)],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DT_FORMAT),
    )


class VersionForm(KapForm):
    version = forms.IntegerField(widget=forms.HiddenInput)


class NewSessionForm(KapForm):
    protocol = forms.ChoiceField(label="Protocol", choices=())
    scheduled_for = dt_field("Scheduled for", required=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choice_field(self, "protocol").choices = protocol_choices()


# Entry-error bounds for weight (engineering, not clinical; the clinic may change them).
WEIGHT_BOUNDS = (Decimal(20), Decimal(350))


class GateForm(VersionForm):
    weight_kg = forms.DecimalField(label="Weight today (kg)", max_digits=5, decimal_places=1, required=False)
    height_cm = forms.DecimalField(label="Height (cm)", max_digits=5, decimal_places=1, required=False)
    ideal_body_weight_kg = forms.DecimalField(
        label="Ideal body weight (kg), if the protocol doses on it",
        max_digits=5,
        decimal_places=1,
        required=False,
        help_text="The clinical reference gives no IBW formula; enter the value the prescriber calculated.",
    )
    last_food_at = dt_field("Last food")
    last_liquid_at = dt_field("Last liquids")
    escort_name = forms.CharField(label="Escort / driver home", max_length=120, required=False)
    escort_phone = forms.CharField(
        label="Escort phone",
        max_length=40,
        required=False,
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
    )
    medication_changes_reviewed = forms.BooleanField(
        label="Medication changes since the last session reviewed", required=False
    )
    flagged_medication_classes = forms.MultipleChoiceField(
        label="Current or new medicines in these classes",
        choices=list(MEDICATION_CLASS_LABELS.items()),
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    pregnancy_status = forms.ChoiceField(
        label="Pregnancy status", choices=PregnancyStatus.choices, required=False
    )
    intention = forms.CharField(
        label="Intention for the session", widget=forms.Textarea(attrs={"rows": 2}), required=False
    )
    phq9_waiver_reason = forms.CharField(
        label="PHQ-9 waived because",
        max_length=300,
        required=False,
        help_text="Only when no PHQ-9 can be completed for this session; a waiver never covers an open "
        "item 9 safety alert.",
    )
    rems_enrolled = forms.BooleanField(label="Patient enrolled in the Spravato REMS", required=False)
    nasal_steroid = forms.ChoiceField(
        label="Nasal corticosteroid / decongestant today", choices=NasalSteroid.choices, required=False
    )

    def __init__(self, *args: Any, protocol: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if protocol is not None:
            items = set(protocol.gate_items)
            if "rems_enrolled" not in items:
                del self.fields["rems_enrolled"]
            if "nasal_steroid_timing" not in items:
                del self.fields["nasal_steroid"]
            if protocol.dose.basis != "mg_per_kg":
                del self.fields["ideal_body_weight_kg"]

    def clean_weight_kg(self) -> Decimal | None:
        w: Decimal | None = self.cleaned_data.get("weight_kg")
        lo, hi = WEIGHT_BOUNDS
        if w is not None and not lo <= w <= hi:
            raise forms.ValidationError(
                f"Weight of {w} kg is outside the plausible range {lo}–{hi} kg; re-enter it."
            )
        return w

    def clean_height_cm(self) -> Decimal | None:
        h: Decimal | None = self.cleaned_data.get("height_cm")
        if h is not None and not Decimal(100) <= h <= Decimal(250):
            raise forms.ValidationError(
                f"Height of {h} cm is outside the plausible range 100–250 cm; re-enter it."
            )
        return h


class VitalsForm(KapForm):
    sbp = forms.IntegerField(label="Systolic BP (mmHg)", required=False)
    dbp = forms.IntegerField(label="Diastolic BP (mmHg)", required=False)
    hr = forms.IntegerField(label="Heart rate (/min)", required=False)
    rr = forms.IntegerField(label="Respiratory rate (/min)", required=False)
    spo2 = forms.IntegerField(label="SpO2 (%)", required=False)


class SedationForm(KapForm):
    value = forms.TypedChoiceField(
        label="Sedation (MOAA/S)",
        coerce=int,
        choices=[(k, f"{k} – {v}") for k, v in MOAAS_LEVELS.items()],
        widget=forms.RadioSelect,
    )


class DissociationForm(KapForm):
    value = forms.TypedChoiceField(
        label="Dissociation (clinician rating)",
        coerce=int,
        choices=[(k, f"{k} – {v}") for k, v in DISSOCIATION_ANCHORS.items()],
        widget=forms.RadioSelect,
    )


class SideEffectForm(KapForm):
    code = forms.ChoiceField(label="Side effect", choices=SIDE_EFFECTS)
    text = forms.CharField(label="Details", max_length=500, required=False)


class InterventionForm(KapForm):
    code = forms.ChoiceField(label="Intervention", choices=INTERVENTIONS)
    text = forms.CharField(label="Details (drug, dose, route)", max_length=500, required=False)


class NoteForm(KapForm):
    text = forms.CharField(label="Observation", widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)


class MissedCheckForm(KapForm):
    """Why a scheduled vitals check was not done (the check is named by its minutes after the dose)."""

    offset = forms.IntegerField(widget=forms.HiddenInput, min_value=0)
    text = forms.CharField(
        label="Why was this check missed?",
        max_length=500,
        error_messages={"required": "Why was this check missed? Write the reason before saving."},
    )


class AckForm(KapForm):
    alert_id: int | None = None  # the alert the form was posted for; the page shows its errors there
    action = forms.CharField(
        label="Action taken",
        max_length=500,
        error_messages={"required": "Action taken: write what you did about this alert first."},
    )


class OverrideForm(KapForm):
    item = forms.CharField(widget=forms.HiddenInput)
    reason = forms.CharField(
        label="Override reason",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=1000,
        error_messages={"required": "Override reason: write why this check may be overridden here."},
    )


class DoseForm(VersionForm):
    mg_per_kg = forms.DecimalField(
        label="Dose (mg/kg)", max_digits=6, decimal_places=3, required=False, min_value=0
    )
    fixed_mg = forms.DecimalField(
        label="Dose (mg)", max_digits=7, decimal_places=2, required=False, min_value=0
    )
    concentration = forms.DecimalField(
        label="Vial concentration (mg/mL)",
        max_digits=7,
        decimal_places=2,
        required=False,
        min_value=Decimal("0.01"),
    )
    diluent_ml = forms.DecimalField(
        label="Diluent volume (mL)", max_digits=7, decimal_places=1, required=False, min_value=0
    )
    infusion_minutes = forms.IntegerField(label="Infusion time (min)", required=False, min_value=1)
    override_reason = forms.CharField(
        label="Override reason (only to order above the protocol maximum: a second prescriber must then "
        "co-sign; nothing passes the hard ceiling)",
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=1000,
    )
    low_dose_reason = forms.CharField(
        label="Reason for a dose below the protocol minimum (only then)",
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=1000,
    )
    reorder_reason = forms.CharField(
        label="Why the earlier order is replaced (it stays in the record as superseded)",
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=1000,
    )

    def __init__(self, *args: Any, protocol: Any = None, reordering: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not reordering:
            del self.fields["reorder_reason"]
        if protocol is None:
            return
        if protocol.dose.basis == "mg_per_kg":
            del self.fields["fixed_mg"]
            default = protocol.dose.default_mg_per_kg.value
            if default is not None:
                self.fields["mg_per_kg"].initial = default.value
        else:
            del self.fields["mg_per_kg"]
            default = protocol.dose.default_mg.value
            if default is not None:
                self.fields["fixed_mg"].initial = default.value
        if protocol.dose.form not in ("vial_iv", "vial_im"):
            del self.fields["concentration"]
        if protocol.dose.form != "vial_iv":
            del self.fields["diluent_ml"]
            del self.fields["infusion_minutes"]
        elif protocol.dose.infusion_minutes.value is not None:
            self.fields["infusion_minutes"].initial = int(protocol.dose.infusion_minutes.value.value)


class StartDosingForm(VersionForm):
    lot_number = forms.CharField(label="Lot number", max_length=60, required=False)
    expiry_date = forms.DateField(
        label="Expiry date", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )


class StockStartDosingForm(VersionForm):
    """Start dosing from stock (issue 14): the container chosen (lot and expiry shown) and, for a vial,
    the amount drawn (the dose by default; what is drawn beyond it is wasted with a witness). When the
    container holds less than the dose, a second container of the same strength: a vial's amount drawn
    from each is entered (the second's is the rest of the dose by default); an esketamine dose uses the
    first pack's devices first, the rest from the second."""

    container = forms.TypedChoiceField(label="Container the dose is drawn from", coerce=int, choices=())
    drawn_mg = forms.DecimalField(
        label="Amount drawn up (mg), including what stays in the syringe",
        required=False,
        min_value=Decimal("0.01"),
        max_digits=9,
        decimal_places=2,
    )
    second_container = forms.TypedChoiceField(
        label="Second container, only when the first holds less than the dose",
        coerce=int,
        choices=(),
        required=False,
        empty_value=None,
    )
    second_drawn_mg = forms.DecimalField(
        label="Amount drawn up from the second container (mg)",
        required=False,
        min_value=Decimal("0.01"),
        max_digits=9,
        decimal_places=2,
        help_text="Blank: the rest of the dose. With a second container, the amount above is what was "
        "drawn from the first.",
    )

    def __init__(self, *args: Any, containers: Any = (), vial: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = [
            (
                c.pk,
                f"{c.identifier}: lot {c.lot}, expires {c.expiry:%Y-%m-%d}, "
                f"{getattr(c, 'available', c.balance).normalize():f} {c.product.unit} left"
                + (f", {c.product.concentration_mg_per_ml.normalize():f} mg/mL" if vial else "")
                + f" ({c.product.name})",
            )
            for c in containers
        ]
        choice_field(self, "container").choices = [("", "Choose a container"), *options]
        choice_field(self, "second_container").choices = [("", "None: the first holds the dose"), *options]
        if not vial:
            del self.fields["drawn_mg"]
            del self.fields["second_drawn_mg"]
            self.fields["second_container"].label = (
                "Second pack, only when the first holds fewer devices than the dose "
                "(its devices are used first)"
            )


class SessionWasteForm(KapForm):
    """What was drawn but not given, wasted in front of a witness who signs in here (issue 14)."""

    draw = forms.IntegerField(widget=forms.HiddenInput)
    amount_mg = forms.DecimalField(
        label="Amount wasted (mg)", min_value=Decimal("0.0001"), max_digits=12, decimal_places=4
    )
    reason = forms.CharField(label="What was wasted", required=False, max_length=200)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from kapclinic.inventory.witness import add_witness_fields

        super().__init__(*args, **kwargs)
        add_witness_fields(self)


class UnusedDevicesForm(KapForm):
    """Esketamine devices taken out and not used (a partial dose): returned to stock or disposed of,
    with a witness who signs in here (issue 14)."""

    draw = forms.IntegerField(widget=forms.HiddenInput)
    how = forms.ChoiceField(label="What happened to them", widget=forms.RadioSelect, choices=())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from kapclinic.inventory.services import UNUSED_DEVICE_CHOICES
        from kapclinic.inventory.witness import add_witness_fields

        super().__init__(*args, **kwargs)
        choice_field(self, "how").choices = list(UNUSED_DEVICE_CHOICES)
        add_witness_fields(self)


class DeviceDisposalForm(KapForm):
    """The used esketamine devices went to medical waste, with a witness who signs in here."""

    draw = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from kapclinic.inventory.witness import add_witness_fields

        super().__init__(*args, **kwargs)
        add_witness_fields(self)


class DischargeForm(VersionForm):
    escort_present = forms.BooleanField(
        label="Named escort is present to take the patient home", required=False
    )
    no_driving = forms.BooleanField(
        label="Advised: no driving or operating machinery until the next day after restful sleep",
        required=False,
    )
    ready_to_leave_minutes = forms.IntegerField(
        label="Minutes after the start of dosing at which the patient would have been ready to leave "
        "(REMS evaluation question)",
        required=False,
        min_value=0,
        max_value=1440,
    )
    note = forms.CharField(label="Discharge note", widget=forms.Textarea(attrs={"rows": 2}), required=False)
    signed = forms.BooleanField(
        label="I assessed the patient as clinically stable and sign this discharge", required=False
    )

    def __init__(self, *args: Any, protocol: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if protocol is not None and not protocol.rems_monitoring_form:
            # The REMS evaluation question belongs to the esketamine REMS monitoring form only.
            del self.fields["ready_to_leave_minutes"]


class AbortForm(VersionForm):
    reason = forms.CharField(
        label="Reason for aborting", widget=forms.Textarea(attrs={"rows": 2}), required=False
    )

    def __init__(self, *args: Any, infusion: bool = False, **kwargs: Any) -> None:
        """``infusion``: an IV infusion is running; the abort records its stop like the infusion-stop
        form (when, what it delivered, a witness), and the witness sees the rest wasted (issue 14)."""
        super().__init__(*args, **kwargs)
        if not infusion:
            return
        from kapclinic.inventory.witness import add_witness_fields
        from kapclinic.sessions.services import INFUSED_UNITS

        stop = InfusionStopForm.base_fields
        self.fields["stopped_at"] = copy.deepcopy(stop["stopped_at"])
        self.fields["infused_amount"] = copy.deepcopy(stop["infused_amount"])
        self.fields["infused_amount"].label = "Amount infused before the infusion was stopped"
        self.fields["infused_unit"] = copy.deepcopy(stop["infused_unit"])
        choice_field(self, "infused_unit").choices = list(INFUSED_UNITS)
        add_witness_fields(self, label="Witness to the amount infused and the waste of the rest")


class TransitionForm(VersionForm):
    event = forms.ChoiceField(choices=[("check_in", ""), ("start_monitoring", ""), ("start_recovery", "")])
    partial_reason = forms.CharField(
        label="Reason for a partial dose (only when fewer devices than ordered were used)",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=1000,
        required=False,
    )


# Administration times are entered to the second: the 5-minute spacing between esketamine devices is
# checked on the seconds, so a time pre-filled with "now" must not be cut to the minute.
DT_SECONDS = "%Y-%m-%dT%H:%M:%S"


def dt_seconds_field(label: str, help_text: str = "") -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        help_text=help_text,
        input_formats=[DT_SECONDS, DT_FORMAT, "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"],
        validators=[dates.scheduled_validator(label)],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}, format=DT_SECONDS),
    )


class DeviceForm(VersionForm):
    at = dt_seconds_field(
        "Device used at",
        help_text="Now, or earlier if you record it afterwards (not before check-in, never in the future).",
    )


class InfusionStopForm(VersionForm):
    stopped_at = dt_seconds_field("Infusion stopped at")
    early_stop_reason = forms.CharField(
        label="Reason, if the infusion stopped before the ordered infusion time",
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=1000,
    )
    actual_rate_ml_per_h = forms.DecimalField(
        label="Actual pump rate (mL/h), only if it was changed from the order",
        max_digits=7,
        decimal_places=1,
        required=False,
    )
    infused_amount = forms.DecimalField(
        label="Amount infused, if less than the dose (stopped early)",
        help_text="What the infusion delivered: the pump's volume infused in mL, or mg.",
        max_digits=9,
        decimal_places=2,
        required=False,
    )
    infused_unit = forms.ChoiceField(label="Amount infused in", choices=(), initial="mg", required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from kapclinic.inventory.witness import add_witness_fields
        from kapclinic.sessions.services import INFUSED_UNITS

        super().__init__(*args, **kwargs)
        choice_field(self, "infused_unit").choices = list(INFUSED_UNITS)
        # less than the dose infused from stock: the ledger's correction is witnessed (issue 14)
        add_witness_fields(self, label="Witness, when less than the dose was infused")


class LozengeForm(VersionForm):
    hold_minutes = forms.IntegerField(label="Lozenge held for (minutes)")
    outcome = forms.ChoiceField(label="Then", choices=list(SL_OUTCOMES.items()), widget=forms.RadioSelect)


class AdverseEventForm(KapForm):
    description = forms.CharField(label="Event", max_length=300)
    onset_at = dt_field("Onset", required=True)
    severity = forms.ChoiceField(label="Severity", choices=AESeverity.choices)
    action_taken = forms.CharField(label="Action taken", widget=forms.Textarea(attrs={"rows": 2}))
    outcome = forms.ChoiceField(label="Outcome", choices=AEOutcome.choices)


class ProcessNoteForm(KapForm):
    text = forms.CharField(label="Process note", widget=forms.Textarea(attrs={"rows": 3}), max_length=5000)


class ProtocolSettingsForm(KapForm):
    """One text box per clinic-settable field of a protocol; empty = the cited default applies."""

    stamp = forms.IntegerField(widget=forms.HiddenInput)
    reason = forms.CharField(
        label="Reason for the change", widget=forms.Textarea(attrs={"rows": 2}), required=False
    )

    def __init__(self, *args: Any, protocol: Any, current: dict[str, str], **kwargs: Any) -> None:
        from kapclinic.clinical.protocols import clinic_settable_fields

        super().__init__(*args, **kwargs)
        self.protocol = protocol
        self.settable = clinic_settable_fields(protocol)
        for f in self.settable:
            self.fields[f"v_{f.key}"] = forms.CharField(
                label=f"{f.label} ({f.unit})" if f.unit else f.label,
                required=False,
                max_length=30,
                initial=current.get(f.key, ""),
            )

    def clean(self) -> dict[str, Any]:
        from kapclinic.clinical.protocols import validate_clinic_value

        data = super().clean() or {}
        values: dict[str, str | None] = {}
        for f in self.settable:
            value, error = validate_clinic_value(self.protocol, f, data.get(f"v_{f.key}") or "")
            if error:
                self.add_error(f"v_{f.key}", error)
            values[f.key] = value
        data["values"] = values
        return data

    def rows(self) -> list[tuple[Any, Any]]:
        return [(f, self[f"v_{f.key}"]) for f in self.settable]


class MeasureSettingsForm(KapForm):
    version = forms.IntegerField(widget=forms.HiddenInput)
    alert_overdue_hours = forms.IntegerField(required=True)
    item9_urgent_min = forms.IntegerField(required=True)
    pcl5_probable_ptsd_min = forms.IntegerField(required=True)
    link_hours = forms.IntegerField(required=False, help_text="Empty: the deployment default applies.")
    pre_session_phq9_window = forms.ChoiceField(
        choices=[
            ("since_previous_session", "Since the previous dosing session"),
            ("same_day", "On the day of the session"),
        ]
    )
    pre_session_phq9_max_hours = forms.IntegerField(required=True)
    extra_crisis_resources = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    reason = forms.CharField(
        label="Reason for the change", widget=forms.Textarea(attrs={"rows": 2}), required=False
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from kapclinic.measures.services import SETTING_INFO

        super().__init__(*args, **kwargs)
        for name, (label, _default, _source, _bounds) in SETTING_INFO.items():
            self.fields[name].label = label

    def clean(self) -> dict[str, Any]:
        from kapclinic.measures.services import SETTING_INFO

        data = super().clean() or {}
        for name, (label, _default, _source, bounds) in SETTING_INFO.items():
            value = data.get(name)
            if bounds is not None and value is not None and not bounds[0] <= value <= bounds[1]:
                self.add_error(name, f"{label} must be between {bounds[0]} and {bounds[1]}; re-enter it.")
        return data

    def values(self) -> dict[str, Any]:
        from kapclinic.measures.services import SETTING_INFO

        return {name: self.cleaned_data.get(name) for name in SETTING_INFO}


#: The escalation time's bounds (hours): at least an hour to acknowledge, at most three days.
ALERT_ESCALATION_HOURS_BOUNDS = (1, 72)


class _PrescriberChoice(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.full_name or obj.email)


class AlertRoutingForm(forms.Form):
    """Who hears of a safety alert when the patient has no care team, and when an open alert escalates."""

    stamp = forms.IntegerField(widget=forms.HiddenInput)
    on_call_prescriber = _PrescriberChoice(
        queryset=None,
        required=False,
        label="On-call prescriber",
        empty_label="(not set: patients cannot be enrolled)",
    )
    alert_escalation_hours = forms.IntegerField(
        label="Escalate an unacknowledged safety alert after (hours)", required=True
    )
    reason = forms.CharField(
        label="Reason for the change", widget=forms.Textarea(attrs={"rows": 2}), required=False
    )

    def __init__(self, *args: Any, clinic: Any, **kwargs: Any) -> None:
        from kapclinic.accounts.models import User

        kwargs.setdefault("auto_id", "alerts_%s")  # the page's other forms also have a "reason" box
        super().__init__(*args, **kwargs)
        field = self.fields["on_call_prescriber"]
        assert isinstance(field, _PrescriberChoice)
        field.queryset = User.objects.filter(
            is_active=True,
            memberships__clinic=clinic,
            memberships__role=Role.PRESCRIBER,
            memberships__is_active=True,
        ).order_by("full_name", "id")

    def clean_alert_escalation_hours(self) -> int:
        value = int(self.cleaned_data["alert_escalation_hours"])
        low, high = ALERT_ESCALATION_HOURS_BOUNDS
        if not low <= value <= high:
            raise forms.ValidationError(
                f"The escalation time must be between {low} and {high} hours; re-enter it."
            )
        return value
