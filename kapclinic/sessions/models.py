"""Dosing sessions: state, safety gate, administration, monitoring observations, alerts, discharge.

Clinical numbers live in typed columns (DESIGN.md). The rules themselves are pure functions in
kapclinic/clinical/{session_state,dosing,vitals}.py; this module only stores what happened.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models

from kapclinic.clinical.session_state import SL_OUTCOMES, STATE_LABELS, State
from kapclinic.core import clock
from kapclinic.core.concurrency import VersionedModel

USER = settings.AUTH_USER_MODEL


class SessionState(models.TextChoices):
    SCHEDULED = State.SCHEDULED.value, STATE_LABELS[State.SCHEDULED]
    CHECKED_IN = State.CHECKED_IN.value, STATE_LABELS[State.CHECKED_IN]
    PREDOSE_PASSED = State.PREDOSE_PASSED.value, STATE_LABELS[State.PREDOSE_PASSED]
    DOSING = State.DOSING.value, STATE_LABELS[State.DOSING]
    MONITORING = State.MONITORING.value, STATE_LABELS[State.MONITORING]
    RECOVERY = State.RECOVERY.value, STATE_LABELS[State.RECOVERY]
    DISCHARGED = State.DISCHARGED.value, STATE_LABELS[State.DISCHARGED]
    ABORTED = State.ABORTED.value, STATE_LABELS[State.ABORTED]


class PregnancyStatus(models.TextChoices):
    NOT_RECORDED = "", "Not recorded"
    NOT_APPLICABLE = "not_applicable", "Not applicable"
    NOT_PREGNANT = "not_pregnant", "Not pregnant (confirmed)"
    PREGNANT = "pregnant", "Pregnant"
    BREASTFEEDING = "breastfeeding", "Breastfeeding"
    UNKNOWN = "unknown", "Unknown"


class NasalSteroid(models.TextChoices):
    NOT_RECORDED = "", "Not recorded"
    NONE = "none", "None taken today"
    OVER_1H = "over_1h", "Taken at least 1 hour before dosing"
    WITHIN_1H = "within_1h", "Taken less than 1 hour before dosing"


class DosingSession(VersionedModel):
    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="dosing_sessions")
    protocol_id = models.CharField(max_length=60)
    protocol_version = models.CharField(max_length=20)
    scheduled_for = models.DateTimeField()
    #: The dosing appointment this session was started from (chair board / schedule); null for a session
    #: created without one. At most one session per appointment that is not aborted.
    appointment = models.ForeignKey(
        "scheduling.Appointment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="dosing_sessions",
    )
    state = models.CharField(max_length=20, choices=SessionState.choices, default=SessionState.SCHEDULED)
    created_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)

    # pre-dose checks (ref §6.1)
    weight_kg = models.DecimalField(max_digits=5, decimal_places=1, null=True, blank=True)
    height_cm = models.DecimalField(max_digits=5, decimal_places=1, null=True, blank=True)
    ideal_body_weight_kg = models.DecimalField(max_digits=5, decimal_places=1, null=True, blank=True)
    last_food_at = models.DateTimeField(null=True, blank=True)
    last_liquid_at = models.DateTimeField(null=True, blank=True)
    escort_name = models.CharField(max_length=120, blank=True)
    escort_phone = models.CharField(max_length=40, blank=True)
    medication_changes_reviewed = models.BooleanField(default=False)
    flagged_medication_classes = models.JSONField(default=list, blank=True)
    pregnancy_status = models.CharField(
        max_length=20, choices=PregnancyStatus.choices, blank=True, default=""
    )
    intention = models.TextField(blank=True)
    #: Set when the gate passes: whether a PHQ-9 from the measures app counted for this session, and which.
    phq9_done = models.BooleanField(default=False)
    phq9_response = models.ForeignKey(
        "measures.InstrumentResponse", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    phq9_waiver_reason = models.CharField(max_length=300, blank=True)
    rems_enrolled = models.BooleanField(default=False)
    nasal_steroid = models.CharField(max_length=12, choices=NasalSteroid.choices, blank=True, default="")
    gate_snapshot = models.JSONField(default=list, blank=True)  # items as evaluated when passed

    # timestamps of the state machine (also in SessionTransition)
    checked_in_at = models.DateTimeField(null=True, blank=True)
    predose_passed_at = models.DateTimeField(null=True, blank=True)
    first_dose_at = models.DateTimeField(null=True, blank=True)
    monitoring_started_at = models.DateTimeField(null=True, blank=True)
    recovery_started_at = models.DateTimeField(null=True, blank=True)
    discharged_at = models.DateTimeField(null=True, blank=True)
    aborted_at = models.DateTimeField(null=True, blank=True)
    abort_reason = models.TextField(blank=True)

    # discharge (ref §2.7, §6.1)
    escort_present = models.BooleanField(default=False)
    no_driving_advice_given = models.BooleanField(default=False)
    ready_to_leave_minutes = models.PositiveIntegerField(null=True, blank=True)
    discharge_note = models.TextField(blank=True)
    discharged_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    # REMS patient monitoring form (ref §2.1)
    rems_submitted_at = models.DateTimeField(null=True, blank=True)
    rems_submitted_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering: ClassVar = ["-scheduled_for", "-id"]
        indexes: ClassVar = [
            models.Index(fields=["clinic", "scheduled_for"], name="dosing_clinic_when"),
            models.Index(fields=["patient", "-scheduled_for"], name="dosing_patient_recent"),
        ]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["appointment"],
                condition=models.Q(appointment__isnull=False) & ~models.Q(state="aborted"),
                name="one_live_session_per_appointment",
                violation_error_message="This appointment already has a dosing session.",
            )
        ]

    def __str__(self) -> str:
        return f"Dosing session {self.pk}"

    @property
    def protocol_key(self) -> str:
        return f"{self.protocol_id}@{self.protocol_version}"


class SessionTransition(models.Model):
    session = models.ForeignKey(DosingSession, on_delete=models.PROTECT, related_name="transitions")
    event = models.CharField(max_length=30)
    from_state = models.CharField(max_length=20)
    to_state = models.CharField(max_length=20)
    at = models.DateTimeField()
    by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField(blank=True)

    class Meta:
        ordering: ClassVar = ["at", "id"]


class GateOverride(models.Model):
    session = models.ForeignKey(DosingSession, on_delete=models.PROTECT, related_name="gate_overrides")
    item = models.CharField(max_length=40)
    detail = models.TextField()  # what failed, as shown when overridden
    reason = models.TextField()
    by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()

    class Meta:
        ordering: ClassVar = ["at", "id"]


class Administration(models.Model):
    """The dose ordered (prescriber), double-checked (IV/IM) and given (with lot and expiry)."""

    session = models.OneToOneField(DosingSession, on_delete=models.PROTECT, related_name="administration")
    product = models.CharField(max_length=120)
    route = models.CharField(max_length=4)
    dose_mg = models.DecimalField(max_digits=7, decimal_places=2)
    mg_per_kg = models.DecimalField(max_digits=6, decimal_places=3, null=True, blank=True)
    weight_basis = models.CharField(max_length=10, blank=True)
    weight_used_kg = models.DecimalField(max_digits=5, decimal_places=1, null=True, blank=True)
    maximum_mg = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)
    above_maximum = models.BooleanField(default=False)
    override_reason = models.TextField(blank=True)
    concentration_mg_per_ml = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)
    volume_ml = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)
    diluent_ml = models.DecimalField(max_digits=7, decimal_places=1, null=True, blank=True)
    infusion_minutes = models.PositiveIntegerField(null=True, blank=True)
    rate_ml_per_h = models.DecimalField(max_digits=7, decimal_places=1, null=True, blank=True)
    devices = models.PositiveSmallIntegerField(null=True, blank=True)
    units_description = models.CharField(max_length=200, blank=True)  # lozenges / devices
    calculation = models.JSONField(default=list)  # displayed working [{label, working}]
    warnings = models.JSONField(default=list, blank=True)
    ordered_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    ordered_at = models.DateTimeField()
    double_checked_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    double_checked_at = models.DateTimeField(null=True, blank=True)
    lot_number = models.CharField(max_length=60, blank=True)
    expiry_date = models.DateField(null=True, blank=True)
    administered_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    #: When "Start dosing now" was pressed: the first-dose time (the monitoring clock's zero), which is
    #: also the first esketamine device, the start of an IV infusion and the time of an IM injection.
    administered_at = models.DateTimeField(null=True, blank=True)

    # What was actually given, per route (ref §6.1 "Drug administration"). Esketamine devices are
    # DeviceUse rows. IV: when the infusion stopped and the pump rate if it was changed from the order.
    infusion_stopped_at = models.DateTimeField(null=True, blank=True)
    actual_rate_ml_per_h = models.DecimalField(max_digits=7, decimal_places=1, null=True, blank=True)
    # SL: how long the lozenge was held and whether the rest was spat out or swallowed.
    hold_minutes = models.PositiveIntegerField(null=True, blank=True)
    sl_outcome = models.CharField(max_length=10, blank=True, choices=list(SL_OUTCOMES.items()))
    #: Who recorded the IV stop or the SL hold, and when.
    route_recorded_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    route_recorded_at = models.DateTimeField(null=True, blank=True)
    #: Esketamine: the written reason when dosing was completed with fewer devices than ordered.
    partial_dose_reason = models.TextField(blank=True)

    # Limits (docs/clinical-reference-dosing.md §2). The hard ceiling in force when ordered (no override
    # passes it); an order above the protocol maximum carries ``override_reason`` and needs a second
    # prescriber's co-signature before dosing can start; an order below the minimum carries its reason.
    ceiling_mg = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)
    minimum_mg = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)
    below_minimum = models.BooleanField(default=False)
    low_dose_reason = models.TextField(blank=True)
    cosigned_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    cosigned_at = models.DateTimeField(null=True, blank=True)
    #: IV: the written reason when the infusion stopped before the ordered infusion time.
    infusion_stop_reason = models.TextField(blank=True)
    #: IV: what the infusion actually delivered when it was less than the dose (stopped early), as the
    #: nurse entered it (in mg, or mL of the infusion converted at the bag's concentration); None when
    #: the whole dose was infused. The ledger's administration lines follow it (issue 14).
    infused_mg = models.DecimalField(max_digits=9, decimal_places=4, null=True, blank=True)

    class Meta:
        indexes: ClassVar = [
            # The bell's "dose orders waiting" (notifications.sources.dose_orders): only the few orders not
            # yet given, newest first, instead of a probe per dosing session of the clinic.
            models.Index(
                fields=["-ordered_at"], condition=models.Q(administered_at__isnull=True), name="dose_waiting"
            ),
        ]

    @property
    def cosign_required(self) -> bool:
        return self.above_maximum

    @property
    def awaiting_cosign(self) -> bool:
        return self.above_maximum and self.cosigned_by_id is None


class SupersededDoseOrder(models.Model):
    """An earlier dose order replaced by a new one before dosing started: what it said (the order's
    fields as ordered), who ordered it, and who replaced it, when and why. Nothing of it is lost."""

    session = models.ForeignKey(DosingSession, on_delete=models.PROTECT, related_name="superseded_orders")
    order = models.JSONField()  # {"dose_mg": "56", "units_description": ..., "override_reason": ...}
    ordered_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    ordered_at = models.DateTimeField()
    double_checked_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    cosigned_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    superseded_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    superseded_at = models.DateTimeField()
    reason = models.TextField()

    class Meta:
        ordering: ClassVar = ["superseded_at", "id"]


class DeviceUse(models.Model):
    """One esketamine nasal device used by the patient under observation: 28 mg as two sprays, one per
    nostril, 5 minutes after the previous device ([S7] ref §1.3). Number 1 is recorded by "Start dosing
    now" at the first-dose time; the nurse records the others as they are used."""

    administration = models.ForeignKey(Administration, on_delete=models.PROTECT, related_name="device_uses")
    number = models.PositiveSmallIntegerField()
    at = models.DateTimeField()
    recorded_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField()

    class Meta:
        ordering: ClassVar = ["number"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["administration", "number"], name="one_use_per_device_number")
        ]

    def __str__(self) -> str:
        return f"Device {self.number}"


