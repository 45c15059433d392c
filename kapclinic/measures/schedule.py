"""When is a measure due? Pure logic (no Django), kept deliberately simple and configurable.

Anchors (suggested schedule, docs/clinical-reference.md#measurement-schedule §6.3): a baseline at intake,
one before every dosing session, and a cadence during induction and maintenance. The cadence clock
restarts at each recorded dosing session and at each completed response (whichever is later).

A measure due *before a dosing session* becomes due ``window`` before the session starts and is overdue
once the session time has passed without a response. Baseline and cadence measures are due at their
time and overdue ``grace`` later. ``window`` and ``grace`` are operational settings, not clinical ones.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

INTAKE, INDUCTION, MAINTENANCE = "intake", "induction", "maintenance"


@dataclass(frozen=True)
class ScheduleRule:
    instrument: str
    at_intake: bool = True
    before_each_dosing: bool = False
    induction_every_days: int | None = None
    maintenance_every_days: int | None = None


#: Defaults per ref §6.3: PHQ-9 at intake and before each dosing session; GAD-7 at intake; PCL-5 at
#: intake (for patients with a trauma-related indication) and monthly ("most defensible", [S63]).
DEFAULT_RULES: dict[str, ScheduleRule] = {
    "PHQ-9": ScheduleRule("PHQ-9", at_intake=True, before_each_dosing=True),
    "GAD-7": ScheduleRule("GAD-7", at_intake=True),
    "PCL-5": ScheduleRule("PCL-5", at_intake=True, induction_every_days=30, maintenance_every_days=30),
}


@dataclass(frozen=True)
class Due:
    instrument: str
    due_at: dt.datetime
    reason: str  # "baseline", "before_dosing", "cadence"
    due: bool
    overdue: bool

    @property
    def reason_label(self) -> str:
        return {
            "baseline": "Baseline at intake",
            "before_dosing": "Before the next dosing session",
            "cadence": "Regular check",
        }[self.reason]


def next_due(
    rule: ScheduleRule,
    *,
    now: dt.datetime,
    phase: str,
    intake_at: dt.datetime,
    last_response_at: dt.datetime | None,
    last_dosing_at: dt.datetime | None,
    next_dosing_at: dt.datetime | None,
    window: dt.timedelta = dt.timedelta(days=2),
    grace: dt.timedelta = dt.timedelta(days=2),
) -> Due | None:
    """The earliest pending occasion for this instrument, or ``None`` if nothing is pending."""
    candidates: list[Due] = []
    if last_response_at is None and rule.at_intake:
        candidates.append(
            Due(rule.instrument, intake_at, "baseline", now >= intake_at, now > intake_at + grace)
        )
    # Before a dosing session: satisfied by a response inside the window before that session.
    if (
        rule.before_each_dosing
        and next_dosing_at is not None
        and (last_response_at is None or last_response_at < next_dosing_at - window)
    ):
        opens = next_dosing_at - window
        candidates.append(
            Due(rule.instrument, next_dosing_at, "before_dosing", now >= opens, now > next_dosing_at)
        )
    every = {INDUCTION: rule.induction_every_days, MAINTENANCE: rule.maintenance_every_days}.get(phase)
    if every and last_response_at is not None:
        anchor = max(last_response_at, last_dosing_at) if last_dosing_at else last_response_at
        at = anchor + dt.timedelta(days=every)
        candidates.append(Due(rule.instrument, at, "cadence", now >= at, now > at + grace))
    if not candidates:
        return None
    return min(candidates, key=lambda d: d.due_at)
