from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp import user_has_device

from kapclinic.accounts.models import STAFF_ROLES, Membership
from kapclinic.core.request import KapRequest

SESSION_CLINIC = "kap_clinic_id"
SESSION_LAST_SEEN = "kap_last_seen"


class ClinicContextMiddleware:
    """Set request.clinic, request.role, request.patient and request.user_clinics for the signed-in user."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, http_request: HttpRequest) -> HttpResponse:
        request = cast(KapRequest, http_request)
        request.clinic = None
        request.role = None
        request.patient = None
        request.user_clinics = ()
        user = request.user
        if user.is_authenticated:
            from kapclinic.patients.models import Patient

            memberships = list(
                Membership.objects.filter(user=user, is_active=True, clinic__is_active=True).select_related(
                    "clinic"
                )
            )
            if memberships:
                request.user_clinics = tuple(m.clinic for m in memberships)
                wanted = request.session.get(SESSION_CLINIC)
                chosen = next((m for m in memberships if m.clinic_id == wanted), memberships[0])
                request.clinic = chosen.clinic
                request.role = chosen.role
            else:
                patient = Patient.objects.select_related("clinic").filter(user=user).first()
                if patient is not None and patient.clinic.is_active:
                    request.clinic = patient.clinic
                    request.role = "patient"
                    request.patient = patient
        return self.get_response(request)


_EXEMPT_PREFIXES = (
    "/account/login",
    "/account/logout",
    "/account/mfa",
    "/account/password-reset",
    "/static/",
    "/healthz",
)


SESSION_ENROLLED = "kap_mfa_enrolled"

#: GET requests that only ask how long the session has left (the idle warning's check, issue #18): they
#: must never keep an unattended session alive.
PASSIVE_PATHS = ("/account/session/",)


def counts_as_activity(request: HttpRequest) -> bool:
    """Does this request show that someone is at the keyboard? Background polls do not."""
    if request.headers.get("HX-Trigger-Name") == "poll":
        return False
    return not (request.method == "GET" and request.path in PASSIVE_PATHS)


def return_to(request: HttpRequest) -> str:
    """The page the person was on, for the sign-in page's ?next= after an idle sign-out. A background
    request (htmx, or the page's own fetch) names its page in HX-Current-URL; a POST returns to the page
    it was posted from (the long forms post to their own address); anything off this site gives way to
    the dashboard."""
    current = request.headers.get("HX-Current-URL", "")
    if current:
        parts = urlsplit(current)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
    elif request.method == "GET":
        target = request.get_full_path()
    else:
        target = request.path
    if target.startswith("/") and url_has_allowed_host_and_scheme(target, allowed_hosts=None):
        return target
    return reverse("core:home")


def idle_seconds_left(request: HttpRequest) -> int | None:
    """Seconds before a staff session is signed out for inactivity (None for patients and visitors)."""
    if not request.user.is_authenticated or getattr(request, "role", None) not in STAFF_ROLES:
        return None
    last = request.session.get(SESSION_LAST_SEEN)
    limit = settings.STAFF_IDLE_TIMEOUT_MINUTES * 60
    if last is None:
        return int(limit)
    return max(0, int(limit - (time.time() - float(last))))


def _enrolled(request: HttpRequest) -> bool:
    """Has this staff member set up an authenticator? Remembered for the session (the MFA view
    updates it), so pages do not pay two device queries each."""
    cached = request.session.get(SESSION_ENROLLED)
    if cached is None:
        cached = bool(user_has_device(request.user, confirmed=True))
        request.session[SESSION_ENROLLED] = cached
    return bool(cached)


class StaffSecurityMiddleware:
    """Idle-session timeout for staff, and mandatory two-factor for staff when the setting says so."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        role = getattr(request, "role", None)
        if request.user.is_authenticated and role in STAFF_ROLES:
            now = time.time()
            last = request.session.get(SESSION_LAST_SEEN)
            limit = settings.STAFF_IDLE_TIMEOUT_MINUTES * 60
            if last is not None and now - float(last) > limit:
                logout(request)
                messages.info(request, "You were signed out after a period of inactivity.")
                return redirect(f"{reverse('accounts:login')}?{urlencode({'next': return_to(request)})}")
            # Writing the session on every request would cost a database write per page; a
            # resolution of a minute is plenty for a timeout counted in minutes.
            if (last is None or now - float(last) > 60) and counts_as_activity(request):
                request.session[SESSION_LAST_SEEN] = now
            if (
                not request.user.is_verified()  # type: ignore[attr-defined]  # added by OTPMiddleware
                and not request.path.startswith(_EXEMPT_PREFIXES)
                and (settings.MFA_REQUIRED_FOR_STAFF or _enrolled(request))
            ):
                return redirect(f"{reverse('accounts:mfa')}?next={request.path}")
        return self.get_response(request)
