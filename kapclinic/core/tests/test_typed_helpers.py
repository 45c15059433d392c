"""The small typed helpers used instead of type-ignores (core/actor, core/forms, core/request)."""

from __future__ import annotations

from typing import Any

import pytest
from django import forms
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory

from kapclinic.core.actor import Actor
from kapclinic.core.forms import choice_field
from kapclinic.core.request import request_clinic, request_patient


def test_require_user_returns_the_user_and_refuses_a_system_actor() -> None:
    user: Any = object()
    assert Actor(user=user, clinic=None, role="prescriber").require_user() is user
    with pytest.raises(ValueError, match="needs a signed-in user; the system actor has none"):
        Actor.system().require_user()


class _Form(forms.Form):
    kind = forms.ChoiceField(choices=[("a", "A")])
    text = forms.CharField()


def test_choice_field_narrows_and_refuses_other_fields() -> None:
    form = _Form()
    choice_field(form, "kind").choices = [("b", "B")]
    assert choice_field(form, "kind") is form.fields["kind"]
    assert choice_field(form, "kind").valid_value("b")
    assert not choice_field(form, "kind").valid_value("a")
    with pytest.raises(TypeError, match="'text' is a CharField, not a ChoiceField"):
        choice_field(form, "text")


def test_request_patient_only_for_a_signed_in_patient() -> None:
    request: Any = RequestFactory().get("/")
    request.clinic, request.role, request.patient = "clinic", "patient", "me"
    assert request_patient(request) is request.patient
    assert request_clinic(request) is request.clinic
    for role, patient in (("therapist", None), (None, None), ("patient", None), ("therapist", "me")):
        request.role, request.patient = role, patient
        with pytest.raises(PermissionDenied, match="This page is for patients"):
            request_patient(request)
