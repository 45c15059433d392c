from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import cast

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse

from kapclinic.core import request_cache
from kapclinic.core.logging import set_request_id
from kapclinic.core.request import KapRequest

log = logging.getLogger("kapclinic.request")


class RequestIdMiddleware:
    """Give every request an id, echo it in X-Request-ID, and log server errors with it (and no PHI)."""

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

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        if isinstance(exception, (Http404, PermissionDenied, BadRequest, SuspiciousOperation)):
            return  # answered 404, 403 or 400: not a server error
        # Only the exception type and the URL *name* are logged: paths may carry record ids and
        # exception messages may quote patient data.
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match else "unresolved"
        log.error("server error %s in view %s", type(exception).__name__, view)


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
