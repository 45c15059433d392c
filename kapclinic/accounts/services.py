from __future__ import annotations

import datetime as dt
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
    MfaEnrolmentLink,
    User,
    backup_code_hash,
)
from kapclinic.audit.services import field_changes, record_event
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.concurrency import save_versioned
from kapclinic.core.errors import DomainError
from kapclinic.core.tokens import token_hash
from kapclinic.messaging.models import MessageKind
from kapclinic.messaging.services import queue


def set_password_url(user: User) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return settings.SITE_URL + reverse(
        "accounts:password_reset_confirm", kwargs={"uidb64": uid, "token": token}
    )


def staff_invite(actor: Actor, clinic: Clinic, *, email: str, full_name: str, role: str) -> Membership:
    """Give a person a role here and email them the link to choose a password and, unless they have
    an authenticator already, the single-use link to set up two-factor sign-in."""
    with transaction.atomic():
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(email=email, full_name=full_name)
        membership = Membership.objects.create(user=user, clinic=clinic, role=role)
        record_event(actor, "admin", obj=membership, detail=f"invite role={role}")
        link = set_password_url(user)
        enrol = ""
        if not has_authenticator(user):
            enrol_url = _new_enrolment_link(actor, user)
            enrol = (
                "\nThen set up two-factor sign-in with an authenticator app here (the link works once, "
                f"for {settings.MFA_ENROLMENT_LINK_HOURS} hours; sign in first if asked):\n{enrol_url}\n"
            )
        queue(
            kind=MessageKind.STAFF_INVITE,
            to_email=email,
            to_user=user,
            clinic=clinic,
            related=membership,
            subject=f"You have been invited to {clinic.name} on KAP Clinic",
            body=f"Hello {full_name},\n\nYou have been given access to {clinic.name}. "
            f"Choose your password here (the link works once):\n{link}\n{enrol}",
        )
    return membership


# --- Two-factor enrolment links ----------------------------------------------------------------

#: The unconfirmed authenticator made when an enrolment link was opened in this session (its primary
#: key): the only one this session may show and confirm.
SESSION_ENROLMENT_DEVICE = "kap_mfa_enrolment_device"


def has_authenticator(user: User) -> bool:
    return bool(TOTPDevice.objects.filter(user=user, confirmed=True).exists())  # django-otp is untyped


def _new_enrolment_link(actor: Actor, user: User) -> str:
    """Replace any unused link of `user` with a new one (audited); return its address. Caller: atomic."""
    now = clock.now()
    MfaEnrolmentLink.objects.filter(user=user, used_at__isnull=True, replaced_at__isnull=True).update(
        replaced_at=now
    )
    token = secrets.token_urlsafe(32)
    hours = settings.MFA_ENROLMENT_LINK_HOURS
    link = MfaEnrolmentLink.objects.create(
        user=user,
        token_hash=token_hash(token),
        created_by=actor.user,
        expires_at=now + dt.timedelta(hours=hours),
    )
    record_event(actor, "admin", obj=link, detail=f"mfa_enrolment_link_sent user={user.pk} hours={hours}")
    return settings.SITE_URL + reverse("accounts:mfa_enrol", kwargs={"token": token})


def send_enrolment_link(actor: Actor, membership: Membership) -> None:
    """An admin re-sends the two-factor enrolment link (the first expired, was lost or was used
    without finishing). Earlier unused links stop working."""
    user = membership.user
    if not membership.is_active:
        raise DomainError(f"{user} is deactivated here; reactivate them first.")
    if has_authenticator(user):
        raise DomainError(
            f"{user} has already set up two-factor sign-in. If they lost their authenticator, an "
            "operator removes it first (manage.py reset_mfa), then send a new link."
        )
    with transaction.atomic():
        url = _new_enrolment_link(actor, user)
        hours = settings.MFA_ENROLMENT_LINK_HOURS
        clinic_name = membership.clinic.name
        email = user.email
        queue(
            kind=MessageKind.STAFF_INVITE,
            to_email=email,
            to_user=user,
            clinic=membership.clinic,
            related=membership,
            subject=f"Set up two-factor sign-in for {clinic_name} on KAP Clinic",
            body=f"Hello {user.full_name},\n\nOpen this link to set up two-factor sign-in with an "
            f"authenticator app (it works once, for {hours} hours; sign in first if asked):\n"
            f"{url}\n\n"
            "If you did not ask for this, tell your clinic admin.\n",
        )


_ASK_ADMIN = "Ask an admin to send you a new one from the Staff page."
_NEWEST = "Open the newest enrolment link we emailed you."


