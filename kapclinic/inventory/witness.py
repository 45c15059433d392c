"""A witness confirms by signing in (issue 14): in the same form, the witness types their own email
address and password, and their authenticator code when they have one. A name chosen from a list proves
nothing; credentials do. A failed confirmation changes nothing, is audited, and counts against the
witness's account like a failed sign-in (django-axes)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import authenticate
from django.db import transaction
from django.http import HttpRequest

from kapclinic.accounts.models import Membership, Role, User
from kapclinic.audit.services import record_event
from kapclinic.core.actor import Actor
from kapclinic.core.errors import DomainError

REFUSED = "The witness's sign-in was not accepted: check the email address, password and authenticator code."


def _refused(prefix: str, sentence: str) -> DomainError:
    """The witness did not confirm: the sentence goes on the witness's email field."""
    return DomainError(field_errors={f"{prefix}_email": [sentence]})


def witness_fields(prefix: str = "witness", label: str = "Witness") -> dict[str, forms.Field]:
    """The three fields a form adds for one witness (``<prefix>_email``, ``_password``, ``_code``)."""
    return {
        f"{prefix}_email": forms.EmailField(
            label=f"{label}: their email address",
            required=False,
            widget=forms.EmailInput(attrs={"autocomplete": "off"}),
        ),
        f"{prefix}_password": forms.CharField(
            label=f"{label}: their password",
            required=False,
            strip=False,
            widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        ),
        f"{prefix}_code": forms.CharField(
            label=f"{label}: their authenticator code (if they have one)",
            required=False,
            max_length=12,
            widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "numeric"}),
        ),
    }


def add_witness_fields(form: forms.Form, prefix: str = "witness", label: str = "Witness") -> None:
    form.fields.update(witness_fields(prefix, label))


def _fail(actor: Actor, why: str) -> None:
    # committed on its own: the refused write's transaction never opened
    with transaction.atomic():
        record_event(actor, "denied", object_type="inventory.witness", detail=f"witness_auth_failed:{why}")


def confirm(
    request: HttpRequest, actor: Actor, data: dict[str, Any], prefix: str = "witness", label: str = "witness"
) -> User:
    """The signed-in witness for ``data`` (a form's cleaned data); else a DomainError on the witness's
    email field (audited)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    email = (data.get(f"{prefix}_email") or "").strip()
    password = data.get(f"{prefix}_password") or ""
    code = (data.get(f"{prefix}_code") or "").replace(" ", "")
    if not email or not password:
        raise _refused(prefix, f"The {label} signs in here with their own email address and password.")
    user = authenticate(request, username=email, password=password)
    if user is None:
        _fail(actor, "credentials")
        raise _refused(prefix, REFUSED)
    assert isinstance(user, User)
    devices = list(TOTPDevice.objects.filter(user=user, confirmed=True))
    if devices and not any(d.verify_token(code) for d in devices if code):
        _fail(actor, "code")
        raise _refused(prefix, REFUSED)
    if user.pk == actor.user_id:
        _fail(actor, "self")
        raise _refused(prefix, f"The {label} must be a different person from the one signed in.")
    if not Membership.objects.filter(
        user=user, clinic=actor.clinic, is_active=True, role__in=(Role.NURSE, Role.PRESCRIBER, Role.ADMIN)
    ).exists():
        _fail(actor, "not_staff")
        raise _refused(prefix, f"The {label} must be a nurse, prescriber or admin of this clinic.")
    return user
