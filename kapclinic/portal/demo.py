"""Demo journal (synthetic) for the demo patient: a shared intention and reflection on the past dosing
thread, private check-ins. The intention for today's session is left for the patient to write."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kapclinic.core import clock
from kapclinic.portal.models import JournalEntry
from kapclinic.scheduling.models import Appointment


def seed(ctx: Any) -> None:
    demo = ctx.demo_patient
    if JournalEntry.objects.filter(patient=demo).exists():
        return
    past = (
        Appointment.objects.filter(patient=demo, kind="dosing", status="completed")
        .order_by("-starts_at")
        .first()
    )
    now = clock.now()
    if past is not None:
        before = past.starts_at - dt.timedelta(days=1)
        JournalEntry.objects.create(
            patient=demo, kind="intention", appointment=past,
            text="I want to understand the heaviness I carry, without forcing anything.",
            created_at=before, updated_at=before, shared_at=before,
        )  # fmt: skip
        after = past.ends_at + dt.timedelta(hours=5)
        JournalEntry.objects.create(
            patient=demo, kind="reflection", appointment=past,
            text="I saw our old kitchen and felt warm for the first time in months. "
            "I cried, and it was okay.",
            created_at=after, updated_at=after, shared_at=after,
        )  # fmt: skip
    for days, mood, text in [(6, 3, "Tired but steady."), (2, 4, "Walked by the river. Lighter.")]:
        at = now - dt.timedelta(days=days)
        JournalEntry.objects.create(
            patient=demo, kind="checkin", mood=mood, text=text, created_at=at, updated_at=at
        )
