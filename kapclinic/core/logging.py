"""Request ids on every log line. Log messages must never contain patient data."""

from __future__ import annotations

import logging
import threading

_local = threading.local()


def set_request_id(value: str) -> None:
    _local.request_id = value


def get_request_id() -> str:
    return getattr(_local, "request_id", "-")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = get_request_id()
        return True
