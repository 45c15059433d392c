from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models

from kapclinic.core import clock


class Role(models.TextChoices):
    ADMIN = "admin", "Clinic admin"
    PRESCRIBER = "prescriber", "Prescriber"
    THERAPIST = "therapist", "Therapist"
    NURSE = "nurse", "Nurse (dosing monitor)"
    FRONT_DESK = "front_desk", "Front desk"
    PATIENT = "patient", "Patient"


STAFF_ROLES = frozenset({Role.ADMIN, Role.PRESCRIBER, Role.THERAPIST, Role.NURSE, Role.FRONT_DESK})
CLINICAL_ROLES = frozenset({Role.PRESCRIBER, Role.THERAPIST, Role.NURSE})


class Clinic(models.Model):
    """An organisation. Every patient belongs to exactly one; nothing crosses clinic lines."""

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
    is_public = models.BooleanField(
        default=False, help_text="This clinic's details appear on the public site."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering: ClassVar = ["name"]

    def __str__(self) -> str:
        return self.name


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


class User(AbstractBaseUser, PermissionsMixin):
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
            models.CheckConstraint(condition=~models.Q(role="patient"), name="membership_is_staff"),
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} at {self.clinic}"
