from __future__ import annotations

import base64
from io import BytesIO
from typing import Any
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from kapclinic.accounts.forms import (
    BackupCodeForm,
    ClinicDetailsForm,
    EmailAuthenticationForm,
    GenerateBackupCodesForm,
    InviteForm,
    QueuedPasswordResetForm,
    TokenForm,
)
from kapclinic.accounts.middleware import (
    SESSION_CLINIC,
    SESSION_ENROLLED,
    SESSION_LAST_SEEN,
    idle_seconds_left,
)
from kapclinic.accounts.models import STAFF_ROLES, Clinic, Membership, User
from kapclinic.accounts.services import (
    BACKUP_CODE_COUNT,
    BACKUP_CODES_LOW,
    SESSION_ENROLMENT_DEVICE,
    BackupCodeOutcome,
    backup_codes_remaining,
    claim_enrolment_link,
    clinic_update,
    confirm_enrolment,
    generate_backup_codes,
    has_authenticator,
    send_enrolment_link,
    staff_deactivate,
    staff_invite,
    staff_reactivate,
    use_backup_code,
)
from kapclinic.core import clock
from kapclinic.core.actor import actor_from_request
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.core.params import BadParameter, id_param
from kapclinic.policy import ClinicAction, refuse, require_clinic


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    pass


@require_GET
def session_status(request: HttpRequest) -> HttpResponse:
    """How long this session has before the idle sign-out (the page's warning asks before it shows).
    Asking is not activity: the middleware leaves the session's clock alone for this GET."""
    if not request.user.is_authenticated:
        return JsonResponse({"signed_in": False, "seconds_left": None})
    return JsonResponse({"signed_in": True, "seconds_left": idle_seconds_left(request)})


@require_POST
def session_stay(request: HttpRequest) -> HttpResponse:
    """ "Stay signed in" on the idle warning: counts as activity, whatever the middleware's resolution."""
    if not request.user.is_authenticated:
        return JsonResponse({"signed_in": False, "seconds_left": None}, status=401)
    request.session[SESSION_LAST_SEEN] = clock.now().timestamp()
    return JsonResponse({"signed_in": True, "seconds_left": idle_seconds_left(request)})


def _qr_svg(uri: str) -> str:
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = BytesIO()
    image.save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def _safe_next(request: HttpRequest) -> str | None:
    """The ?next= address if it stays on this site (an absolute URL elsewhere would be an open redirect)."""
    target = request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return None


def _with_next(url: str, next_url: str | None) -> str:
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url


#: An enrolment link opened before signing in waits here (its token) until the person has signed in.
SESSION_PENDING_ENROLMENT = "kap_mfa_enrolment_pending"


def _enrolment_device(request: HttpRequest, user: User) -> TOTPDevice | None:
    """The unconfirmed authenticator this session may show and confirm: only after its owner opened a
    valid enrolment link in this session (a password alone never reveals a secret)."""
    device_id = request.session.get(SESSION_ENROLMENT_DEVICE)
    if device_id is None:
        return None
    return TOTPDevice.objects.filter(pk=device_id, user=user, confirmed=False).first()


def _needs_link(request: HttpRequest, error: str = "", status: int = 200) -> HttpResponse:
    context = {
        "needs_link": True,
        "link_error": error,
        "enrolled": has_authenticator(request.user),  # type: ignore[arg-type]
    }
    return render(request, "accounts/mfa.html", context, status=status)


@login_required
def mfa(request: HttpRequest) -> HttpResponse:
    """Verify (or first set up) the staff member's authenticator app.

    Setting one up needs the enrolment link emailed to the person (mfa_enrol); without it the page
    says how to get one. Once this session is verified the page shows that two-factor sign-in is on
    and links to the backup codes page (or, when a ?next= page is waiting, goes straight there)."""
    user = request.user
    if user.is_verified():  # type: ignore[union-attr]
        next_url = _safe_next(request)
        if next_url:
            return redirect(next_url)
        remaining = backup_codes_remaining(user)  # type: ignore[arg-type]
        status_context = {"verified": True, "remaining": remaining, "count": BACKUP_CODE_COUNT}
        return render(request, "accounts/mfa.html", status_context)
    # Only an authenticator app counts here: backup codes back one up, they do not replace it.
    device: TOTPDevice | None = None
    if not has_authenticator(user):  # type: ignore[arg-type]
        device = _enrolment_device(request, user)  # type: ignore[arg-type]
        if device is None:
            return _needs_link(request, status=400 if request.method == "POST" else 200)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        token = form.cleaned_data["token"]
        candidates = (
            [device] if device is not None else list(TOTPDevice.objects.filter(user=user, confirmed=True))
        )
        for candidate in candidates:
            allowed, _info = candidate.verify_is_allowed()
            if not allowed:
                form.add_error(
                    "token", "Too many wrong codes in a row. Wait a few seconds, then try the newest code."
                )
                break
            if candidate.verify_token(token):
                first_setup = not candidate.confirmed
                if first_setup:
                    confirm_enrolment(actor_from_request(request), candidate)
                    request.session.pop(SESSION_ENROLMENT_DEVICE, None)
                otp_login(request, candidate)
                request.session[SESSION_ENROLLED] = True
                next_url = _safe_next(request)
                if first_setup and getattr(request, "role", None) in STAFF_ROLES:
                    messages.success(
                        request,
                        "Two-factor sign-in is set up. Now create backup codes, so you can still sign in "
                        "if you lose your phone.",
                    )
                    return redirect(_with_next(reverse("accounts:backup_codes"), next_url))
                messages.success(request, "Two-factor verification complete.")
                return redirect(next_url or "core:home")
        else:
            form.add_error(
                "token", "That code is not valid. Check your device's clock and try the newest code."
            )
    context: dict[str, Any] = {
        "form": form,
        "setup": device is not None,
        "backup_url": _with_next(reverse("accounts:mfa_backup"), _safe_next(request)),
    }
    if device is not None:
        context["secret"] = base64.b32encode(device.bin_key).decode()
        context["qr"] = _qr_svg(device.config_url)
    return render(request, "accounts/mfa.html", context)


