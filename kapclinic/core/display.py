"""Text a template filter would produce, computed once in Python for list rows (issue #7).

Each ``{{ value|date:"..." }}`` in a loop resolves the variable, looks the filter up and converts the
time zone again for every row; a selector that builds its rows anyway can call these instead and hand
the template plain strings. The result is the same text the filter gives.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import dateformat, timezone
from django.utils.dates import MONTHS, MONTHS_3, WEEKDAYS, WEEKDAYS_ABBR
from django.utils.translation import get_language


def _local(value: dt.date) -> dt.date:
    if isinstance(value, dt.datetime) and settings.USE_TZ and timezone.is_aware(value):
        return timezone.localtime(value)
    return value


#: Month and weekday names per language, as Django's date format gives them (F, M, l, D).
_NAMES: dict[str | None, tuple[tuple[str, ...], ...]] = {}


def _names() -> tuple[tuple[str, ...], ...]:
    language = get_language()
    names = _NAMES.get(language)
    if names is None:
        names = _NAMES[language] = (
            tuple(str(MONTHS[m]) for m in range(1, 13)),
            tuple(str(MONTHS_3[m]).title() for m in range(1, 13)),
            tuple(str(WEEKDAYS[d]) for d in range(7)),
            tuple(str(WEEKDAYS_ABBR[d]) for d in range(7)),
        )
    return names


def _quick(value: dt.datetime, fmt: str) -> str | None:
    """``dateformat.format`` for the format characters list pages use (d D F H i j l m M n s Y and
    punctuation), without building a formatter and translating names per call; None for any other
    format (then dateformat does it)."""
    months, months3, weekdays, weekdays3 = _names()
    out = []
    for ch in fmt:
        if ch == "j":
            out.append(str(value.day))
        elif ch == "d":
            out.append(f"{value.day:02d}")
        elif ch == "D":
            out.append(weekdays3[value.weekday()])
        elif ch == "l":
            out.append(weekdays[value.weekday()])
        elif ch == "M":
            out.append(months3[value.month - 1])
        elif ch == "F":
            out.append(months[value.month - 1])
        elif ch == "m":
            out.append(f"{value.month:02d}")
        elif ch == "n":
            out.append(str(value.month))
        elif ch == "Y":
            out.append(f"{value.year:04d}")
        elif ch == "H":
            out.append(f"{value.hour:02d}")
        elif ch == "i":
            out.append(f"{value.minute:02d}")
        elif ch == "s":
            out.append(f"{value.second:02d}")
        elif ch.isalpha() or ch == "\\":
            return None
        else:
            out.append(ch)
    return "".join(out)


def date_text(value: dt.date | None, fmt: str) -> str:
    """``{{ value|date:fmt }}``: in the current time zone, Django's date format characters."""
    if value is None:
        return ""
    local = _local(value)
    if isinstance(local, dt.datetime):
        quick = _quick(local, fmt)
        if quick is not None:
            return quick
    return dateformat.format(local, fmt)


def hhmm(value: dt.datetime | None) -> str:
    """``{{ value|time:"H:i" }}``: hours and minutes in the current time zone."""
    if value is None:
        return ""
    local = _local(value)
    assert isinstance(local, dt.datetime)
    return f"{local.hour:02d}:{local.minute:02d}"
