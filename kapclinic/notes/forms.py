from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone

from kapclinic.core import dates
from kapclinic.core.forms import KapForm, choice_field
from kapclinic.notes.templates_data import Template


class NewNoteForm(KapForm):
    template = forms.ChoiceField(label="Template")
    service_date = forms.DateField(label="Date of the visit", widget=forms.DateInput(attrs={"type": "date"}))
    dosing_appointment = forms.TypedChoiceField(
        label="Dosing session it belongs to",
        required=False,
        coerce=int,
        empty_value=None,
        help_text="Required for integration notes; links the note into the session's thread.",
    )

    def __init__(
        self,
        *args: Any,
        templates: dict[str, Template],
        dosing: list[Any],
        birth_date: dt.date | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.birth_date = birth_date
        choice_field(self, "template").choices = [(k, t.title) for k, t in templates.items()]
        choice_field(self, "dosing_appointment").choices = [("", "None")] + [
            (a.pk, f"{timezone.localtime(a.starts_at):%a %d %b %Y %H:%M} · {a.get_status_display()}")
            for a in dosing
        ]

    def clean_service_date(self) -> dt.date:
        day: dt.date = self.cleaned_data["service_date"]
        dates.check_service_date("The date of the visit", day, self.birth_date)
        return day


class NoteSectionsForm(KapForm):
    version = forms.IntegerField(widget=forms.HiddenInput(attrs={"id": "note-version"}))
    #: A random token per opened editor page (notes.views.new_editor_token): the page's own saves.
    editor = forms.CharField(
        required=False, max_length=40, widget=forms.HiddenInput(attrs={"id": "note-editor"})
    )

    def __init__(self, *args: Any, sections: list[dict[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for s in sections:
            self.fields[f"s_{s['key']}"] = forms.CharField(
                label=s["label"],
                required=False,
                max_length=20000,
                initial=s.get("text", ""),
                widget=forms.Textarea(attrs={"rows": 4}),
            )

    def texts(self) -> dict[str, str]:
        return {name[2:]: value for name, value in self.cleaned_data.items() if name.startswith("s_")}


class AddendumForm(KapForm):
    text = forms.CharField(label="Addendum", widget=forms.Textarea(attrs={"rows": 3}), max_length=20000)


class TemplateForm(KapForm):
    title = forms.CharField(label="Title", max_length=120)
    sections = forms.CharField(
        label="Sections, one per line", widget=forms.Textarea(attrs={"rows": 6}), max_length=6000
    )


class TemplateEditForm(TemplateForm):
    version = forms.IntegerField(widget=forms.HiddenInput)


class VersionForm(KapForm):
    """Only the version the page was rendered with (retire / reinstate buttons)."""

    version = forms.IntegerField(widget=forms.HiddenInput)


class BuiltinVisibilityForm(KapForm):
    action = forms.ChoiceField(choices=[("hide", "hide"), ("show", "show")], widget=forms.HiddenInput)


class ProcessNoteForm(KapForm):
    text = forms.CharField(label="Process note", widget=forms.Textarea(attrs={"rows": 8}), max_length=50000)


class ProcessNoteEditForm(ProcessNoteForm):
    version = forms.IntegerField(widget=forms.HiddenInput)


class ShareForm(KapForm):
    user = forms.TypedChoiceField(label="Share with", coerce=int)
    action = forms.ChoiceField(choices=[("share", "share"), ("unshare", "unshare")], widget=forms.HiddenInput)

    def __init__(self, *args: Any, colleagues: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choice_field(self, "user").choices = [(u.pk, u.full_name) for u in colleagues]
