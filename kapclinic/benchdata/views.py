"""Framework floors: what a request costs before any page logic (bench-only URLconf)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from kapclinic.core.params import id_param
from kapclinic.patients.models import Patient
from kapclinic.policy import Action, open_patient


@login_required
def floor(request: HttpRequest) -> HttpResponse:
    """A bare authenticated view through the full middleware stack."""
    return HttpResponse("ok", content_type="text/plain")


@login_required
def floor_query(request: HttpRequest) -> HttpResponse:
    """The same plus one indexed query (a patient of the user's clinic by primary key)."""
    pk = id_param(request.GET, "id") or 0
    mrn = Patient.objects.filter(pk=pk, clinic=request.clinic).values_list("mrn", flat=True).first()  # type: ignore[attr-defined]
    return HttpResponse("ok" if mrn else "none", content_type="text/plain")


@login_required
def floor_audited(request: HttpRequest) -> HttpResponse:
    """The same plus what every page of a patient's record must do before showing anything: the patient read
    with the permission check, and the hash-chained audit entry (policy.open_patient)."""
    pk = id_param(request.GET, "id") or 0
    patient = open_patient(request, pk, Action.VIEW_DEMOGRAPHICS, object_type="bench")
    return HttpResponse(patient.mrn, content_type="text/plain")
