"""Remove a staff member's two-factor devices (lost phone and no backup code left).

    python manage.py reset_mfa nurse@clinic.example --reason "phone lost; identity checked in person"

The person must enrol a new authenticator, with a new enrolment link an admin sends from the Staff
page (staff sessions verified by the removed devices stop counting as verified at once). The reset is
recorded in the audit trail of every clinic the person works in (detail code "mfa_reset"); the
free-text reason is printed for the operator's own log and is not written to the audit trail, which
holds codes only.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from kapclinic.accounts.models import BackupCodeDevice, Membership, User
from kapclinic.audit.services import record_event
from kapclinic.core.actor import Actor


class Command(BaseCommand):
    help = "Remove a staff member's authenticator and backup codes so they can enrol again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--reason", required=True, help="why, and how the person's identity was checked")

    def handle(self, *args: Any, **options: Any) -> None:
        email: str = options["email"].strip()
        reason: str = options["reason"].strip()
        if len(reason) < 10:
            raise CommandError("Give a reason of at least 10 characters (why, and how identity was checked).")
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            raise CommandError(f"No account has the address {email!r}; nothing was changed.")
        memberships = list(Membership.objects.filter(user=user).select_related("clinic"))
        if not memberships:
            raise CommandError(f"{email} is not a staff member of any clinic; nothing was changed.")
        with transaction.atomic():
            totp = TOTPDevice.objects.filter(user=user).delete()[0]
            backup = BackupCodeDevice.objects.filter(user=user)
            backup_count = backup.count()
            backup.delete()
            if totp == 0 and backup_count == 0:
                raise CommandError(f"{email} has no two-factor device; nothing was changed.")
            for membership in memberships:
                record_event(
                    Actor.system(membership.clinic, reason="reset_mfa"),
                    "admin",
                    object_type="user",
                    object_id=user.pk,
                    detail="mfa_reset",
                    clinic=membership.clinic,
                )
        self.stdout.write(
            f"Two-factor devices removed for {email} ({totp} authenticator, {backup_count} backup-code set). "
            f"Reason recorded by the operator: {reason}. They enrol again with a new enrolment link: an "
            "admin sends one from the Staff page."
        )
