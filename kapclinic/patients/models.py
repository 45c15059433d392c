from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from kapclinic.core import clock
from kapclinic.core.concurrency import VersionedModel


class PathwayStatus(models.TextChoices):
    INQUIRY = "inquiry", "Inquiry"
    ASSESSMENT = "assessment", "Assessment"
    ACTIVE = "active", "Active treatment"
    MAINTENANCE = "maintenance", "Maintenance"
    DISCHARGED = "discharged", "Discharged"


class SexAtBirth(models.TextChoices):
    FEMALE = "female", "Female"
    MALE = "male", "Male"
    INTERSEX = "intersex", "Intersex"
    UNKNOWN = "unknown", "Not recorded"


class Patient(VersionedModel):
    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="patients")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="patient_record",
    )
    mrn = models.CharField("record number", max_length=20)
    legal_first_name = models.CharField(max_length=100)
    legal_last_name = models.CharField(max_length=100)
    preferred_name = models.CharField(max_length=100, blank=True)
    pronouns = models.CharField(max_length=40, blank=True)
    date_of_birth = models.DateField()
    sex_at_birth = models.CharField(max_length=10, choices=SexAtBirth.choices, default=SexAtBirth.UNKNOWN)
    gender_identity = models.CharField(max_length=60, blank=True)
    email = models.EmailField(blank=True)
    # The address the patient had when the record was opened, or the one a clinician last confirmed by
    # sending the portal invitation to it. A portal invitation to any other address needs a clinician:
    # whoever can edit demographics must not be able to route a portal account to an address they own.
    confirmed_email = models.EmailField(blank=True, editable=False)
    phone = models.CharField(max_length=40, blank=True)
    address = models.TextField(blank=True)
    emergency_contact_name = models.CharField(max_length=120, blank=True)
    emergency_contact_relationship = models.CharField(max_length=60, blank=True)
    emergency_contact_phone = models.CharField(max_length=40, blank=True)
    pathway_status = models.CharField(
        max_length=20, choices=PathwayStatus.choices, default=PathwayStatus.INQUIRY, db_index=True
    )
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)
    # Lower-cased copies of the names, kept by the database itself, so that a name search is an index
    # range scan instead of a case-insensitive scan of the whole clinic (issue #7).
    search_last = models.GeneratedField(
        expression=Lower("legal_last_name"), output_field=models.CharField(max_length=100), db_persist=True
    )
    search_first = models.GeneratedField(
        expression=Lower("legal_first_name"), output_field=models.CharField(max_length=100), db_persist=True
    )
    search_preferred = models.GeneratedField(
        expression=Lower("preferred_name"), output_field=models.CharField(max_length=100), db_persist=True
    )

    class Meta:
        ordering: ClassVar = ["legal_last_name", "legal_first_name", "id"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["clinic", "mrn"], name="mrn_unique_per_clinic")
        ]
        indexes: ClassVar = [
            models.Index(
                fields=["clinic", "legal_last_name", "legal_first_name"], name="patient_clinic_name"
            ),
            models.Index(fields=["clinic", "pathway_status"], name="patient_clinic_status"),
            models.Index(fields=["clinic", "search_last"], name="patient_search_last"),
            models.Index(fields=["clinic", "search_first"], name="patient_search_first"),
            models.Index(fields=["clinic", "search_preferred"], name="patient_search_preferred"),
        ]

    def __str__(self) -> str:
        return self.display_name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._state.adding and not self.confirmed_email:
            self.confirmed_email = self.email  # the address given when the record was opened
        super().save(*args, **kwargs)

    @property
    def email_changed_since_confirmed(self) -> bool:
        """Is the address on file different from the registered / last confirmed one?"""
        return self.email.strip().lower() != self.confirmed_email.strip().lower()

    @property
    def display_name(self) -> str:
        first = self.preferred_name or self.legal_first_name
        return f"{first} {self.legal_last_name}"

    @property
    def legal_name(self) -> str:
        return f"{self.legal_first_name} {self.legal_last_name}"

    def age_on(self, day: object) -> int:
        import datetime as dt

        assert isinstance(day, dt.date)
        dob = self.date_of_birth
        return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))


class CareTeamRole(models.TextChoices):
    PRESCRIBER = "prescriber", "Prescriber"
    THERAPIST = "therapist", "Therapist"
    NURSE = "nurse", "Nurse"


class CareTeamMember(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="care_team")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="caseload")
    role = models.CharField(max_length=20, choices=CareTeamRole.choices)
    added_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints: ClassVar = [models.UniqueConstraint(fields=["patient", "user"], name="care_team_unique")]
        indexes: ClassVar = [models.Index(fields=["user", "patient"], name="care_team_user")]


class DiagnosisStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    RESOLVED = "resolved", "Resolved"


class Diagnosis(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="diagnoses")
    icd10 = models.CharField("ICD-10-CM", max_length=10)
    snomed = models.CharField("SNOMED CT", max_length=20, blank=True)
    description = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=DiagnosisStatus.choices, default=DiagnosisStatus.ACTIVE)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(default=clock.now)


class DrugClass(models.TextChoices):
    BENZODIAZEPINE = "benzodiazepine", "Benzodiazepine"
    OPIOID = "opioid", "Opioid"
    STIMULANT = "stimulant", "Psychostimulant"
    MAOI = "maoi", "MAOI"
    SEDATIVE = "sedative", "Other sedative / hypnotic"
    ANTIDEPRESSANT = "antidepressant", "Antidepressant"
    OTHER = "other", "Other"


class Medication(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="medications")
    name = models.CharField(max_length=120)
    dose = models.CharField(max_length=80, blank=True)
    drug_class = models.CharField(max_length=20, choices=DrugClass.choices, default=DrugClass.OTHER)
    active = models.BooleanField(default=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(default=clock.now)


class Allergy(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="allergies")
    substance = models.CharField(max_length=120)
    reaction = models.CharField(max_length=200, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(default=clock.now)


class TimelineCategory(models.TextChoices):
    ADMIN = "admin", "Administrative"
    CLINICAL = "clinical", "Clinical"


class TimelineEvent(models.Model):
    """One line on the chart's chronological timeline. Other apps add theirs through services."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="timeline")
    at = models.DateTimeField()
    kind = models.CharField(max_length=40)
    category = models.CharField(
        max_length=10, choices=TimelineCategory.choices, default=TimelineCategory.CLINICAL
    )
    title = models.CharField(max_length=200)
    #: What the line links to, as a URL name and its kwargs (``reverse`` builds the address when the
    #: timeline is shown), never a stored path: a path goes stale when a URL changes.
    url_name = models.CharField(max_length=80, blank=True)
    url_kwargs = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    ref_type = models.CharField(max_length=60, blank=True)
    ref_id = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes: ClassVar = [models.Index(fields=["patient", "-at", "-id"], name="timeline_patient_recent")]
