"""Text a template filter would produce, computed once in Python for list rows (issue #7).

Each ``{{ value|date:"..." }}`` in a loop resolves the variable, looks the filter up and converts the
time zone again for every row; a selector that builds its rows anyway can call these instead and hand
the template plain strings. The result is the same text the filter gives.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import dateformat, timezone


def _local(value: dt.date) -> dt.date:
    if isinstance(value, dt.datetime) and settings.USE_TZ and timezone.is_aware(value):
        return timezone.localtime(value)
    return value


def date_text(value: dt.date | None, fmt: str) -> str:
    """``{{ value|date:fmt }}``: in the current time zone, Django's date format characters."""
    if value is None:
        return ""
    return dateformat.format(_local(value), fmt)


def hhmm(value: dt.datetime | None) -> str:
    """``{{ value|time:"H:i" }}``: hours and minutes in the current time zone."""
    if value is None:
        return ""
    local = _local(value)
    assert isinstance(local, dt.datetime)
    return f"{local.hour:02d}:{local.minute:02d}"
