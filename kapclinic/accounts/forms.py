from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm

from kapclinic.accounts.models import (
    BACKUP_CODE_ALPHABET,
    BACKUP_CODE_LENGTH,
    Clinic,
    Role,
    User,
    normalise_backup_code,
)
from kapclinic.accounts.services import CLINIC_DETAIL_FIELDS
from kapclinic.core.forms import KapForm


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


class TokenForm(KapForm):
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


class BackupCodeForm(KapForm):
    """A backup code typed at the sign-in verification step, in place of the authenticator code."""

    code = forms.CharField(
        label="Backup code",
        max_length=40,
        help_text="One of the codes you saved when you created backup codes, for example abcde-fghjk.",
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autocapitalize": "none",
                "spellcheck": "false",
                "autofocus": True,
            }
        ),
    )

    def clean_code(self) -> str:
        code = normalise_backup_code(str(self.cleaned_data["code"]))
        if len(code) != BACKUP_CODE_LENGTH or any(ch not in BACKUP_CODE_ALPHABET for ch in code):
            # Not counted as an attempt: it cannot be any code we issued (a typo, or the 6-digit code).
            raise forms.ValidationError(
                f"A backup code has {BACKUP_CODE_LENGTH} letters and digits, for example abcde-fghjk."
            )
        return code


class GenerateBackupCodesForm(KapForm):
    """Confirms, when a set already exists, that the person knows the old codes will stop working."""

    confirm = forms.BooleanField(
        required=False,
        label="I understand that my current backup codes will stop working.",
    )

    def __init__(self, *args: Any, replacing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.replacing = replacing
        if not replacing:
            del self.fields["confirm"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.replacing and not cleaned.get("confirm"):
            self.add_error("confirm", "Tick the box to confirm that your current codes may be replaced.")
        return cleaned


STAFF_ROLE_CHOICES = [(r.value, r.label) for r in Role if r != Role.PATIENT]


class InviteForm(KapForm):
    full_name = forms.CharField(max_length=200)
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "off"}))
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


class ClinicDetailsForm(forms.ModelForm[Clinic]):
    """The clinic's own details, edited by its admin; `version` guards against a concurrent save."""

    version = forms.IntegerField(widget=forms.HiddenInput)
    time_zone = forms.ChoiceField(
        label="Time zone",
        help_text="Every date and time staff and patients see (pages, portal, emails) is in this zone.",
    )

    class Meta:
        model = Clinic
        fields = list(CLINIC_DETAIL_FIELDS)
        widgets = {
            "address": forms.Textarea(attrs={"rows": 3}),
            "hours": forms.Textarea(attrs={"rows": 2}),
            "phone": forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"}),
            "emergency_number": forms.TextInput(attrs={"type": "tel"}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        import zoneinfo

        zones = self.fields["time_zone"]
        assert isinstance(zones, forms.ChoiceField)
        zones.choices = [(z, z) for z in sorted(zoneinfo.available_timezones())]
        self.initial.setdefault("version", self.instance.version)


class QueuedPasswordResetForm(PasswordResetForm):
    """Django's password reset, but the email goes through the outbound-message queue (retried by the
    worker, listed for the clinic's admins when it cannot be delivered) instead of sent in the request."""

    def send_mail(
        self,
        subject_template_name: str,
        email_template_name: str,
        context: dict[str, Any],
        from_email: str | None,
        to_email: str,
        html_email_template_name: str | None = None,
    ) -> None:
        from django.template import loader

        from kapclinic.accounts.services import home_clinic
        from kapclinic.messaging.models import MessageKind
        from kapclinic.messaging.services import queue

        subject = "".join(loader.render_to_string(subject_template_name, context).splitlines())
        body = loader.render_to_string(email_template_name, context)
        user = context.get("user")
        queue(
            kind=MessageKind.PASSWORD_RESET,
            to_email=to_email,
            subject=subject,
            body=body,
            clinic=home_clinic(user) if user is not None else None,
        )
