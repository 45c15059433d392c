from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.test.utils import override_settings

from kapclinic.core.packaging import require_extra


class Command(BaseCommand):
    help = "Load the synthetic demo clinic (idempotent: safe to run again; never wipes data)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--quiet-logins", action="store_true", help="Do not print the demo logins.")

    def handle(self, *args: Any, **options: Any) -> None:
        require_extra("faker", "demo", "The demo clinic")
        from kapclinic.core.demo import (
            DEMO_PASSWORD,
            OTHER_CLINIC_LOGIN,
            PATIENT_LOGIN,
            STAFF,
            build_foundation,
            run_app_seeders,
        )

        # Seeding raises demo alerts and reminders; their emails would only flood the console.
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
            ctx = build_foundation()
            ran = run_app_seeders(ctx)
        self.stdout.write(
            f"Demo clinic ready: {ctx.clinic.name}, {len(ctx.patients)} synthetic patients; "
            f"app data: {', '.join(ran) or 'none'}."
        )
        if not options["quiet_logins"]:
            self.stdout.write(f"\nDemo logins (password for all: {DEMO_PASSWORD})")
            for email, _name, role in STAFF:
                self.stdout.write(f"  {role.label:<24} {email}")
            self.stdout.write(f"  {'Patient':<24} {PATIENT_LOGIN}")
            self.stdout.write(f"  {'Prescriber, other clinic':<24} {OTHER_CLINIC_LOGIN}")
            self.stdout.write(
                "Two-factor sign-in is "
                + ("required for staff" if settings.MFA_REQUIRED_FOR_STAFF else "optional in this mode")
                + ". Staff set it up with an emailed single-use enrolment link: as the admin, open Staff"
                " and press 'Send enrolment link' (the email is printed to this console)."
            )
