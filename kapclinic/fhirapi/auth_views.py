"""SMART discovery, the OAuth endpoints (django-oauth-toolkit) and the pages that manage apps."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from oauth2_provider.views import AuthorizationView, TokenView

from kapclinic.accounts.models import Role
from kapclinic.audit.services import record_event
from kapclinic.core.actor import actor_from_request
from kapclinic.core.request import KapRequest
from kapclinic.fhirapi import clients
from kapclinic.fhirapi.models import FhirClient
from kapclinic.fhirapi.oauth import ASSERTION_ALGORITHMS, token_url
from kapclinic.fhirapi.scopes import OTHER_SCOPES
from kapclinic.policy import ClinicAction, refuse, require_clinic


@require_GET
def smart_configuration(request: HttpRequest) -> JsonResponse:
    """SMART discovery document (docs/fhir-api.md#discovery, [D3]): S256 only, never plain."""
    base = f"{settings.SITE_URL}/fhir"
    return JsonResponse(
        {
            "issuer": base,
            "authorization_endpoint": f"{base}/auth/authorize",
            "token_endpoint": token_url(),
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
            "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "response_types_supported": ["code"],
            "scopes_supported": [
                "patient/*.rs",
                "user/*.rs",
                "system/*.rs",
                *sorted(s for s in OTHER_SCOPES if s != "launch"),
            ],
            "code_challenge_methods_supported": ["S256"],
            "capabilities": [
                "launch-standalone",
                "client-public",
                "client-confidential-asymmetric",
                "context-standalone-patient",
                "permission-patient",
                "permission-user",
                "permission-offline",
                "permission-v2",
            ],
        }
    )


class SmartAuthorizationView(AuthorizationView):  # type: ignore[misc]
    template_name = "fhirapi/authorize.html"


authorize = SmartAuthorizationView.as_view()
token = TokenView.as_view()


@login_required
def client_list(request: HttpRequest) -> HttpResponse:
    actor = require_clinic(request, ClinicAction.MANAGE_CLINIC)
    found = list(clients.clinic_clients(actor.clinic))
    record_event(actor, "list", object_type="fhirapi.fhirclient", detail=f"n={len(found)}")
    return render(
        request, "fhirapi/clients.html", {"clients": found, "fhir_base": f"{settings.SITE_URL}/fhir"}
    )


@login_required
@require_POST
def client_revoke(request: HttpRequest, client_id: int) -> HttpResponse:
    actor = require_clinic(request, ClinicAction.MANAGE_CLINIC)
    client = get_object_or_404(FhirClient, pk=client_id, clinic=actor.clinic)
    clients.revoke(actor, client)
    flash.success(
        request, f"{client.name} can no longer read this clinic's records; its tokens were revoked."
    )
    return redirect(reverse("fhirapi:clients"))


def _patient_only(request: HttpRequest) -> Any:
    kap = cast(KapRequest, request)
    if kap.role != Role.PATIENT or kap.patient is None:
        raise refuse(request, "This page is for patients.")
    return kap.patient


@login_required
def my_apps(request: HttpRequest) -> HttpResponse:
    patient = _patient_only(request)
    return render(
        request, "fhirapi/my_apps.html", {"apps": clients.patient_apps(request.user), "patient": patient}
    )


@login_required
@require_POST
def my_app_revoke(request: HttpRequest, application_id: int) -> HttpResponse:
    patient = _patient_only(request)
    removed = clients.patient_revoke(
        actor_from_request(request), request.user, application_id, patient=patient
    )
    if removed:
        flash.success(request, "The app can no longer read your record.")
    else:
        flash.info(request, "That app holds no access to your record.")
    return redirect(reverse("fhirapi:my_apps"))
