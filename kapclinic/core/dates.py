"""Plausible windows for every clinical date and time, in one place (issue 12).

A date outside its window is refused by the form with a sentence naming the field; nothing is clamped.
- Scheduling (appointments, dosing sessions, calendar bookings): from one year before today to two years
  after it.
- Service dates (the day a note documents, a paper questionnaire's completion day): not after today and
  not before the patient's birth.
- Birth dates: an age from 0 to 120 years.
- Calendar navigation (``?date=`` on the day, week and chair views) is not clinical data: any day from
  1900-01-01 to ten years ahead may be shown, so a month or week view never steps past what Python's
  dates can hold.

``form_check_*`` raise ``django.core.exceptions.ValidationError``; ``in_window`` is for pages that show
rows already stored (a row outside its window is shown and flagged, never a 500)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.core.exceptions import ValidationError

from kapclinic.core import clock

SCHEDULE_YEARS_BACK = 1
SCHEDULE_YEARS_AHEAD = 2
AGE_MAX_YEARS = 120
BROWSE_FIRST = dt.date(1900, 1, 1)
BROWSE_YEARS_AHEAD = 10


def add_years(day: dt.date, years: int) -> dt.date:
    """``day`` moved by whole years (29 February becomes 28 February in a common year)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def _fmt(day: dt.date) -> str:
    return f"{day:%d %B %Y}".lstrip("0")


def schedule_window(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    today = today or clock.today()
    return add_years(today, -SCHEDULE_YEARS_BACK), add_years(today, SCHEDULE_YEARS_AHEAD)


def birth_window(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    today = today or clock.today()
    return add_years(today, -AGE_MAX_YEARS), today


def browse_window(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    today = today or clock.today()
    return BROWSE_FIRST, add_years(today, BROWSE_YEARS_AHEAD)


def _as_date(value: dt.date | dt.datetime) -> dt.date:
    if isinstance(value, dt.datetime):
        from django.utils import timezone

        return timezone.localdate(value) if timezone.is_aware(value) else value.date()
    return value


def check_scheduled(label: str, value: dt.date | dt.datetime) -> None:
    """A scheduled day or time: from a year back to two years ahead."""
    lo, hi = schedule_window()
    day = _as_date(value)
    if not lo <= day <= hi:
        raise ValidationError(
            f"{label} must be between {_fmt(lo)} and {_fmt(hi)} (a year back to two years ahead).",
            code="out_of_window",
        )


def check_service_date(label: str, value: dt.date | dt.datetime, birth_date: dt.date | None = None) -> None:
    """A day care was given: not in the future and not before the patient's birth."""
    today = clock.today()
    day = _as_date(value)
    if day > today:
        raise ValidationError(f"{label} cannot be in the future.", code="future")
    first = birth_date or birth_window(today)[0]
    if day < first:
        what = "the patient's date of birth" if birth_date else f"{_fmt(first)}"
        raise ValidationError(f"{label} cannot be before {what} ({_fmt(first)}).", code="before_birth")


def check_birth_date(label: str, value: dt.date) -> None:
    """A date of birth: an age from 0 to 120 years."""
    lo, hi = birth_window()
    if value > hi:
        raise ValidationError(f"{label} cannot be in the future.", code="future")
    if value < lo:
        raise ValidationError(
            f"{label} is more than {AGE_MAX_YEARS} years ago; check the year (the earliest is {_fmt(lo)}).",
            code="too_old",
        )


def check_browse(label: str, value: dt.date) -> None:
    lo, hi = browse_window()
    if not lo <= value <= hi:
        raise ValidationError(f"{label} must be between {_fmt(lo)} and {_fmt(hi)}.", code="out_of_window")


def in_window(value: dt.date | dt.datetime | None, window: tuple[dt.date, dt.date]) -> bool:
    """Whether a stored value lies in ``window`` (for flagging rows stored before the checks existed)."""
    if value is None:
        return True
    return window[0] <= _as_date(value) <= window[1]


def scheduled_validator(label: str) -> Callable[[dt.date | dt.datetime], None]:
    """A form-field validator for ``check_scheduled`` (the message names the field by ``label``)."""

    def validate(value: dt.date | dt.datetime) -> None:
        check_scheduled(label, value)

    return validate


def birth_date_validator(label: str) -> Callable[[dt.date], None]:
    def validate(value: dt.date) -> None:
        check_birth_date(label, value)

    return validate


def browse_validator(label: str) -> Callable[[dt.date], None]:
    def validate(value: dt.date) -> None:
        check_browse(label, value)

    return validate


def implausible_stored(value: dt.date | dt.datetime | None) -> bool:
    """Whether a stored date or time lies outside anything a form accepts: before 1900-01-01 or more than
    two years ahead. Such rows (stored before these checks, or written around the forms) are shown with
    a flag, never hidden and never a 500."""
    if value is None:
        return False
    today = clock.today()
    return not in_window(value, (BROWSE_FIRST, add_years(today, SCHEDULE_YEARS_AHEAD)))
