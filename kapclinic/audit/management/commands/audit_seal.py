from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from kapclinic.audit.services import seal_legacy_chains, unsealed_legacy_chains, verify_chains


class Command(BaseCommand):
    help = (
        "Once, after upgrading to the keyed audit chain: append one keyed event to every chain that ends "
        "with legacy (unkeyed) events, so its HMAC vouches for them. Refused when the trail has any other "
        "problem: a chain that turns unkeyed after the upgrade was rewritten and must not be sealed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        unsealed = unsealed_legacy_chains()
        other = [p for p in verify_chains() if "no keyed event seals them" not in p]
        if other:
            for line in other:
                self.stderr.write(line)
            raise CommandError(
                "The audit trail has problems other than unsealed legacy events; nothing was sealed.",
                returncode=1,
            )
        if not unsealed:
            self.stdout.write("Every audit chain already ends with a keyed event: nothing to seal.")
            return
        sealed = seal_legacy_chains()
        self.stdout.write(f"Sealed {len(sealed)} chain(s): {', '.join(str(c) for c in sealed)}.")
