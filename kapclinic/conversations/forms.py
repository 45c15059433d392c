from __future__ import annotations

from typing import Any

from django import forms

from kapclinic.conversations.models import MAX_ATTACHMENTS, MAX_MESSAGE_CHARS, ThreadKind
from kapclinic.core.forms import KapForm
from kapclinic.documents.forms import attachments_field

_BODY_HELP = f"At most {MAX_MESSAGE_CHARS} characters."


def _body_field(label: str) -> forms.CharField:
    # The size limit is checked by the service too (a sentence, nothing stored); the field's own
    # max_length gives the browser's counter-free hint without cutting what was typed.
    return forms.CharField(
        label=label,
        help_text=_BODY_HELP,
        widget=forms.Textarea(attrs={"rows": 5}),
        max_length=MAX_MESSAGE_CHARS,
        error_messages={
            "required": "Message: write something before sending.",
            "max_length": f"Message: at most {MAX_MESSAGE_CHARS} characters. Split it in two, or bring it "
            "to your next session.",
        },
    )


class _WithAttachment(KapForm):
    """Optional files with the message, up to MAX_ATTACHMENTS (the size limit is read from settings per
    form; the count and every file are checked by the service, which names a refused file)."""

    file = forms.FileField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"] = attachments_field(MAX_ATTACHMENTS)


class NewThreadForm(_WithAttachment):
    subject = forms.CharField(
        max_length=120, error_messages={"required": "Subject: give the message a short subject."}
    )
    body = _body_field("Your message")
    field_order: tuple[str, ...] = ("subject", "body", "file")


class StaffNewThreadForm(NewThreadForm):
    kind = forms.ChoiceField(
        label="Who can read it",
        choices=ThreadKind.choices,
        initial=ThreadKind.PATIENT,
        widget=forms.RadioSelect,
    )
    field_order = ("kind", "subject", "body", "file")


class ReplyForm(_WithAttachment):
    body = _body_field("Your reply")
    field_order: tuple[str, ...] = ("body", "file")


class AssignForm(KapForm):
    assigned_to = forms.TypedChoiceField(label="Assign to", coerce=int, required=False, empty_value=None)

    def __init__(self, *args: Any, choices: list[tuple[Any, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["assigned_to"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "Nobody"), *choices]


class SettingsForm(KapForm):
    reply_hours = forms.IntegerField(
        label="Expected reply time (hours)",
        min_value=1,
        max_value=24 * 14,
        help_text="Shown to patients beside the message box. Your clinic's promise, not a clinical rule.",
    )


class AttachmentFileForm(KapForm):
    """Which kind of chart document a message's file becomes (clinical kinds only: messages are clinical)."""

    category = forms.ChoiceField(label="File as")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from kapclinic.documents.models import Category, is_clinical

        super().__init__(*args, **kwargs)
        field = self.fields["category"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [c for c in Category.choices if is_clinical(c[0])]
