from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
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
                return redirect(f"{reverse('accounts:login')}?next={request.path}")
            # Writing the session on every request would cost a database write per page; a
            # resolution of a minute is plenty for a timeout counted in minutes.
            if (last is None or now - float(last) > 60) and request.headers.get("HX-Trigger-Name") != "poll":
                request.session[SESSION_LAST_SEEN] = now
            if (
                not request.user.is_verified()  # type: ignore[attr-defined]  # added by OTPMiddleware
                and not request.path.startswith(_EXEMPT_PREFIXES)
                and (settings.MFA_REQUIRED_FOR_STAFF or _enrolled(request))
            ):
                return redirect(f"{reverse('accounts:mfa')}?next={request.path}")
        return self.get_response(request)
