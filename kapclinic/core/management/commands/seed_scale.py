"""Build a deterministic, multi-clinic synthetic history at clinic scale (issue #7).

    python manage.py seed_scale --patients 20000 [--seed 7] [--chunk 200] [--no-progress]

Runs on an empty (migrated) database; refuses to add a second scale dataset. Synthetic data only.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kapclinic.core.packaging import require_extra


class Command(BaseCommand):
    help = "Generate a synthetic multi-clinic dataset with N patients and their full histories."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--patients", type=int, required=True, help="Number of patients (e.g. 2000, 20000)."
        )
        parser.add_argument("--seed", type=int, default=7, help="Random seed (same seed, same data).")
        parser.add_argument("--chunk", type=int, default=200, help="Patients per transaction.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
        parser.add_argument("--only", default="", help="Comma-separated domains to run (default: all).")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")

    def handle(self, *args: Any, **opts: Any) -> None:
        require_extra("faker", "dev", "The scale dataset")
        require_extra("kapclinic.benchdata", "dev", "The scale dataset")
        from kapclinic.benchdata.scale import already_seeded, seed_scale

        n = opts["patients"]
        if n < 2 or n > 1_000_000:
            raise CommandError("--patients must be between 2 and 1,000,000.")
        if opts["chunk"] < 1:
            raise CommandError("--chunk must be at least 1.")
        if already_seeded():
            raise CommandError("This database already holds a scale dataset; use a fresh database.")
        only = [d.strip() for d in opts["only"].split(",") if d.strip()] or None
        result = seed_scale(
            n,
            seed=opts["seed"],
            chunk=opts["chunk"],
            progress=not opts["no_progress"],
            out=self.stderr,
            only=only,
        )
        summary: dict[str, Any] = {
            "patients": result.patients,
            "seconds": round(result.seconds, 1),
            "peak_rss_mb": round(result.peak_rss_mb),
            "domains_run": result.domains_run,
            "domains_skipped": result.domains_skipped,
            "rows": dict(sorted(result.counts.items())),
            "total_rows": sum(result.counts.values()),
        }
        if opts["json"]:
            self.stdout.write(json.dumps(summary, indent=2))
            return
        self.stdout.write(
            f"seed_scale: {result.patients} patients, {summary['total_rows']:,} rows in "
            f"{summary['seconds']} s (peak RSS {summary['peak_rss_mb']} MB)"
        )
        for label, count in summary["rows"].items():
            self.stdout.write(f"  {label:<32} {count:>12,}")
        for name, reason in result.domains_skipped.items():
            self.stdout.write(f"  skipped {name}: {reason}")
