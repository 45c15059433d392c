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
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views import AuthorizationView, JwksInfoView, TokenView, UserInfoView

from kapclinic.accounts.models import Role
from kapclinic.audit.services import record_event
from kapclinic.core.actor import actor_from_request
from kapclinic.core.errors import DomainError
from kapclinic.core.request import KapRequest
from kapclinic.fhirapi import clients, launch
from kapclinic.fhirapi.models import FhirClient
from kapclinic.fhirapi.oauth import ASSERTION_ALGORITHMS, fhir_base, token_url
from kapclinic.fhirapi.scopes import OTHER_SCOPES, describe
from kapclinic.policy import ClinicAction, refuse, require_clinic


def _openid() -> bool:
    """Are id_tokens on (settings.FHIR_ID_TOKEN_KEY set, or generated outside production)?"""
    return bool(oauth2_settings.OIDC_ENABLED and oauth2_settings.OIDC_RSA_PRIVATE_KEY)


def _scopes_supported() -> list[str]:
    hidden = {"launch"} if _openid() else {"launch", "openid", "fhirUser"}
    return ["patient/*.rs", "user/*.rs", "system/*.rs", *sorted(s for s in OTHER_SCOPES if s not in hidden)]


@require_GET
def smart_configuration(request: HttpRequest) -> JsonResponse:
    """SMART discovery document (docs/fhir-api.md#discovery, [D3]): S256 only, never plain; with id_tokens
    on, `sso-openid-connect` and the `jwks_uri` it requires [I3]."""
    base = fhir_base()
    document: dict[str, Any] = {
        "issuer": base,
        "authorization_endpoint": f"{base}/auth/authorize",
        "token_endpoint": token_url(),
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "response_types_supported": ["code"],
        "scopes_supported": _scopes_supported(),
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
    if _openid():
        document["jwks_uri"] = f"{base}/auth/jwks"
        document["userinfo_endpoint"] = f"{base}/auth/userinfo"
        document["capabilities"].append("sso-openid-connect")
    return JsonResponse(document)


@require_GET
def openid_configuration(request: HttpRequest) -> JsonResponse:
    """OpenID Provider metadata at `{issuer}/.well-known/openid-configuration`, for OIDC libraries that
    verify an id_token by its `iss` (the same endpoints as the SMART document); 404 with id_tokens off."""
    if not _openid():
        return JsonResponse({"error": "OpenID Connect is not enabled on this server."}, status=404)
    base = fhir_base()
    return JsonResponse(
        {
            "issuer": base,
            "authorization_endpoint": f"{base}/auth/authorize",
            "token_endpoint": token_url(),
            "userinfo_endpoint": f"{base}/auth/userinfo",
            "jwks_uri": f"{base}/auth/jwks",
            "scopes_supported": _scopes_supported(),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
            "claims_supported": ["sub", "fhirUser", "iss", "aud", "exp", "iat", "auth_time", "nonce"],
            "code_challenge_methods_supported": ["S256"],
        }
    )


class SmartAuthorizationView(AuthorizationView):  # type: ignore[misc]
    """django-oauth-toolkit's consent page, plus the staff patient picker for `launch/patient`
    (docs/fhir-api.md#patient-picker): the chosen patient rides on the authorization code."""

    template_name = "fhirapi/authorize.html"
    _launch_patient_id: int | None = None

    def _staff(self, application: Any) -> Any:
        return launch.staff_actor(self.request.user, application, getattr(self.request, "request_id", ""))

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        actor = self._staff(context.get("application"))
        if actor is not None and launch.wants_patient(context.get("scopes")):
            query = self.request.GET.get("patient_q", "")
            context["launch_patients"] = launch.choices(actor, query)
            context["patient_q"] = query[:60]
        return context

    def form_valid(self, form: Any) -> HttpResponse:
        from oauth2_provider.models import get_application_model

        application = get_application_model().objects.filter(client_id=form.cleaned_data["client_id"]).first()
        actor = self._staff(application)
        scopes = form.cleaned_data.get("scope", "")
        if actor is not None and form.cleaned_data.get("allow") and launch.wants_patient(scopes):
            try:
                self._launch_patient_id = launch.chosen(actor, self.request.POST.get("launch_patient", "")).pk
            except DomainError as exc:  # nothing issued: the same page again, with the reason
                form.add_error(None, str(exc))
                names = scopes.split()
                context = self.get_context_data(
                    form=form,
                    application=application,
                    scopes=names,
                    scopes_descriptions=[describe(name) for name in names],
                )
                return cast(HttpResponse, self.render_to_response(context))
        return cast(HttpResponse, super().form_valid(form))

    def create_authorization_response(self, request: Any, scopes: Any, credentials: Any, allow: Any) -> Any:
        if self._launch_patient_id is not None:
            credentials = {**credentials, "launch_patient_id": self._launch_patient_id}
        return super().create_authorization_response(request, scopes, credentials, allow)


authorize = SmartAuthorizationView.as_view()
token = TokenView.as_view()
jwks = JwksInfoView.as_view()  # the public half of settings.FHIR_ID_TOKEN_KEY (404 with id_tokens off)
userinfo = UserInfoView.as_view()  # `sub` and, with the fhirUser scope, `fhirUser`


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
