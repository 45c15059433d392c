"""Measurement-based care: responses, scores, outcomes, safety alerts, safety plans, links, schedules.

Clinical numbers live in typed columns (totals, item answers, cluster scores, outcome verdicts) so the
outcomes dashboard can aggregate them in SQL. Scoring and outcome rules come from the pure modules
kapclinic.clinical.instruments and kapclinic.clinical.outcomes; nothing is computed twice here.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models

from kapclinic.core import clock
from kapclinic.core.concurrency import VersionedModel


class InstrumentKey(models.TextChoices):
    PHQ9 = "PHQ-9", "PHQ-9 (depression)"
    GAD7 = "GAD-7", "GAD-7 (anxiety)"
    PCL5 = "PCL-5", "PCL-5 (post-traumatic stress)"


class ResponseSource(models.TextChoices):
    PORTAL = "portal", "Patient portal"
    EMAIL_LINK = "email_link", "Emailed link"
    PAPER = "paper", "Paper form entered by staff"


class MeasureSettings(models.Model):
    """Per-clinic settings (defaults cite docs/clinical-reference.md)."""

    clinic = models.OneToOneField(
        "accounts.Clinic", on_delete=models.CASCADE, related_name="measure_settings"
    )
    #: Open alerts older than this are highlighted as overdue. Default 24 h: "surfaced to a clinician
    #: the same day" (design recommendation, ref §3.9).
    alert_overdue_hours = models.PositiveSmallIntegerField(default=24)
    #: PHQ-9 item 9 at or above this is urgent (ref §3.9).
    item9_urgent_min = models.PositiveSmallIntegerField(default=2)
    #: PCL-5 probable PTSD cut-off, 31-33, default 33 [S56][S59b] ref §0, §4.3.
    pcl5_probable_ptsd_min = models.PositiveSmallIntegerField(default=33)
    #: Emailed links expire after this many hours; empty = settings.MEASURE_LINK_HOURS (72).
    link_hours = models.PositiveSmallIntegerField(null=True, blank=True)
    #: Extra crisis resources shown to patients (one per line), after the clinic's crisis line.
    extra_crisis_resources = models.TextField(blank=True)
    #: Which PHQ-9 counts as "done for this session" at the dosing gate (ref §6.1, §6.3): one completed
    #: on the session day, or since the previous dosing session (capped at ``pre_session_phq9_max_hours``).
    #: Operational settings, not clinical numbers; 48 h matches the "before dosing" due window.
    pre_session_phq9_window = models.CharField(
        max_length=30,
        choices=[
            ("since_previous_session", "Since the previous dosing session"),
            ("same_day", "On the day of the session"),
        ],
        default="since_previous_session",
    )
    pre_session_phq9_max_hours = models.PositiveSmallIntegerField(default=48)
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(null=True, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )


class OutcomeConfig(models.Model):
    """Per-clinic override of one instrument's outcome rules (ref §4.4, §4.5). Absent = cited defaults."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.CASCADE, related_name="outcome_configs")
    instrument = models.CharField(max_length=8, choices=InstrumentKey.choices)
    remission_below = models.PositiveSmallIntegerField()
    response_min_percent_drop = models.FloatField(null=True, blank=True)
    response_min_point_drop = models.PositiveSmallIntegerField(null=True, blank=True)
    rci_sd = models.FloatField()
    rci_r = models.FloatField()
    rc_min_points = models.PositiveSmallIntegerField(null=True, blank=True)
    relapse_consecutive = models.PositiveSmallIntegerField(default=1)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["clinic", "instrument"], name="outcome_config_unique")
        ]


