"""Registered FHIR API clients (one clinic each) and spent JWT assertion ids (docs/fhir-api.md)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from oauth2_provider.settings import oauth2_settings

from kapclinic.core import clock
from kapclinic.core.concurrency import VersionedModel


class ClientKind(models.TextChoices):
    BACKEND = "backend", "Backend service (client credentials, signed JWT)"
    APP = "app", "App (authorization code + PKCE)"


class FhirClient(models.Model):
    """A django-oauth-toolkit Application bound to one clinic, with the scopes it may be granted."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="fhir_clients")
    application = models.OneToOneField(
        oauth2_settings.APPLICATION_MODEL, on_delete=models.CASCADE, related_name="fhir_client"
    )
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=10, choices=ClientKind.choices)
    scopes = models.TextField(help_text="The SMART scopes this client may be granted, space-separated.")
    jwks = models.JSONField(null=True, blank=True, help_text="The client's public keys (backend services).")
    jwks_url = models.URLField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=clock.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name

    @property
    def client_id(self) -> str:
        return str(self.application.client_id)


class UsedAssertion(models.Model):
    """A backend client's JWT assertion id (`jti`), kept until the assertion expires: a replay is refused."""

    client = models.ForeignKey(FhirClient, on_delete=models.CASCADE, related_name="+")
    jti = models.CharField(max_length=255)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "jti"], name="fhir_assertion_once")]


class ExportStatus(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class ExportJob(models.Model):
    """A Bulk Data $export (docs/fhir-api.md#bulk-data): run by the worker, files expire."""

    id = models.UUIDField(primary_key=True)
    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    client = models.ForeignKey(FhirClient, on_delete=models.CASCADE, related_name="exports")
    # An admin-defined Group export (`Group/ag<id>/$export`): only its members; None = the whole clinic.
    group = models.ForeignKey(
        "fhirapi.PatientGroup", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    request_url = models.TextField()
    types = models.CharField(max_length=400)
    since = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=ExportStatus.choices, default=ExportStatus.ACCEPTED)
    progress = models.CharField(max_length=90, blank=True)
    error = models.CharField(max_length=200, blank=True)
    output = models.JSONField(default=list)
    created_at = models.DateTimeField(default=clock.now)
    transaction_time = models.DateTimeField(default=clock.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)


class ExportPart(models.Model):
    """One part of an ExportJob (docs/fhir-api.md#bulk-data): one resource type for a contiguous pk range of
    the exported patients, run by its own task; it writes `<Type>.<n>.ndjson` (no file when empty)."""

    job = models.ForeignKey(ExportJob, on_delete=models.CASCADE, related_name="parts")
    index = models.PositiveIntegerField()  # the job's parts in order: EXPORT_TYPES order, then pk ranges
    resource_type = models.CharField(max_length=40)
    number = models.PositiveIntegerField()  # 1.. within its type: the `<n>` of the file name
    lo = models.BigIntegerField()  # the first and last patient pk of the range (inclusive)
    hi = models.BigIntegerField()
    done = models.BooleanField(default=False)
    file = models.CharField(max_length=80, blank=True)  # "" when the part found nothing
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="fhir_export_part_once")]


class LaunchPatient(models.Model):
    """The patient a staff member chose for an app at authorization (`launch/patient`, docs/fhir-api.md
    #patient-picker): held by the authorization code, then by the access token it was exchanged for."""

    grant = models.OneToOneField(
        oauth2_settings.GRANT_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )  # spent with its code: a code exchanged or expired is deleted, and its row with it
    token = models.OneToOneField(
        oauth2_settings.ACCESS_TOKEN_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="fhir_launch",
    )
    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=clock.now)


class PatientGroup(VersionedModel):
    """A Group of patients a clinic admin defines (docs/fhir-api.md#groups): served as FHIR Group
    `ag<id>`, exported with `Group/ag<id>/$export`. Never deleted: deactivated (no longer served)."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=120)
    description = models.CharField(max_length=500, blank=True)
    members = models.ManyToManyField("patients.Patient", related_name="+", blank=True)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["clinic", "name"], name="fhir_group_name_once")]

    def __str__(self) -> str:
        return self.name

    @property
    def fhir_id(self) -> str:
        return f"ag{self.pk}"
