"""Request ids on every log line, and tracebacks that never carry patient data.

Log messages must never contain patient data. A traceback is what makes a 500 diagnosable, so it is
logged, but only as *code*: for each exception in the chain its class, then each frame's file, line,
function and source line. Never the exception's message (an IntegrityError quotes the row's values, a
ValueError the bad input) and never local variables or the request body.
"""

from __future__ import annotations

import logging
import threading
import traceback
from types import TracebackType

_local = threading.local()

# How many chained exceptions (raise ... from / during handling of) a safe traceback follows.
MAX_CHAIN = 5


def set_request_id(value: str) -> None:
    _local.request_id = value


def get_request_id() -> str:
    return getattr(_local, "request_id", "-")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = get_request_id()
        return True


def exception_class_name(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"


def _frames(tb: TracebackType | None) -> list[str]:
    lines: list[str] = []
    # lookup_lines reads the source line of each frame; capture_locals stays off (the default).
    for frame in traceback.extract_tb(tb):
        lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    return lines


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and the ones it was raised from or while handling, oldest first."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < MAX_CHAIN:
        chain.append(current)
        seen.add(id(current))
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    return list(reversed(chain))


def safe_traceback(exc: BaseException) -> str:
    """Python's traceback layout with each exception's message replaced by its class name only."""
    blocks: list[str] = []
    for position, item in enumerate(_chain(exc)):
        if position:
            blocks.append(
                "The above exception was the direct cause of the following exception:"
                if item.__cause__ is not None
                else "During handling of the above exception, another exception occurred:"
            )
        lines = ["Traceback (most recent call last):", *_frames(item.__traceback__)]
        lines.append(f"{exception_class_name(item)} (message withheld: it may quote patient data)")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


class SafeTracebackFormatter(logging.Formatter):
    """A formatter whose tracebacks (log.exception, exc_info=True) show code, never exception messages."""

    def formatException(
        self,
        ei: tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None],
    ) -> str:
        exc = ei[1]
        if exc is None:
            return ""
        return safe_traceback(exc)
