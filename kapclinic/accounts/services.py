from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_otp.plugins.otp_totp.models import TOTPDevice

from kapclinic.accounts.models import (
    BACKUP_CODE_ALPHABET,
    BACKUP_CODE_LENGTH,
    BackupCode,
    BackupCodeDevice,
    Clinic,
    Membership,
    User,
    backup_code_hash,
)
from kapclinic.audit.services import record_event
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.messaging.models import MessageKind
from kapclinic.messaging.services import queue


def set_password_url(user: User) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return settings.SITE_URL + reverse(
        "accounts:password_reset_confirm", kwargs={"uidb64": uid, "token": token}
    )


def staff_invite(actor: Actor, clinic: Clinic, *, email: str, full_name: str, role: str) -> Membership:
    with transaction.atomic():
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(email=email, full_name=full_name)
        membership = Membership.objects.create(user=user, clinic=clinic, role=role)
        record_event(actor, "admin", obj=membership, detail=f"invite role={role}")
        link = set_password_url(user)
        queue(
            kind=MessageKind.STAFF_INVITE,
            to_email=email,
            to_user=user,
            clinic=clinic,
            related=membership,
            subject=f"You have been invited to {clinic.name} on KAP Clinic",
            body=f"Hello {full_name},\n\nYou have been given access to {clinic.name}. "
            f"Choose your password here (the link works once):\n{link}\n",
        )
    return membership


def home_clinic(user: User) -> Clinic | None:
    """The clinic whose admins see a failed email to this person: their first active membership, or
    their patient record's clinic."""
    membership = user.memberships.filter(is_active=True).select_related("clinic").order_by("id").first()
    if membership is not None:
        return membership.clinic
    from kapclinic.patients.models import Patient

    patient = Patient.objects.filter(user=user).select_related("clinic").first()
    return patient.clinic if patient is not None else None


class StaffRefused(Exception):
    """str() is the sentence to show."""


def staff_deactivate(actor: Actor, membership: Membership) -> None:
    """Remove a staff member's access to this clinic at once; their records and audit history stay.
    Refused for the clinic's on-call prescriber: safety alerts would reach nobody."""
    if Clinic.objects.filter(pk=membership.clinic_id, on_call_prescriber_id=membership.user_id).exists():
        raise StaffRefused(
            f"{membership.user} is the clinic's on-call prescriber, who receives safety alerts: a "
            "prescriber names someone else on the clinic settings page first."
        )
    with transaction.atomic():
        Membership.objects.filter(pk=membership.pk).update(is_active=False)
        user = membership.user
        if not user.memberships.filter(is_active=True).exists():
            User.objects.filter(pk=user.pk).update(is_active=False, deactivated_at=clock.now())
        record_event(actor, "admin", obj=membership, detail="deactivate")


def staff_reactivate(actor: Actor, membership: Membership) -> None:
    with transaction.atomic():
        Membership.objects.filter(pk=membership.pk).update(is_active=True)
        User.objects.filter(pk=membership.user_id).update(is_active=True, deactivated_at=None)
        record_event(actor, "admin", obj=membership, detail="reactivate")


# --- Two-factor backup codes -------------------------------------------------------------------

BACKUP_CODE_COUNT = 10
BACKUP_CODES_LOW = 2  # at or below this many unused codes, remind the person to make a new set


class BackupCodesUnavailable(Exception):
    """Backup codes back up an authenticator app: without a confirmed one there is nothing to back up."""


def format_backup_code(code: str) -> str:
    """Shown in two halves ("abcde-fghjk") so it is easier to copy by hand; the dash is optional."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


def backup_codes_remaining(user: User) -> int | None:
    """Unused backup codes of `user`, or None when they have never generated any."""
    device = BackupCodeDevice.objects.filter(user=user).first()
    return None if device is None else device.unused_count()


def generate_backup_codes(actor: Actor) -> list[str]:
    """Make a new set of BACKUP_CODE_COUNT codes for the acting user and return them (formatted).

    The old set, used or not, is deleted in the same transaction: only the new codes work. The
    codes leave this function once, for display; only their keyed hashes are stored.
    """
    user = actor.require_user()
    with transaction.atomic():
        if not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
            raise BackupCodesUnavailable("Set up an authenticator app before creating backup codes.")
        device, _created = BackupCodeDevice.objects.get_or_create(
            user=user, defaults={"name": "Backup codes", "confirmed": True}
        )
        device = BackupCodeDevice.objects.select_for_update().get(pk=device.pk)
        device.codes.all().delete()
        codes: list[str] = []
        while len(codes) < BACKUP_CODE_COUNT:
            code = "".join(secrets.choice(BACKUP_CODE_ALPHABET) for _ in range(BACKUP_CODE_LENGTH))
            if code not in codes:
                codes.append(code)
        BackupCode.objects.bulk_create(
            [BackupCode(device=device, code_hash=backup_code_hash(code)) for code in codes]
        )
        record_event(actor, "create", obj=device, detail=f"mfa_backup_codes_generated count={len(codes)}")
    return [format_backup_code(code) for code in codes]


class BackupCodeOutcome(enum.Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # wrong, already used, or the person has no codes
    THROTTLED = "throttled"  # too many wrong codes in a row: not even checked


@dataclass(frozen=True)
class BackupCodeResult:
    outcome: BackupCodeOutcome
    device: BackupCodeDevice | None = None
    remaining: int = 0


def use_backup_code(actor: Actor, code: str) -> BackupCodeResult:
    """The sign-in step with a backup code in place of the authenticator app's code.

    Wrong codes share the authenticator's throttle (django-otp's growing delay on the user's TOTP
    devices): a guess by either route slows down both, so a backup code is no way around it. The
    TOTP rows are locked for the attempt so concurrent guesses queue up. Every rejected code is
    audited as "login_failed"; an accepted one as "login". Neither detail holds the code.
    """
    user = actor.require_user()
    with transaction.atomic():
        totp_devices = list(TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True))
        if not totp_devices:
            # Codes only back up an authenticator; with none left, they do not open the account.
            record_event(actor, "login_failed", object_type="session", detail="mfa_backup_code")
            return BackupCodeResult(BackupCodeOutcome.REJECTED)
        if any(not device.verify_is_allowed()[0] for device in totp_devices):
            return BackupCodeResult(BackupCodeOutcome.THROTTLED)
        backup = BackupCodeDevice.objects.filter(user=user, confirmed=True).first()
        if backup is None or not backup.verify_token(code):
            for device in totp_devices:
                device.throttle_increment()
            record_event(actor, "login_failed", object_type="session", detail="mfa_backup_code")
            return BackupCodeResult(BackupCodeOutcome.REJECTED)
        for device in totp_devices:
            device.throttle_reset()
        record_event(actor, "login", object_type="session", detail="mfa_backup_code")
        return BackupCodeResult(BackupCodeOutcome.ACCEPTED, device=backup, remaining=backup.unused_count())
