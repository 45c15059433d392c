from __future__ import annotations

import zoneinfo
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.crypto import salted_hmac
from django_otp.models import Device

from kapclinic.core import clock
from kapclinic.core.concurrency import VersionedModel

if TYPE_CHECKING:
    from django.db.models.fields.related_descriptors import RelatedManager


class Role(models.TextChoices):
    ADMIN = "admin", "Clinic admin"
    PRESCRIBER = "prescriber", "Prescriber"
    THERAPIST = "therapist", "Therapist"
    NURSE = "nurse", "Nurse (dosing monitor)"
    FRONT_DESK = "front_desk", "Front desk"
    PATIENT = "patient", "Patient"


STAFF_ROLES = frozenset({Role.ADMIN, Role.PRESCRIBER, Role.THERAPIST, Role.NURSE, Role.FRONT_DESK})
CLINICAL_ROLES = frozenset({Role.PRESCRIBER, Role.THERAPIST, Role.NURSE})


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_time_zone(value: str) -> None:
    if value not in _zone_names():
        raise ValidationError(
            f"Time zone: “{value}” is not a time zone name; use one such as America/Los_Angeles or "
            "Europe/London."
        )


class Clinic(VersionedModel):
    """An organisation. Every patient belongs to exactly one; nothing crosses clinic lines.

    Every date and time a person sees about this clinic (staff pages, the portal, emails, calendar
    feeds) is shown in its `time_zone`; the database stores UTC."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    phone = models.CharField(max_length=40, blank=True)
    email = models.EmailField(blank=True)
    address = models.TextField(blank=True)
    hours = models.TextField(blank=True, help_text="Opening hours as shown on the public site.")
    crisis_line = models.CharField(
        max_length=80,
        default="988 Suicide & Crisis Lifeline (call or text 988)",
        help_text="Crisis line shown to patients.",
    )
    emergency_number = models.CharField(max_length=20, default="911")
    time_zone = models.CharField(
        max_length=64,
        default="America/New_York",
        validators=[validate_time_zone],
        help_text="Every date and time is shown in this zone (e.g. America/Los_Angeles).",
    )
    #: Who hears of a PHQ-9 item-9 safety alert when the patient has no care team, and who it escalates
    #: to when the care team's email could not be delivered or nobody acknowledged it in time. Must be
    #: set before patients can be enrolled (patients.services.patient_create). Edited on /sessions/settings/.
    on_call_prescriber = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    #: An open safety alert nobody acknowledged within this many hours escalates to the on-call
    #: prescriber. The clinic's own policy (not a clinical number); the default of 4 hours leaves the
    #: rest of the same day for the on-call prescriber, since the reference asks that item 9 is
    #: "surfaced to a clinician the same day" (docs/safety-alerts.md).
    alert_escalation_hours = models.PositiveSmallIntegerField(default=4)
    is_public = models.BooleanField(
        default=False, help_text="This clinic's details appear on the public site."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering: ClassVar = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):  # type: ignore[django-manager-missing]  # django-otp Device.user
    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="May use the Django admin site (operators only).")
    date_joined = models.DateTimeField(default=clock.now)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar = ["full_name"]

    class Meta:
        ordering: ClassVar = ["full_name"]

    def __str__(self) -> str:
        return self.full_name or self.email


class Membership(models.Model):
    """A staff member's role in one clinic. Staff may belong to several clinics."""

    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="memberships")
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["user", "clinic"], name="one_role_per_clinic"),
            models.CheckConstraint(condition=~models.Q(role=Role.PATIENT.value), name="membership_is_staff"),
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} at {self.clinic}"


# --- Two-factor backup codes -------------------------------------------------------------------

BACKUP_CODE_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/i/l: read off paper without doubt
BACKUP_CODE_LENGTH = 10  # 31**10 is about 2**49.5 possibilities per code
_BACKUP_CODE_HASH_SALT = "kapclinic.accounts.BackupCode"


