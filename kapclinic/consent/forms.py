from __future__ import annotations

from django import forms

from kapclinic.core.forms import KapForm


class DocumentForm(KapForm):
    title = forms.CharField(max_length=200)
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 18}), max_length=50000)


class SignForm(KapForm):
    document_id = forms.IntegerField(widget=forms.HiddenInput)
    agreed = forms.BooleanField(
        label="I have read this consent document, my questions have been answered, and I agree to it.",
        required=False,
    )
    typed_name = forms.CharField(label="Type your full legal name to sign", max_length=200)