class ObservationKind(models.TextChoices):
    VITAL = "vital", "Vital sign"
    SEDATION = "sedation", "Sedation (MOAA/S)"
    DISSOCIATION = "dissociation", "Dissociation (clinician rating 0-4)"


class Observation(models.Model):
    """One coded value: LOINC for vitals [S65] ref §5.1; local codes for the sedation/dissociation ratings."""

    session = models.ForeignKey(DosingSession, on_delete=models.PROTECT, related_name="observations")
    kind = models.CharField(max_length=12, choices=ObservationKind.choices)
    code_system = models.CharField(max_length=60, default="http://loinc.org")
    code = models.CharField(max_length=40)
    display = models.CharField(max_length=80)
    value = models.IntegerField()
    unit = models.CharField(max_length=12, blank=True)
    at = models.DateTimeField()
    reading = models.PositiveIntegerField(default=0)  # groups vitals entered together
    phase = models.CharField(max_length=10, default="intra")  # pre_dose | intra | recovery
    recorded_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering: ClassVar = ["at", "id"]
        indexes: ClassVar = [models.Index(fields=["session", "kind", "at"], name="obs_session_kind_at")]


class EventKind(models.TextChoices):
    SIDE_EFFECT = "side_effect", "Side effect"
    INTERVENTION = "intervention", "Intervention"
    NOTE = "note", "Observation"
    DEVICE = "device", "Device / dose given"


