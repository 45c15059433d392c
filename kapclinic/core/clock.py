"""The one clock of the application.

Everything time-based (observation minimums, link expiry, overdue alerts, idle timeouts) reads
`now()` so that tests can freeze or advance time without patching Django. Outside tests the clock is
simply `django.utils.timezone.now()`.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.utils import timezone

_lock = threading.Lock()
_frozen: dt.datetime | None = None
_offset = dt.timedelta(0)


def now() -> dt.datetime:
    if _frozen is not None:
        return _frozen
    return timezone.now() + _offset


def today() -> dt.date:
    return timezone.localdate(now())


def freeze(at: dt.datetime) -> None:
    """Stop the clock at `at` (aware datetime)."""
    global _frozen
    if timezone.is_naive(at):
        raise ValueError("freeze() needs an aware datetime")
    with _lock:
        _frozen = at


def advance(delta: dt.timedelta) -> None:
    """Move the clock forward; works whether it is frozen or running."""
    global _frozen, _offset
    with _lock:
        if _frozen is not None:
            _frozen = _frozen + delta
        else:
            _offset = _offset + delta


def reset() -> None:
    global _frozen, _offset
    with _lock:
        _frozen = None
        _offset = dt.timedelta(0)


@contextmanager
def frozen_at(at: dt.datetime) -> Iterator[None]:
    freeze(at)
    try:
        yield
    finally:
        reset()