class Episode(models.Model):
    """An episode of care for one instrument: its first response is the baseline (ref §4.4).

    Summary columns are recomputed from the pure trajectory on every new response so cohort
    analytics are plain SQL aggregates.
    """

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="measure_episodes")
    instrument = models.CharField(max_length=8, choices=InstrumentKey.choices)
    started_at = models.DateTimeField(default=clock.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    #: Cohort dimensions captured when the episode opens (filled from the treatment plan when known).
    indication = models.CharField(max_length=10, blank=True, help_text="ICD-10-CM code of the indication.")
    protocol = models.CharField(max_length=120, blank=True)
    route = models.CharField(max_length=20, blank=True)
    baseline = models.ForeignKey(
        "InstrumentResponse", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    baseline_total = models.PositiveSmallIntegerField(null=True, blank=True)
    latest_total = models.PositiveSmallIntegerField(null=True, blank=True)
    followup_count = models.PositiveSmallIntegerField(default=0)
    responded = models.BooleanField(default=False)
    sessions_to_response = models.PositiveSmallIntegerField(null=True, blank=True)
    latest_remission = models.BooleanField(default=False)
    relapsed = models.BooleanField(default=False)
    #: Fingerprint of the outcome rules the stored outcomes follow; a different one (the clinic changed
    #: its rules) makes the next response recompute the whole episode instead of only itself.
    outcome_rules = models.CharField(max_length=16, blank=True, default="")

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["clinic", "instrument"], name="episode_clinic_instrument"),
            models.Index(fields=["patient", "instrument", "-started_at"], name="episode_patient_recent"),
        ]


#: InstrumentResponse columns holding a follow-up's outcome against its episode's baseline (written by
#: measures.services, shown by the change table).
OUTCOME_FIELDS = (
    "is_baseline",
    "change",
    "percent_change",
    "is_response",
    "is_remission",
    "reliable_change",
    "is_relapse",
)


class InstrumentResponse(models.Model):
    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="measure_responses"
    )
    episode = models.ForeignKey(Episode, on_delete=models.PROTECT, related_name="responses")
    instrument = models.CharField(max_length=8, choices=InstrumentKey.choices)
    instrument_version = models.CharField(max_length=20)
    completed_at = models.DateTimeField(default=clock.now)
    source = models.CharField(max_length=12, choices=ResponseSource.choices)
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Staff member who entered a paper form, or the patient's own account; empty for links.",
    )
    total = models.PositiveSmallIntegerField()
    severity = models.CharField(max_length=20, blank=True)
    item9 = models.PositiveSmallIntegerField(null=True, blank=True)
    item9_positive = models.BooleanField(default=False)
    item9_urgent = models.BooleanField(default=False)
    screen_positive = models.BooleanField(default=False)
    probable_ptsd = models.BooleanField(default=False)
    provisional_diagnosis = models.CharField(max_length=40, blank=True)
    cluster_b = models.PositiveSmallIntegerField(null=True, blank=True)
    cluster_c = models.PositiveSmallIntegerField(null=True, blank=True)
    cluster_d = models.PositiveSmallIntegerField(null=True, blank=True)
    cluster_e = models.PositiveSmallIntegerField(null=True, blank=True)
    #: Dosing sessions recorded before this response (for "sessions to response"), when known.
    sessions_before = models.PositiveSmallIntegerField(null=True, blank=True)
    # Outcome against the episode baseline (recomputed with the episode).
    is_baseline = models.BooleanField(default=False)
    change = models.SmallIntegerField(null=True, blank=True)
    percent_change = models.FloatField(null=True, blank=True)
    is_response = models.BooleanField(null=True, blank=True)
    is_remission = models.BooleanField(null=True, blank=True)
    reliable_change = models.CharField(max_length=24, blank=True)
    is_relapse = models.BooleanField(default=False)

    class Meta:
        ordering: ClassVar = ["completed_at", "id"]
        indexes: ClassVar = [
            models.Index(fields=["patient", "instrument", "completed_at"], name="response_patient_time"),
            models.Index(fields=["clinic", "instrument", "completed_at"], name="response_clinic_time"),
        ]
        constraints: ClassVar = [
            models.CheckConstraint(condition=models.Q(total__lte=80), name="response_total_in_range"),
        ]

    def __str__(self) -> str:
        return f"{self.instrument} {self.total}"

    @property
    def severity_label(self) -> str:
        from kapclinic.clinical.instruments import get_instrument

        for band in get_instrument(self.instrument).bands:
            if band.code == self.severity:
                return band.label
        return ""

    @property
    def reliable_change_label(self) -> str:
        return RELIABLE_CHANGE_LABELS.get(self.reliable_change, "")

    @property
    def diagnosis_label(self) -> str:
        return DIAGNOSIS_LABELS.get(self.provisional_diagnosis, "")


