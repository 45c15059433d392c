from __future__ import annotations

from collections.abc import Callable
from typing import cast
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp import user_has_device

from kapclinic.accounts.models import STAFF_ROLES, Membership, Role
from kapclinic.core import clock
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
                    request.role = Role.PATIENT
                    request.patient = patient
        if request.clinic is None:
            return self.get_response(request)
        # One clock: every date and time of this request is read and shown in the clinic's zone.
        with timezone.override(request.clinic.zone):
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
    limit = settings.STAFF_IDLE_TIMEOUT_MINUTES * 60
    # The last activity, as the middleware counts it: this request if it is activity, the signed cookie,
    # and the session's record (the fallback).
    recorded = request.session.get(SESSION_LAST_SEEN)
    seen = [float(recorded)] if recorded is not None else []
    for value in (getattr(request, "kap_last_seen", None), _cookie_last_seen(request)):
        if value is not None:
            seen.append(float(value))
    if not seen:
        return int(limit)
    return max(0, int(limit - (clock.now().timestamp() - max(seen))))


def _enrolled(request: HttpRequest) -> bool:
    """Has this staff member set up an authenticator? Remembered for the session (the MFA view
    updates it), so pages do not pay two device queries each."""
    cached = request.session.get(SESSION_ENROLLED)
    if cached is None:
        cached = bool(user_has_device(request.user, confirmed=True))
        request.session[SESSION_ENROLLED] = cached
    return bool(cached)


def _last_seen_cookie_name() -> str:
    # The __Host- prefix (HTTPS only, this host, path /) wherever the session cookie is HTTPS-only.
    return ("__Host-" if settings.SESSION_COOKIE_SECURE else "") + "kap_seen"


def _last_seen_signer(request: HttpRequest) -> signing.Signer:
    # Salted with the session key: a cookie from another session (or from before sign-in) does not count.
    return signing.Signer(salt=f"kapclinic.accounts.last-seen:{request.session.session_key or ''}")


def _cookie_last_seen(request: HttpRequest) -> float | None:
    raw = request.COOKIES.get(_last_seen_cookie_name())
    if not raw:
        return None
    try:
        return float(_last_seen_signer(request).unsign(raw))
    except (signing.BadSignature, ValueError):
        return None


class StaffSecurityMiddleware:
    """Idle-session timeout for staff, and mandatory two-factor for staff when the setting says so.

    Staff are signed out once STAFF_IDLE_TIMEOUT_MINUTES have passed since their last activity (any
    request but the session page's status poll, which the browser sends by itself). The time of each
    activity travels in a signed cookie bound to the session (set on every active response: no database
    write per page). The session itself records it when half the timeout has passed since it last did: a
    floor should the cookie be missing (then the sign-out comes early, never late), and the save slides the
    session's own expiry for people at work. The later of the two counts; a client can only make it
    earlier (the cookie is signed with the secret key), never later than its last real request.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        role = getattr(request, "role", None)
        if not (request.user.is_authenticated and role in STAFF_ROLES):
            return self.get_response(request)
        now = clock.now().timestamp()
        limit = settings.STAFF_IDLE_TIMEOUT_MINUTES * 60
        recorded = request.session.get(SESSION_LAST_SEEN)
        seen = [float(recorded)] if recorded is not None else []
        from_cookie = _cookie_last_seen(request)
        if from_cookie is not None:
            seen.append(from_cookie)
        if seen and now - max(seen) > limit:
            logout(request)
            messages.info(request, "You were signed out after a period of inactivity.")
            response: HttpResponse = redirect(
                f"{reverse('accounts:login')}?{urlencode({'next': return_to(request)})}"
            )
            response.delete_cookie(_last_seen_cookie_name())
            return response
        active = counts_as_activity(request)
        if active:
            request.kap_last_seen = now  # type: ignore[attr-defined]  # read by idle_seconds_left
        if active and (recorded is None or now - float(recorded) >= limit / 2):
            request.session[SESSION_LAST_SEEN] = now
        if (
            not request.user.is_verified()  # type: ignore[attr-defined]  # added by OTPMiddleware
            and not request.path.startswith(_EXEMPT_PREFIXES)
            and (settings.MFA_REQUIRED_FOR_STAFF or _enrolled(request))
        ):
            response = redirect(f"{reverse('accounts:mfa')}?next={request.path}")
        else:
            response = self.get_response(request)
        if active and request.user.is_authenticated and request.session.session_key:
            response.set_cookie(
                _last_seen_cookie_name(),
                _last_seen_signer(request).sign(repr(now)),
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Lax",
            )
        return response
