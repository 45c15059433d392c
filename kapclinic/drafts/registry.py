"""The long forms that keep drafts, and who may keep one for which object.

Each form names how to open its object for the request (the same policy check as the form's own page,
without an audit event: the draft endpoint writes its own). A key not listed here is a 404."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.http import Http404, HttpRequest

if TYPE_CHECKING:
    from kapclinic.patients.models import Patient


@dataclass(frozen=True)
class DraftForm:
    key: str
    # (request, object_id) -> the patient the form is about (None for a form about no patient); raises
    # 403/404 like the form's page when the user may not fill the form in.
    resolve: Callable[[HttpRequest, int], Patient | None]


def _no_object(object_id: int) -> None:
    if object_id != 0:
        raise Http404("This form is not about a particular record.")


def _assessment(request: HttpRequest, object_id: int) -> Patient | None:
    from kapclinic.policy import Action, open_patient

    return open_patient(request, object_id, Action.EDIT_CLINICAL, audit=None, object_type="intake_assessment")


def _own_record(request: HttpRequest, object_id: int) -> Patient | None:
    from kapclinic.core.request import request_patient
    from kapclinic.policy import Action, ClinicAction, open_patient, require_clinic

    _no_object(object_id)
    require_clinic(request, ClinicAction.SELF_SERVICE)
    return open_patient(request, request_patient(request).pk, Action.SELF_SERVICE, audit=None)


def _consent_in_clinic(request: HttpRequest, object_id: int) -> Patient | None:
    from kapclinic.policy import Action, ClinicAction, open_patient, require_clinic

    require_clinic(request, ClinicAction.CONSENT_IN_CLINIC)
    return open_patient(request, object_id, Action.EDIT_DEMOGRAPHICS, audit=None, object_type="consent_form")


def _consent_document(request: HttpRequest, object_id: int) -> Patient | None:
    from kapclinic.policy import ClinicAction, require_clinic

    _no_object(object_id)
    require_clinic(request, ClinicAction.MANAGE_CONSENT_DOCUMENTS)
    return None


FORMS: dict[str, DraftForm] = {
    f.key: f
    for f in (
        DraftForm("intake.assessment", _assessment),  # object: the patient
        DraftForm("intake.questionnaire", _own_record),  # the patient's own portal questionnaire
        DraftForm("consent.sign", _own_record),  # the patient's portal consent form
        DraftForm("consent.sign_in_clinic", _consent_in_clinic),  # object: the patient
        DraftForm("consent.document", _consent_document),  # a new consent version (admin, prescriber)
    )
}


def draft_form(key: str) -> DraftForm:
    form = FORMS.get(key)
    if form is None:
        raise Http404("No such form keeps drafts.")
    return form