#: Wording of InstrumentResponse.reliable_change and .provisional_diagnosis (also used by the change
#: tables, which read plain column values).
RELIABLE_CHANGE_LABELS = {
    "reliably_improved": "Reliably improved",
    "no_reliable_change": "No reliable change",
    "reliably_deteriorated": "Reliably worse",
}
DIAGNOSIS_LABELS = {
    "major_depressive_syndrome": "Major depressive syndrome (screen)",
    "other_depressive_syndrome": "Other depressive syndrome (screen)",
    "provisional_ptsd": "Provisional PTSD (screen)",
}


class ItemAnswer(models.Model):
    response = models.ForeignKey(InstrumentResponse, on_delete=models.CASCADE, related_name="answers")
    item_number = models.PositiveSmallIntegerField()
    link_id = models.CharField(max_length=20)
    value = models.PositiveSmallIntegerField()
    answer_code = models.CharField(max_length=40, blank=True)

    class Meta:
        ordering: ClassVar = ["item_number"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["response", "item_number"], name="one_answer_per_item"),
            models.CheckConstraint(condition=models.Q(value__lte=4), name="answer_value_in_range"),
        ]


class MeasureLink(models.Model):
    """A single-use, expiring link emailed to a patient. Only a hash of the token is stored."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="measure_links")
    instrument = models.CharField(max_length=8, choices=InstrumentKey.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=clock.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    response = models.OneToOneField(
        InstrumentResponse, null=True, blank=True, on_delete=models.SET_NULL, related_name="link"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )


class AlertAction(models.TextChoices):
    CALLED_PATIENT = "called_patient", "Called the patient"
    SAW_PATIENT = "saw_patient", "Saw the patient in person"
    SAFETY_PLAN_REVIEWED = "safety_plan_reviewed", "Safety plan reviewed with the patient"
    STRUCTURED_SCREEN = "structured_screen", "Structured suicide-risk screen completed"
    REFERRED_HIGHER_CARE = "referred_higher_care", "Referred to a higher level of care"
    EMERGENCY_SERVICES = "emergency_services", "Emergency services contacted"
    OTHER = "other", "Other (describe)"


class SafetyAlert(models.Model):
    """Raised by a PHQ-9 item 9 answer above 0; urgent at >= 2 (ref §3.9). Open until acknowledged."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="safety_alerts")
    response = models.OneToOneField(InstrumentResponse, on_delete=models.PROTECT, related_name="safety_alert")
    urgent = models.BooleanField(default=False)
    raised_at = models.DateTimeField(default=clock.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    action = models.CharField(max_length=24, choices=AlertAction.choices, blank=True)
    action_note = models.TextField(blank=True)

    class Meta:
        ordering: ClassVar = ["-urgent", "raised_at", "id"]
        indexes: ClassVar = [
            models.Index(fields=["clinic", "acknowledged_at", "raised_at"], name="alert_open"),
        ]

    @property
    def is_open(self) -> bool:
        return self.acknowledged_at is None


class SafetyPlan(VersionedModel):
    """Structured safety plan filled in by clinician and patient together; shown in the portal."""

    patient = models.OneToOneField("patients.Patient", on_delete=models.PROTECT, related_name="safety_plan")
    warning_signs = models.TextField("Warning signs", blank=True)
    coping_strategies = models.TextField("Internal coping strategies", blank=True)
    people_and_places = models.TextField("People and places that provide distraction or support", blank=True)
    professionals_and_crisis_lines = models.TextField("Professionals and crisis lines to contact", blank=True)
    making_environment_safe = models.TextField("Making the environment safe", blank=True)
    updated_at = models.DateTimeField(default=clock.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    SECTIONS: ClassVar = [
        "warning_signs",
        "coping_strategies",
        "people_and_places",
        "professionals_and_crisis_lines",
        "making_environment_safe",
    ]


class MeasurementSchedule(models.Model):
    """When a patient is due for an instrument, anchored to treatment (ref §6.3 suggested schedule)."""

    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="measure_schedules"
    )
    instrument = models.CharField(max_length=8, choices=InstrumentKey.choices)
    at_intake = models.BooleanField("Baseline at intake", default=True)
    before_each_dosing = models.BooleanField("Before every dosing session", default=False)
    induction_every_days = models.PositiveSmallIntegerField(
        "Every N days during induction", null=True, blank=True
    )
    maintenance_every_days = models.PositiveSmallIntegerField(
        "Every N days during maintenance", null=True, blank=True
    )
    active = models.BooleanField(default=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["patient", "instrument"], name="one_schedule_per_instrument")
        ]
