"""Consent on a tablet: a kiosk mode in which the patient sees only the document and the signature step.

A staff member starts it from the patient's consent page and hands the tablet over. While it is on, the
staff session reaches nothing but the kiosk pages (every other address leads back to the document), the
page carries no menu, no staff name and no link out, and returning to the staff view needs the staff
member's password. Five wrong passwords end the staff session altogether.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import Resolver404, resolve

SESSION_KIOSK = "kap_consent_kiosk"
KIOSK_VIEWS = frozenset({"consent:kiosk", "consent:kiosk_exit"})
EXIT_ATTEMPTS = 5


def kiosk_state(request: HttpRequest) -> dict[str, Any] | None:
    session = getattr(request, "session", None)
    state = session.get(SESSION_KIOSK) if session is not None else None
    if not state or not request.user.is_authenticated or state.get("user_id") != request.user.pk:
        return None
    return dict(state)


def kiosk_begin(request: HttpRequest, patient_id: int) -> None:
    request.session[SESSION_KIOSK] = {"user_id": request.user.pk, "patient_id": patient_id, "failures": 0}


def kiosk_end(request: HttpRequest) -> None:
    request.session.pop(SESSION_KIOSK, None)


class KioskMiddleware:
    """While a kiosk is on, every request other than the kiosk's own pages goes back to the document."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if kiosk_state(request) is not None and not request.path.startswith(settings.STATIC_URL):
            try:
                name = resolve(request.path_info).view_name
            except Resolver404:
                name = ""
            if name not in KIOSK_VIEWS:
                response = redirect("consent:kiosk")
                if getattr(request, "htmx", False):
                    response["HX-Redirect"] = response["Location"]
                return response
        return self.get_response(request)
