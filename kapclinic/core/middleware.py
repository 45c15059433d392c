from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Callable
from typing import cast

from django.http import HttpRequest, HttpResponse

from kapclinic.core import request_cache
from kapclinic.core.logging import exception_class_name, safe_traceback, set_request_id
from kapclinic.core.request import KapRequest

log = logging.getLogger("kapclinic.request")


def log_server_error(sender: object, request: HttpRequest | None = None, **kwargs: object) -> None:
    """Receiver of Django's got_request_exception: one log line per 500, wherever it was raised.

    Django sends the signal for every exception that becomes a 500 (in a view or in a middleware, not
    for 404/403/400), from inside its ``except`` block, so the exception is ``sys.exc_info()``. Logged:
    the exception class, the URL *name* and the traceback's code lines (file, line, function, source);
    never the path (it may carry record ids), the exception message (it may quote patient data, e.g. an
    IntegrityError's values), local variables or the request body. No exc_info is attached, so every
    handler (console, a test's caplog, an error reporter) receives only this text.
    """
    exception = sys.exc_info()[1]
    if exception is None:
        return
    match = getattr(request, "resolver_match", None)
    view = match.view_name if match else "unresolved"
    name = exception_class_name(exception)
    log.error(
        "server error %s in view %s\n%s",
        name,
        view,
        safe_traceback(exception),
        extra={"request_id": getattr(request, "request_id", "-"), "view": view, "exception_class": name},
    )


class RequestIdMiddleware:
    """Give every request an id and echo it in X-Request-ID (server errors: `log_server_error`)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if incoming.isalnum() and len(incoming) <= 64 else uuid.uuid4().hex
        cast(KapRequest, request).request_id = rid
        set_request_id(rid)
        token = request_cache.open_memo()
        try:
            response = self.get_response(request)
        finally:
            request_cache.close_memo(token)
        response["X-Request-ID"] = rid
        set_request_id("-")
        return response


class NoStoreMiddleware:
    """Pages shown to a signed-in person may hold patient data: browsers and proxies must not keep them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and "Cache-Control" not in response:
            response["Cache-Control"] = "no-store"
        return response


class SecurityHeadersMiddleware:
    """A Content-Security-Policy on every response (settings.CONTENT_SECURITY_POLICY).

    Scripts come from this site only (no inline script, no eval), so a note or a name that somehow
    carried markup could not run code in a clinician's session; nothing may frame the pages; forms post
    only here. Styles come from this site's stylesheets only (no style attribute or <style> element), so
    injected markup cannot overlay or restyle a page; computed layout is applied through the CSSOM.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        from django.conf import settings

        self.policy: str = settings.CONTENT_SECURITY_POLICY

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response
