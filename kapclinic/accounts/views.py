from __future__ import annotations

import base64
from io import BytesIO
from typing import Any

import qrcode
import qrcode.image.svg
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST
from django_otp import login as otp_login
from django_otp import user_has_device
from django_otp.plugins.otp_totp.models import TOTPDevice

from kapclinic.accounts.forms import EmailAuthenticationForm, InviteForm, TokenForm
from kapclinic.accounts.middleware import SESSION_CLINIC, SESSION_ENROLLED
from kapclinic.accounts.models import Membership
from kapclinic.accounts.services import staff_deactivate, staff_invite, staff_reactivate
from kapclinic.policy import ClinicAction, require_clinic


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    pass


def _qr_svg(uri: str) -> str:
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = BytesIO()
    image.save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


@login_required
def mfa(request: HttpRequest) -> HttpResponse:
    """Verify (or first set up) the staff member's authenticator app."""
    user = request.user
    if user.is_verified():  # type: ignore[union-attr]
        return redirect("core:home")
    confirmed = user_has_device(user, confirmed=True)
    device: TOTPDevice | None
    if confirmed:
        device = None
    else:
        device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
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
                if not candidate.confirmed:
                    candidate.confirmed = True
                    candidate.save(update_fields=["confirmed"])
                otp_login(request, candidate)
                request.session[SESSION_ENROLLED] = True
                messages.success(request, "Two-factor verification complete.")
                return redirect(request.GET.get("next") or "core:home")
        else:
            form.add_error(
                "token", "That code is not valid. Check your device's clock and try the newest code."
            )
    context: dict[str, Any] = {"form": form, "setup": device is not None}
    if device is not None:
        context["secret"] = base64.b32encode(device.bin_key).decode()
        context["qr"] = _qr_svg(device.config_url)
    return render(request, "accounts/mfa.html", context)


@login_required
@require_POST
def switch_clinic(request: HttpRequest) -> HttpResponse:
    wanted = request.POST.get("clinic")
    ids = {str(c.pk) for c in getattr(request, "user_clinics", ())}
    if wanted not in ids:
        messages.error(request, "You are not a member of that clinic.")
    else:
        request.session[SESSION_CLINIC] = int(wanted)
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
        raise PermissionDenied("You cannot deactivate your own account.")
    if membership.is_active:
        staff_deactivate(actor, membership)
        messages.success(request, f"{membership.user} can no longer sign in to this clinic.")
    else:
        staff_reactivate(actor, membership)
        messages.success(request, f"{membership.user} has access again.")
    return redirect("accounts:staff")


password_reset = auth_views.PasswordResetView.as_view(
    template_name="accounts/password_reset.html",
    email_template_name="accounts/password_reset_email.txt",
    subject_template_name="accounts/password_reset_subject.txt",
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