def mfa_enrol(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed enrolment link. Signed in: spend it and go on to set up the authenticator.
    Not signed in yet: keep the token in the session (not in the login page's address) and sign in
    first; the link is opened right after (mfa_enrol_resume)."""
    if not request.user.is_authenticated:
        request.session[SESSION_PENDING_ENROLMENT] = token
        resume = reverse("accounts:mfa_enrol_resume")
        return redirect(f"{reverse('accounts:login')}?{urlencode({'next': resume})}")
    request.session.pop(SESSION_PENDING_ENROLMENT, None)
    try:
        device = claim_enrolment_link(actor_from_request(request), token)
    except DomainError as exc:
        return _needs_link(request, error=str(exc), status=400)
    request.session[SESSION_ENROLMENT_DEVICE] = device.pk
    return redirect("accounts:mfa")


@login_required
def mfa_enrol_resume(request: HttpRequest) -> HttpResponse:
    """After signing in: open the enrolment link that was waiting in the session."""
    token = request.session.pop(SESSION_PENDING_ENROLMENT, None)
    if token is None:
        return redirect("accounts:mfa")
    return mfa_enrol(request, str(token))


@login_required
def mfa_backup(request: HttpRequest) -> HttpResponse:
    """The verification step with a backup code instead of the authenticator app's code."""
    if request.user.is_verified():  # type: ignore[union-attr]
        return redirect(_safe_next(request) or "core:home")
    form = BackupCodeForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            result = use_backup_code(actor_from_request(request), form.cleaned_data["code"])
            if result.outcome is BackupCodeOutcome.ACCEPTED:
                otp_login(request, result.device)
                request.session[SESSION_ENROLLED] = True
                messages.success(request, "Signed in with a backup code. That code cannot be used again.")
                if result.remaining <= BACKUP_CODES_LOW:
                    left = (
                        "no backup codes"
                        if result.remaining == 0
                        else (
                            "1 backup code" if result.remaining == 1 else f"{result.remaining} backup codes"
                        )
                    )
                    messages.warning(
                        request,
                        f"You have {left} left. Create a new set on the backup codes page "
                        "(it replaces the old codes).",
                    )
                return redirect(_safe_next(request) or "core:home")
            if result.outcome is BackupCodeOutcome.THROTTLED:
                form.add_error("code", "Too many wrong codes in a row. Wait a little, then try again.")
            else:
                form.add_error(
                    "code",
                    "That backup code is not valid or has already been used. Check it and try another.",
                )
    context = {"form": form, "totp_url": _with_next(reverse("accounts:mfa"), _safe_next(request))}
    return render(request, "accounts/mfa_backup.html", context, status=status)


@login_required
def backup_codes(request: HttpRequest) -> HttpResponse:
    """Staff create one-time backup codes for two-factor sign-in; the codes are shown only here,
    once, in the response to the POST that made them. GET shows how many unused codes remain."""
    if getattr(request, "role", None) not in STAFF_ROLES:
        raise refuse(request, "Backup codes are for staff accounts.")
    user = request.user
    has_authenticator = TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    if has_authenticator and not user.is_verified():  # type: ignore[union-attr]
        # The middleware normally sends this session to verify first; never hand out codes before.
        return redirect(_with_next(reverse("accounts:mfa"), request.path))
    remaining = backup_codes_remaining(user)  # type: ignore[arg-type]
    replacing = bool(remaining)
    form = GenerateBackupCodesForm(request.POST if request.method == "POST" else None, replacing=replacing)
    context: dict[str, Any] = {
        "form": form,
        "has_authenticator": has_authenticator,
        "remaining": remaining,
        "count": BACKUP_CODE_COUNT,
        "next_url": _safe_next(request) or reverse("core:home"),
    }
    if request.method == "POST":
        if not has_authenticator or not form.is_valid():
            return render(request, "accounts/backup_codes.html", context, status=400)
        try:
            codes = generate_backup_codes(actor_from_request(request))
        except DomainError as exc:  # the authenticator was removed meanwhile
            form.add_error(None, str(exc))
            return render(request, "accounts/backup_codes.html", context, status=400)
        context.update({"codes": codes, "remaining": len(codes), "form": None})
    return render(request, "accounts/backup_codes.html", context)


@login_required
@require_POST
def switch_clinic(request: HttpRequest) -> HttpResponse:
    try:
        wanted = id_param(request.POST, "clinic")
    except BadParameter:
        wanted = None
    ids = {c.pk for c in getattr(request, "user_clinics", ())}
    if wanted not in ids:
        messages.error(request, "You are not a member of that clinic.")
    else:
        request.session[SESSION_CLINIC] = wanted
    return redirect("core:home")


@login_required
def staff_list(request: HttpRequest) -> HttpResponse:
    actor = require_clinic(request, ClinicAction.MANAGE_STAFF)
    form = InviteForm(request.POST or None, clinic=actor.clinic)
    if request.method == "POST" and form.is_valid():
        staff_invite(actor, actor.clinic, **form.cleaned_data)  # type: ignore[arg-type]
        messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
        return redirect("accounts:staff")
    memberships = (
        Membership.objects.filter(clinic=actor.clinic)
        .select_related("user")
        .annotate(has_mfa=Exists(TOTPDevice.objects.filter(user=OuterRef("user"), confirmed=True)))
        .order_by("-is_active", "user__full_name")
    )
    page = Paginator(memberships, 50).get_page(request.GET.get("page"))
    return render(request, "accounts/staff.html", {"page": page, "form": form})


@login_required
@require_POST
def staff_toggle(request: HttpRequest, membership_id: int) -> HttpResponse:
    actor = require_clinic(request, ClinicAction.MANAGE_STAFF)
    membership = get_object_or_404(
        Membership.objects.select_related("user"), pk=membership_id, clinic=actor.clinic
    )
    if membership.user_id == actor.user_id:
        raise refuse(request, "You cannot deactivate your own account.")
    if membership.is_active:
        try:
            staff_deactivate(actor, membership)
        except DomainError as exc:
            messages.error(request, str(exc))
            return redirect("accounts:staff")
        messages.success(request, f"{membership.user} can no longer sign in to this clinic.")
    else:
        staff_reactivate(actor, membership)
        messages.success(request, f"{membership.user} has access again.")
    return redirect("accounts:staff")


@login_required
@require_POST
def staff_mfa_link(request: HttpRequest, membership_id: int) -> HttpResponse:
    """An admin (re-)sends a staff member's two-factor enrolment link by email."""
    actor = require_clinic(request, ClinicAction.MANAGE_STAFF)
    membership = get_object_or_404(
        Membership.objects.select_related("user", "clinic"), pk=membership_id, clinic=actor.clinic
    )
    try:
        send_enrolment_link(actor, membership)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"Enrolment link sent to {membership.user.email}. It works once, for "
            f"{settings.MFA_ENROLMENT_LINK_HOURS} hours; earlier links no longer work.",
        )
    return redirect("accounts:staff")


password_reset = auth_views.PasswordResetView.as_view(
    template_name="accounts/password_reset.html",
    email_template_name="accounts/password_reset_email.txt",
    subject_template_name="accounts/password_reset_subject.txt",
    form_class=QueuedPasswordResetForm,
    success_url=reverse_lazy("accounts:password_reset_done"),
)
password_reset_done = auth_views.PasswordResetDoneView.as_view(
    template_name="accounts/password_reset_done.html"
)
password_reset_confirm = auth_views.PasswordResetConfirmView.as_view(
    template_name="accounts/password_reset_confirm.html",
    success_url=reverse_lazy("accounts:password_reset_complete"),
)
password_reset_complete = auth_views.PasswordResetCompleteView.as_view(
    template_name="accounts/password_reset_complete.html"
)


@login_required
def clinic_details(request: HttpRequest) -> HttpResponse:
    """The clinic's name, contact details, crisis line and time zone (admins)."""
    actor = require_clinic(request, ClinicAction.MANAGE_CLINIC)
    assert actor.clinic is not None
    shown = Clinic.objects.get(pk=actor.clinic.pk)  # the form's copy; the service saves its own
    form = ClinicDetailsForm(request.POST or None, instance=shown)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = dict(form.cleaned_data)
            version = data.pop("version")
            try:
                changed = clinic_update(
                    actor, Clinic.objects.get(pk=actor.clinic.pk), expected_version=version, **data
                )
            except ConflictError as exc:
                form.add_error(None, str(exc))
                status = 409
            else:
                messages.success(request, "Clinic details saved." if changed else "Nothing was changed.")
                return redirect("accounts:clinic_details")
    return render(request, "accounts/clinic_details.html", {"form": form}, status=status)