SIDE_EFFECTS = [
    ("nausea", "Nausea"),
    ("vomiting", "Vomiting"),
    ("dizziness", "Dizziness"),
    ("headache", "Headache"),
    ("anxiety", "Anxiety or distress"),
    ("raised_bp", "Raised blood pressure"),
    ("other", "Other"),
]
INTERVENTIONS = [
    ("reassurance", "Reassurance"),
    ("antiemetic", "Antiemetic given"),
    ("antihypertensive", "Antihypertensive given"),
    ("oxygen", "Oxygen"),
    ("other", "Other"),
]


class SessionEvent(models.Model):
    session = models.ForeignKey(DosingSession, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=14, choices=EventKind.choices)
    code = models.CharField(max_length=30, blank=True)
    text = models.TextField(blank=True)
    at = models.DateTimeField()
    recorded_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering: ClassVar = ["at", "id"]


class SessionAlert(models.Model):
    """An alert stays open until someone acknowledges it with the action taken."""

    session = models.ForeignKey(DosingSession, on_delete=models.PROTECT, related_name="alerts")
    rule = models.CharField(max_length=40)
    vital = models.CharField(max_length=12)
    value = models.IntegerField()
    threshold = models.IntegerField()
    severity = models.CharField(max_length=10)
    message = models.CharField(max_length=300)
    source = models.CharField(max_length=120)
    raised_at = models.DateTimeField()
    acknowledged_by = models.ForeignKey(
        USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    action_taken = models.TextField(blank=True)

    class Meta:
        ordering: ClassVar = ["raised_at", "id"]


class AESeverity(models.TextChoices):
    MILD = "mild", "Mild"
    MODERATE = "moderate", "Moderate"
    SEVERE = "severe", "Severe"
    LIFE_THREATENING = "life_threatening", "Life-threatening"


class AEOutcome(models.TextChoices):
    RESOLVED = "resolved", "Resolved"
    RESOLVING = "resolving", "Resolving"
    ONGOING = "ongoing", "Ongoing"
    TRANSFERRED = "transferred", "Transferred to emergency care"


class AdverseEvent(models.Model):
    session = models.ForeignKey(DosingSession, on_delete=models.PROTECT, related_name="adverse_events")
    description = models.CharField(max_length=300)
    onset_at = models.DateTimeField()
    severity = models.CharField(max_length=20, choices=AESeverity.choices)
    action_taken = models.TextField()
    outcome = models.CharField(max_length=20, choices=AEOutcome.choices)
    recorded_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField()

    class Meta:
        ordering: ClassVar = ["onset_at", "id"]


# Therapist process notes written during a session are psychotherapy process notes of the notes app
# (kapclinic.notes.models.ProcessNote, encrypted at rest, linked by ``dosing_session``): they are kept
# apart from the monitoring record (ref §6.1) and readable only by their author and colleagues the
# author shares them with. Migration 0004 moved the earlier plaintext rows there; 0005 dropped the table.


class ClinicProtocolSetting(models.Model):
    """A clinic's value for a protocol field the reference leaves open (e.g. IV minimum observation)."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    protocol_id = models.CharField(max_length=60)
    key = models.CharField(max_length=60)  # e.g. "observation.minimum_minutes", "thresholds.hr_above"
    value = models.CharField(max_length=30)
    set_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    set_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["clinic", "protocol_id", "key"], name="clinic_protocol_setting_unique"
            )
        ]


class ClinicSettingChange(models.Model):
    """Every change made on the clinic-settings page: what, from what to what, who, when and why.

    ``area`` is "protocol" (a ClinicProtocolSetting of ``protocol_id``) or "measures" (MeasureSettings).
    An empty ``old_value`` / ``new_value`` means the cited default applied before / applies again."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    area = models.CharField(max_length=12)
    protocol_id = models.CharField(max_length=60, blank=True)
    key = models.CharField(max_length=60)
    old_value = models.TextField(blank=True)
    new_value = models.TextField(blank=True)
    reason = models.TextField()
    by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()

    class Meta:
        ordering: ClassVar = ["-at", "-id"]
        indexes: ClassVar = [models.Index(fields=["clinic", "area", "-at"], name="setting_change_recent")]