def normalise_backup_code(raw: str) -> str:
    """What a person types ("ABCDE-FGHJK", "abcde fghjk") reduced to the stored form ("abcdefghjk")."""
    return "".join(ch for ch in raw.lower() if ch not in " -\t\r\n")


def backup_code_hash(code: str, secret: str | None = None) -> str:
    """Keyed hash of a normalised backup code: HMAC-SHA256 with a key derived from SECRET_KEY.

    Why this and not a slow password hash (scrypt, argon2):
    - a database reader (a dump, a read replica, a backup tape) learns nothing usable: without
      SECRET_KEY they cannot even test a guess against the stored value, let alone reverse it;
    - the codes are machine-made with about 49 bits of entropy, not chosen by people, so there
      is no small dictionary to try; slowness buys little once the key is also needed;
    - the hash is deterministic, so a code is found with one indexed query instead of trying a
      salted slow hash against each of the user's codes on every attempt (cheap for the server,
      constant work whatever the code), and the single-use update can be one conditional UPDATE.
    The price: rotating SECRET_KEY would orphan the codes, so verification also accepts hashes
    made with SECRET_KEY_FALLBACKS (see backup_code_hashes).
    """
    return salted_hmac(_BACKUP_CODE_HASH_SALT, code, secret=secret, algorithm="sha256").hexdigest()


def backup_code_hashes(code: str) -> list[str]:
    """The hashes a stored code may carry: under the current SECRET_KEY and each fallback key."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [backup_code_hash(code, secret=key) for key in keys]


class BackupCodeDevice(Device):  # type: ignore[misc]  # django-otp ships no type hints
    """The django-otp device standing for one staff member's set of backup codes.

    Signing in with a backup code logs this device into the session (django_otp.login), so the
    session records truthfully that it was verified by a backup code, and OTPMiddleware treats it
    like any other verified device. One per user; the codes themselves are BackupCode rows.
    django-otp's static plugin is not used because StaticToken keeps codes in plain text.
    """

    codes: RelatedManager[BackupCode]  # declared: django-otp's Device base is untyped

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["user"], name="one_backup_code_device_per_user"),
        ]

    def unused_count(self) -> int:
        return self.codes.filter(used_at__isnull=True).count()

    def verify_token(self, token: str) -> bool:
        """Use up one unused code matching `token`. One conditional UPDATE, so two requests racing
        with the same code cannot both succeed."""
        code = normalise_backup_code(str(token))
        if len(code) != BACKUP_CODE_LENGTH:
            return False
        used = self.codes.filter(code_hash__in=backup_code_hashes(code), used_at__isnull=True).update(
            used_at=clock.now()
        )
        return used > 0


class BackupCode(models.Model):
    """One single-use backup code. Only its keyed hash is stored (see backup_code_hash)."""

    device = models.ForeignKey(BackupCodeDevice, on_delete=models.CASCADE, related_name="codes")
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=clock.now)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["device", "code_hash"], name="backup_code_unique_in_set"),
        ]

    def __str__(self) -> str:
        return f"Backup code {self.pk} ({'used' if self.used_at else 'unused'})"


# --- Two-factor enrolment links ----------------------------------------------------------------


class MfaEnrolmentLink(models.Model):
    """A single-use, expiring link that lets one staff member set up their authenticator app.

    Emailed at staff invitation and re-sent by an admin on request. A password alone never shows the
    authenticator secret: whoever stole a password also needs this link (the person's mailbox), so
    they cannot enrol their own phone. Only a hash of the token is stored (core.tokens.token_hash).
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="mfa_enrolment_links")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=clock.now)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)  # opened by its owner: the link is spent
    replaced_at = models.DateTimeField(null=True, blank=True)  # a newer link was sent

    def __str__(self) -> str:
        return f"Enrolment link {self.pk} for user {self.user_id}"
