from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from kapclinic.core.forms import KapForm, choice_field
from kapclinic.documents.models import ADMINISTRATIVE, Category, Letter

ACCEPT = ".pdf,.png,.jpg,.jpeg,application/pdf,image/png,image/jpeg"


def _file_field(label: str, *, required: bool = True) -> forms.FileField:
    return forms.FileField(
        label=label,
        required=required,
        allow_empty_file=True,  # the service says "The file is empty." in its own words
        max_length=None,  # the service checks the name (and says why)
        help_text=f"PDF, PNG or JPEG, up to {settings.DOCUMENT_MAX_MB} MB.",
        widget=forms.ClearableFileInput(attrs={"accept": ACCEPT}),
    )


class MultipleFileInput(forms.FileInput):
    """A file input that accepts several files (`multiple`); its value is the list of files posted."""

    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several optional files; cleaned to a list (empty when none was chosen). Each file is checked by
    the service under the chart's document rules (documents.services.check_upload)."""

    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        items = data if isinstance(data, list | tuple) else [data]
        single = super().clean
        return [f for f in (single(item, initial) for item in items if item) if f]


def attachments_field(most: int, label: str = "Attach files (optional)") -> MultipleFileField:
    """Up to `most` optional files under the chart's document rules (message attachments)."""
    return MultipleFileField(
        label=label,
        required=False,
        allow_empty_file=True,  # the service says "The file is empty." in its own words
        max_length=None,  # the service checks the name (and says why)
        help_text=f"Up to {most} files: PDF, PNG or JPEG, each up to {settings.DOCUMENT_MAX_MB} MB.",
        widget=MultipleFileInput(attrs={"accept": ACCEPT, "multiple": True}),
    )


class UploadForm(KapForm):
    file = forms.FileField()  # replaced in __init__ (the limit is read from settings per request)
    category = forms.ChoiceField(label="What is it?", choices=Category.choices)
    title = forms.CharField(
        label="Title", max_length=120, required=False,
        help_text="For example “Lab results from City Hospital, March”. Left empty, the category is used.",
    )  # fmt: skip

    def __init__(self, *args: Any, administrative_only: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"] = _file_field("File")
        self.order_fields(["file", "category", "title"])
        if administrative_only:
            choice_field(self, "category").choices = [c for c in Category.choices if c[0] in ADMINISTRATIVE]


class PortalUploadForm(KapForm):
    file = forms.FileField()
    category = forms.ChoiceField(
        label="What is it?",
        choices=[
            (Category.OUTSIDE_RECORD, "A record from another doctor or hospital"),
            (Category.LAB_RESULT, "Lab or test results"),
            (Category.ID_CARD, "My ID or insurance card"),
            (Category.ADMIN_FORM, "A form I signed"),
        ],
        widget=forms.RadioSelect,
    )
    note = forms.CharField(
        label="A note for the clinic (optional)", max_length=300, required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"] = _file_field("File from your phone or computer")
        self.order_fields(["file", "category", "note"])


class FileForm(KapForm):
    category = forms.ChoiceField(label="File as", choices=Category.choices)
    title = forms.CharField(label="Title", max_length=120, required=False)
    version = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, *args: Any, administrative_only: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if administrative_only:
            choice_field(self, "category").choices = [c for c in Category.choices if c[0] in ADMINISTRATIVE]


class RejectForm(KapForm):
    reason = forms.CharField(
        label="Why it is not filed (the patient reads this)", max_length=300,
        widget=forms.Textarea(attrs={"rows": 2}),
    )  # fmt: skip
    version = forms.IntegerField(widget=forms.HiddenInput)


class PaperForm(KapForm):
    paper = forms.ChoiceField(label="Paper", choices=[("A4", "A4"), ("Letter", "US Letter")], required=False)


class LetterForm(KapForm):
    kind = forms.ChoiceField(label="Kind of letter", choices=Letter.Kind.choices)
    recipient_name = forms.CharField(label="To (name of the provider)", max_length=120)
    recipient_organisation = forms.CharField(label="Practice or organisation", max_length=160, required=False)
    recipient_address = forms.CharField(
        label="Address", required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 3})
    )
    subject = forms.CharField(label="Subject", max_length=160)
    body = forms.CharField(label="Letter", max_length=20000, widget=forms.Textarea(attrs={"rows": 12}))
    include_summary = forms.BooleanField(
        label="Print the chart's diagnoses, medications and latest scores below the letter",
        required=False,
        initial=True,
    )


class LogoForm(KapForm):
    file = forms.FileField(
        label="Logo",
        allow_empty_file=True,  # the service says "The file is empty." in its own words
        max_length=None,
        help_text="PNG or JPEG, up to 500 KB. Printed about 2 cm high at the top of every PDF.",
        widget=forms.ClearableFileInput(attrs={"accept": ".png,.jpg,.jpeg,image/png,image/jpeg"}),
        error_messages={"required": "Logo: choose a PNG or JPEG file."},
    )
