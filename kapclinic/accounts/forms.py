from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from kapclinic.accounts.models import Role, User


class EmailAuthenticationForm(AuthenticationForm):
    username = forms.EmailField(
        label="Email", widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )

    error_messages = {
        "invalid_login": "That email and password do not match an active account. Check both and try again.",
        "inactive": "This account has been deactivated. Ask your clinic administrator.",
    }

    def clean_username(self) -> str:
        return str(self.cleaned_data["username"]).lower()


class TokenForm(forms.Form):
    token = forms.CharField(
        label="6-digit code from your authenticator app",
        min_length=6,
        max_length=6,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9]{6}"}
        ),
    )

    def clean_token(self) -> str:
        token = str(self.cleaned_data["token"]).strip()
        if not token.isdigit():
            raise forms.ValidationError("The code is six digits, numbers only.")
        return token


STAFF_ROLE_CHOICES = [(r.value, r.label) for r in Role if r != Role.PATIENT]


class InviteForm(forms.Form):
    full_name = forms.CharField(max_length=200)
    email = forms.EmailField()
    role = forms.ChoiceField(choices=STAFF_ROLE_CHOICES)

    def __init__(self, *args: Any, clinic: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clinic = clinic

    def clean_email(self) -> str:
        email = str(self.cleaned_data["email"]).lower()
        user = User.objects.filter(email=email).first()
        if user is not None:
            if hasattr(user, "patient_record") and user.patient_record is not None:
                raise forms.ValidationError(
                    "This email belongs to a patient account and cannot be used for staff."
                )
            if self.clinic is not None and user.memberships.filter(clinic=self.clinic).exists():
                raise forms.ValidationError("This person is already a member of this clinic.")
        return email
