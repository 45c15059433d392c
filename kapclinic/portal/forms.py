from __future__ import annotations

from typing import Any

from django import forms

from kapclinic.core.forms import KapForm, choice_field
from kapclinic.portal.models import EntryKind, Mood


class EntryForm(KapForm):
    kind = forms.ChoiceField(
        label="What are you writing?", choices=EntryKind.choices, widget=forms.RadioSelect
    )
    appointment = forms.TypedChoiceField(
        label="Which dosing session?", required=False, coerce=int, empty_value=None,
        help_text="For an intention or a reflection.",
    )  # fmt: skip
    mood = forms.TypedChoiceField(
        label="How do you feel right now?",
        required=False,
        coerce=int,
        empty_value=None,
        choices=[("", "Not now"), *Mood.choices],
    )
    text = forms.CharField(label="Your words", required=False, widget=forms.Textarea(attrs={"rows": 6}))
    share = forms.BooleanField(
        label="Share this entry with my care team",
        required=False,
        help_text="Unshared entries are private: only you can read them. You can change this later.",
    )

    def __init__(self, *args: Any, dosing: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choice_field(self, "appointment").choices = [("", "Choose a session")] + [
            (a.pk, f"{a.starts_at:%a %d %b %Y}") for a in dosing
        ]


class EntryEditForm(KapForm):
    text = forms.CharField(label="Your words", required=False, widget=forms.Textarea(attrs={"rows": 6}))
    mood = forms.TypedChoiceField(
        label="How did you feel?",
        required=False,
        coerce=int,
        empty_value=None,
        choices=[("", "Not given"), *Mood.choices],
    )
    version = forms.IntegerField(widget=forms.HiddenInput)


class TextsForm(KapForm):
    """The patient's text-message choice (stored in messaging.SmsPreference, the one place STOP is kept)."""

    phone = forms.CharField(
        label="Mobile number",
        max_length=40,
        help_text="With + and your country code, e.g. +1 202 555 0142.",
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel", "inputmode": "tel"}),
        error_messages={"required": "Mobile number: write the number texts should go to."},
    )
    wants_sms = forms.BooleanField(
        label="Send my appointment reminders and questionnaire links by text as well as email",
        required=False,
    )
    consent = forms.BooleanField(
        label="I agree to receive these texts from the clinic at this number",
        required=False,
        help_text="Texts never say anything about your care: only the clinic's name, an appointment time "
        "or a questionnaire link. You can withdraw at any time here, or by replying STOP to a text.",
    )
