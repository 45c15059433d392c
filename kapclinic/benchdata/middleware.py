from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.db import connections
from django.http import HttpRequest, HttpResponse


class QueryCountMiddleware:
    """Adds `X-Bench-Queries: <n>` (SQL statements run for this request, all databases). Active
    only when settings.KAP_BENCH is true (the bench settings), so it never runs in production."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not getattr(settings, "KAP_BENCH", False):
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        count = [0]

        def counter(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
            count[0] += 1
            return execute(sql, params, many, context)

        wrappers = [conn.execute_wrapper(counter) for conn in connections.all(initialized_only=True)]
        if not wrappers:
            wrappers = [connections["default"].execute_wrapper(counter)]
        for w in wrappers:
            w.__enter__()
        try:
            response = self.get_response(request)
        finally:
            for w in reversed(wrappers):
                w.__exit__(None, None, None)
        response["X-Bench-Queries"] = str(count[0])
        return response
