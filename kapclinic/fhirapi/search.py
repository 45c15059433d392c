"""Parsing FHIR search values strictly (docs/fhir-api.md#search): a value that is not valid is a 400
OperationOutcome naming the parameter, never a guess and never silently ignored."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.core import signing

from kapclinic.core.params import MAX_ID
from kapclinic.fhirapi.outcome import FhirError

DEFAULT_COUNT = 50
MAX_COUNT = 200  # a larger _count is clamped (FHIR paging: a server may return fewer) with a warning entry

_DATE = re.compile(
    r"^(?P<prefix>eq|ne|gt|lt|ge|le|sa|eb|ap)?"
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})(?P<time>T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_CURSOR_SALT = "kapclinic.fhirapi.cursor"


def invalid(name: str, reason: str) -> FhirError:
    return FhirError(400, "invalid", f"The search parameter {name} is not valid: {reason}")


def parse_id(name: str, value: str, prefix: str) -> int:
    """A resource id such as `p12` (Patient) -> 12."""
    if not value.startswith(prefix) or not value[len(prefix) :].isdigit():
        raise invalid(name, f"{value[:40]!r} is not an id of this server ({prefix}<number>).")
    number = int(value[len(prefix) :])
    if not 1 <= number <= MAX_ID:
        raise invalid(name, "the id is out of range.")
    return number


def parse_reference(name: str, value: str, resource_type: str, prefix: str) -> int:
    """`Patient/p12` or `p12` -> 12."""
    if "/" in value:
        kind, _, value = value.rpartition("/")
        if kind.rsplit("/", 1)[-1] != resource_type:
            raise invalid(name, f"only {resource_type} references are supported.")
    return parse_id(name, value, prefix)


def parse_token(value: str) -> tuple[str | None, str]:
    """`system|code` -> (system, code); `code` -> (None, code); `|code` -> ("", code)."""
    if "|" in value:
        system, _, code = value.partition("|")
        return system, code
    return None, value


def parse_date(name: str, value: str) -> tuple[str, dt.datetime, dt.datetime]:
    """A FHIR date search value -> (prefix, start, end) of the instant range it names (end exclusive).

    Supported prefixes: eq (default), gt, lt, ge, le. A time must carry its zone (Z or +hh:mm)."""
    match = _DATE.match(value)
    if match is None:
        raise invalid(name, f"{value[:40]!r} is not a date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime).")
    prefix = match["prefix"] or "eq"
    if prefix not in ("eq", "gt", "lt", "ge", "le"):
        raise invalid(name, f"the prefix {prefix!r} is not supported (eq, gt, lt, ge, le).")
    try:
        if match["time"]:
            if not re.search(r"(Z|[+-]\d{2}:\d{2})$", match["time"]):
                raise invalid(name, "a time needs its time zone (Z or +hh:mm).")
            start = dt.datetime.fromisoformat(value[len(match["prefix"] or "") :].replace("Z", "+00:00"))
            precision = dt.timedelta(seconds=1)
            end = start + precision
        elif match["d"]:
            day = dt.date(int(match["y"]), int(match["m"]), int(match["d"]))
            start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
            end = start + dt.timedelta(days=1)
        elif match["m"]:
            month = int(match["m"])
            start = dt.datetime(int(match["y"]), month, 1, tzinfo=dt.UTC)
            end = dt.datetime(int(match["y"]) + month // 12, month % 12 + 1, 1, tzinfo=dt.UTC)
        else:
            start = dt.datetime(int(match["y"]), 1, 1, tzinfo=dt.UTC)
            end = dt.datetime(int(match["y"]) + 1, 1, 1, tzinfo=dt.UTC)
    except ValueError as exc:
        raise invalid(name, f"{value[:40]!r} is not a real date.") from exc
    return prefix, start, end


def date_lookups(field: str, prefix: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    if prefix == "ge":
        return {f"{field}__gte": start}
    if prefix == "gt":
        return {f"{field}__gte": end}
    if prefix == "le":
        return {f"{field}__lt": end}
    if prefix == "lt":
        return {f"{field}__lt": start}
    return {f"{field}__gte": start, f"{field}__lt": end}


def parse_count(value: str) -> tuple[int, bool]:
    """`_count` -> (count, clamped). Not a whole number >= 0: 400. Above MAX_COUNT: MAX_COUNT, clamped."""
    if not value.isdigit() or len(value) > 18:
        raise invalid("_count", "it must be a whole number from 0.")
    count = int(value)
    if count > MAX_COUNT:
        return MAX_COUNT, True
    return count, False


def make_cursor(sort: str, key: list[Any]) -> str:
    return signing.dumps({"s": sort, "k": key}, salt=_CURSOR_SALT, compress=True)


def read_cursor(value: str, sort: str) -> list[Any]:
    try:
        data = signing.loads(value, salt=_CURSOR_SALT)
    except signing.BadSignature:
        raise invalid("_cursor", "it is not a page link of this server.") from None
    if not isinstance(data, dict) or data.get("s") != sort or not isinstance(data.get("k"), list):
        raise invalid("_cursor", "it belongs to another sort order.")
    return list(data["k"])
