"""Values remembered for the length of one request (clinic settings rows read by several panels).

RequestIdMiddleware opens a fresh memo for each request and drops it at the end, so nothing outlives
the request and nothing is shared between requests or threads. Outside a request (commands, tasks,
tests calling services directly) ``remember`` simply computes. A service that changes a remembered
value calls ``forget()`` so the rest of the request reads the new one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from contextvars import ContextVar, Token
from typing import Any, TypeVar

T = TypeVar("T")

_memo: ContextVar[dict[Hashable, Any] | None] = ContextVar("kapclinic_request_memo", default=None)


def open_memo() -> Token[dict[Hashable, Any] | None]:
    return _memo.set({})


def close_memo(token: Token[dict[Hashable, Any] | None]) -> None:
    _memo.reset(token)


def remember(key: Hashable, compute: Callable[[], T]) -> T:
    memo = _memo.get()
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    value: T = memo[key]
    return value


def forget() -> None:
    memo = _memo.get()
    if memo is not None:
        memo.clear()