def _link_refusal(link: MfaEnrolmentLink | None, user: User) -> tuple[str, str] | None:
    """(audit code, sentence) when `link` cannot enrol `user`, None when it can."""
    if link is None:
        return "unknown", f"This enrolment link is not valid. {_NEWEST} {_ASK_ADMIN}"
    if link.user_id != user.pk:
        return "other_user", (
            "This enrolment link was sent to someone else. Sign out, then open it again and sign in as "
            "the person it was sent to."
        )
    if has_authenticator(user):
        return "enrolled", "This enrolment link is not needed: two-factor sign-in is already set up."
    if link.used_at is not None:
        return "used", f"This enrolment link has already been used: each link works once. {_ASK_ADMIN}"
    if link.replaced_at is not None:
        return "replaced", f"This enrolment link was replaced by a newer one. {_NEWEST} {_ASK_ADMIN}"
    if link.expires_at <= clock.now():
        return "expired", f"This enrolment link has expired. {_ASK_ADMIN}"
    return None


def claim_enrolment_link(actor: Actor, token: str) -> TOTPDevice:
    """The signed-in staff member opens their enrolment link: it is spent at once (single use) and a
    fresh authenticator (returned) is made for this session to show. Any refusal is audited as "denied"
    and raised as DomainError with the sentence to show; a refused link is not spent."""
    user = actor.require_user()
    device: TOTPDevice | None = None
    with transaction.atomic():
        link = None
        if 0 < len(token) <= 100:
            link = MfaEnrolmentLink.objects.select_for_update().filter(token_hash=token_hash(token)).first()
        refusal = _link_refusal(link, user)
        if refusal is not None:
            record_event(
                actor,
                "denied",
                object_type="accounts.mfaenrolmentlink",
                object_id=link.pk if link is not None else "",
                detail=f"mfa_enrolment_link {refusal[0]}",
            )
        else:
            assert link is not None
            MfaEnrolmentLink.objects.filter(pk=link.pk).update(used_at=clock.now())
            # A secret shown before (to anyone) is never the one that gets confirmed.
            TOTPDevice.objects.filter(user=user, confirmed=False).delete()
            device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
            record_event(actor, "update", obj=link, detail="mfa_enrolment_link_opened")
    if refusal is not None or device is None:
        raise DomainError(refusal[1] if refusal else "This enrolment link is not valid.")
    return device


def confirm_enrolment(actor: Actor, device: TOTPDevice) -> None:
    """The first code from the new authenticator was right: two-factor sign-in is on (audited)."""
    with transaction.atomic():
        TOTPDevice.objects.filter(pk=device.pk).update(confirmed=True)
        device.confirmed = True
        user_id = actor.require_user().pk
        record_event(actor, "update", object_type="user", object_id=user_id, detail="mfa_enrolled")


def home_clinic(user: User) -> Clinic | None:
    """The clinic whose admins see a failed email to this person: their first active membership, or
    their patient record's clinic."""
    membership = user.memberships.filter(is_active=True).select_related("clinic").order_by("id").first()
    if membership is not None:
        return membership.clinic
    from kapclinic.patients.models import Patient

    patient = Patient.objects.filter(user=user).select_related("clinic").first()
    return patient.clinic if patient is not None else None


def staff_deactivate(actor: Actor, membership: Membership) -> None:
    """Remove a staff member's access to this clinic at once; their records and audit history stay.
    Refused for the clinic's on-call prescriber: safety alerts would reach nobody."""
    if Clinic.objects.filter(pk=membership.clinic_id, on_call_prescriber_id=membership.user_id).exists():
        raise DomainError(
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
            raise DomainError("Set up an authenticator app before creating backup codes.")
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


CLINIC_DETAIL_FIELDS = (
    "name", "phone", "email", "address", "hours", "crisis_line", "emergency_number", "time_zone",
)  # fmt: skip


def clinic_update(actor: Actor, clinic: Clinic, *, expected_version: int, **values: object) -> list[str]:
    """Change the clinic's details (an admin). Returns the names of the fields that changed.

    Conditional on the version the form was rendered with, so two admins never overwrite each other
    unnoticed; the audit entry holds each changed field's old and new value.
    """
    changed = [n for n in CLINIC_DETAIL_FIELDS if n in values and getattr(clinic, n) != values[n]]
    with transaction.atomic():
        before = {name: getattr(clinic, name) for name in changed}
        for name in changed:
            setattr(clinic, name, values[name])
        save_versioned(clinic, expected_version, changed)
        detail = "clinic details: " + (",".join(changed) or "none")
        data = {"changes": field_changes(before, {name: values[name] for name in changed})}
        record_event(
            actor, "admin", obj=clinic, clinic=clinic, detail=detail, name="clinic.update", data=data
        )
    return changed
