"""The one retry rule for outbound email (messages and appointment reminders): five attempts, then give up.

Pure Python so both `messaging.services.deliver` and `scheduling.services.reminder_deliver` use the same
numbers. Operational, not clinical: a mail server that is down for a while is retried for about 7.5 hours
in all (5 + 15 + 45 + 135 + 240 minutes) before a person is asked to look.
"""

from __future__ import annotations

import datetime as dt

MAX_ATTEMPTS = 5


def retry_delay(attempt: int, base_minutes: int = 5, cap_minutes: int = 240) -> dt.timedelta:
    """Back-off before retry number `attempt` (1-based): 5, 15, 45, 135, 240 minutes."""
    minutes = base_minutes * (3 ** max(0, attempt - 1))
    return dt.timedelta(minutes=min(minutes, cap_minutes))


def error_class(exc: BaseException) -> str:
    """What is recorded about a failed send: the exception's class only (its text may hold addresses)."""
    return type(exc).__name__[:80]
