from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from kapclinic.interop.fhir import build_bundle
from kapclinic.patients.models import Patient
from kapclinic.policy import Action, open_patient


def _scores(patient: Patient) -> list[object]:
    try:
        from kapclinic.measures.models import InstrumentResponse
    except ImportError:  # measures app absent
        return []
    return list(InstrumentResponse.objects.filter(patient=patient).order_by("completed_at", "id"))


@login_required
def patient_bundle(request: HttpRequest, patient_id: int) -> HttpResponse:
    """Download the patient's record as a FHIR R4 Bundle; audited as an export."""
    patient = open_patient(
        request, patient_id, Action.VIEW_CLINICAL, audit="export", object_type="fhir_bundle"
    )
    bundle = build_bundle(patient, scores=_scores(patient))
    response = HttpResponse(json.dumps(bundle, indent=2), content_type="application/fhir+json")
    response["Content-Disposition"] = f'attachment; filename="{patient.mrn}-fhir-r4.json"'
    return response
