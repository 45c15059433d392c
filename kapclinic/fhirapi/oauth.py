"""SMART App Launch v2 on django-oauth-toolkit (docs/fhir-api.md#authorization).

- Authorization code with PKCE (S256 only: settings.OAUTH2_PROVIDER) for apps; the token response
  carries the `patient` launch context when a patient authorises a patient-scoped app [D2].
- Client credentials with a signed JWT assertion (`private_key_jwt`) for backend services: the assertion
  is verified with joserfc against the client's registered JWKS; `iss` = `sub` = client id, `aud` = the
  token endpoint, `exp` at most ASSERTION_MAX_SECONDS ahead (server policy), `jti` used once.
- Requested scopes must be valid SMART v2 scopes covered by what the clinic admin registered.
- `openid` (with `fhirUser`): django-oauth-toolkit's OpenID Connect support adds an `id_token` (RS256,
  settings.FHIR_ID_TOKEN_KEY, public key at /fhir/auth/jwks) whose `fhirUser` claim is the absolute URL of
  the user's FHIR resource: Practitioner/pr<id> for staff, Patient/p<id> for a patient [I3]
  (docs/fhir-api.md#openid).
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact
from oauth2_provider.oauth2_validators import OAuth2Validator

from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.fhirapi import scopes as smart
from kapclinic.fhirapi.models import ClientKind, FhirClient, LaunchPatient, UsedAssertion

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ["RS384", "ES384", "RS256", "ES256"]
ASSERTION_MAX_SECONDS = 300


def token_url() -> str:
    return f"{settings.SITE_URL}/fhir/auth/token"


def _client_keys(client: FhirClient) -> KeySet:
    if client.jwks:
        return KeySet.import_key_set(client.jwks)
    with urllib.request.urlopen(client.jwks_url, timeout=5) as answer:  # noqa: S310 (admin-registered https URL)
        return KeySet.import_key_set(json.loads(answer.read(65536)))


def _deny(client: FhirClient | None, reason: str) -> bool:
    from kapclinic.audit.services import record_event

    if client is not None:
        record_event(
            Actor.system(client.clinic, reason="fhir-token"),
            "denied",
            clinic=client.clinic,
            object_type="fhir:token",
            detail=f"client={client.name[:60]} {reason}",
        )
    return False


def verify_assertion(assertion: str) -> FhirClient | None:
    """The backend client a JWT assertion authenticates, or None (audited as denied when the client is
    known). A `jti` is spent even when it is the only thing wrong with a second use."""
    try:
        issuer = json.loads(extract_compact(assertion.encode()).payload).get("iss")
    except (JoseError, ValueError, AttributeError, TypeError):
        return None
    client = (
        FhirClient.objects.select_related("application", "clinic")
        .filter(application__client_id=str(issuer), kind=ClientKind.BACKEND)
        .first()
    )
    if client is None:
        return None
    if client.revoked_at is not None:
        _deny(client, "revoked")
        return None
    try:
        token = jwt.decode(assertion, _client_keys(client), algorithms=ASSERTION_ALGORITHMS)
        registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": client.client_id},
            sub={"essential": True, "value": client.client_id},
            aud={"essential": True, "value": token_url()},
            exp={"essential": True},
            jti={"essential": True},
        )
        registry.validate(token.claims)
    except (JoseError, ValueError, OSError):
        _deny(client, "bad-assertion")
        return None
    expires = dt.datetime.fromtimestamp(int(token.claims["exp"]), tz=dt.UTC)
    if expires > clock.now() + dt.timedelta(seconds=ASSERTION_MAX_SECONDS):
        _deny(client, "assertion-too-long")
        return None
    UsedAssertion.objects.filter(expires_at__lt=clock.now()).delete()
    try:
        with transaction.atomic():
            UsedAssertion.objects.create(
                client=client, jti=str(token.claims["jti"])[:255], expires_at=expires
            )
    except IntegrityError:
        _deny(client, "replayed-jti")
        return None
    return client


def fhir_base() -> str:
    return f"{settings.SITE_URL}/fhir"


def fhir_user(user: Any, clinic: Any) -> str | None:
    """The FHIR URL of a user's own resource in a clinic (staff first, as bearer tokens are read)."""
    from kapclinic.accounts.models import Membership
    from kapclinic.patients.models import Patient

    if user is None or clinic is None:
        return None
    if Membership.objects.filter(user=user, clinic=clinic, is_active=True).exists():
        return f"{fhir_base()}/Practitioner/pr{user.pk}"
    patient_id = Patient.objects.filter(user=user, clinic=clinic).values_list("pk", flat=True).first()
    return f"{fhir_base()}/Patient/p{patient_id}" if patient_id is not None else None


class SmartValidator(OAuth2Validator):  # type: ignore[misc]  # django-oauth-toolkit ships no type hints
    # `fhirUser` only when the `fhirUser` scope was granted (SMART [I3]); the standard OIDC claims as is.
    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "fhirUser": "fhirUser"}

    def get_oidc_issuer_endpoint(self, request: Any) -> str:
        return fhir_base()  # the `issuer` of /fhir/.well-known/smart-configuration

    def get_additional_claims(self, request: Any) -> dict[str, Any]:
        registered = getattr(getattr(request, "client", None), "fhir_client", None)
        url = fhir_user(getattr(request, "user", None), getattr(registered, "clinic", None))
        return {"fhirUser": url} if url else {}

    def authenticate_client(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        if getattr(request, "client_assertion_type", None) == ASSERTION_TYPE:
            client = verify_assertion(str(getattr(request, "client_assertion", "") or ""))
            if client is None:
                return False
            request.client = client.application
            request.client_id = client.client_id
            return True
        if request.grant_type == "client_credentials":
            return False  # backend services authenticate with a signed assertion only
        return bool(super().authenticate_client(request, *args, **kwargs))

    def validate_client_id(self, client_id: str, request: Any, *args: Any, **kwargs: Any) -> bool:
        if not super().validate_client_id(client_id, request, *args, **kwargs):
            return False
        client = getattr(request.client, "fhir_client", None)
        return client is not None and client.revoked_at is None and client.kind == ClientKind.APP

    def validate_scopes(
        self, client_id: str, scopes: list[str], client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        registered = getattr(client, "fhir_client", None)
        if registered is None or registered.revoked_at is not None:
            return False
        try:
            wanted, _ = smart.parse_scopes(scopes)
        except ValueError:
            return False
        contexts = {s.context for s in wanted}
        if registered.kind == ClientKind.BACKEND and contexts - {"system"}:
            return False
        if registered.kind == ClientKind.APP and "system" in contexts:
            return False
        return smart.allowed(scopes, registered.scopes)

    def save_authorization_code(self, client_id: str, code: dict[str, Any], request: Any, *args: Any,
                                **kwargs: Any) -> None:  # fmt: skip
        """The code, and the patient a staff member picked for it (docs/fhir-api.md#patient-picker)."""
        from oauth2_provider.models import get_grant_model

        super().save_authorization_code(client_id, code, request, *args, **kwargs)
        patient_id = getattr(request, "launch_patient_id", None)
        if patient_id is not None:
            grant = get_grant_model().objects.get(code=code["code"], application=request.client)
            LaunchPatient.objects.create(grant=grant, patient_id=patient_id, user=request.user)

    def validate_code(self, client_id: str, code: str, client: Any, request: Any, *args: Any,
                      **kwargs: Any) -> bool:  # fmt: skip
        valid = bool(super().validate_code(client_id, code, client, request, *args, **kwargs))
        if valid:
            request.launch_patient_id = (
                LaunchPatient.objects.filter(grant__code=code, grant__application=client)
                .values_list("patient_id", flat=True)
                .first()
            )
        return valid

    def _save_bearer_token(self, token: dict[str, Any], request: Any, *args: Any, **kwargs: Any) -> Any:
        refreshed = getattr(request, "refresh_token_instance", None)
        if refreshed is not None and getattr(request, "launch_patient_id", None) is None:
            # a refreshed token keeps the patient its predecessor was launched with
            request.launch_patient_id = (
                LaunchPatient.objects.filter(token_id=refreshed.access_token_id)
                .values_list("patient_id", flat=True)
                .first()
            )
        result = super()._save_bearer_token(token, request, *args, **kwargs)
        patient, picked = _launch_patient(request)
        if patient is not None:
            token["patient"] = f"p{patient.pk}"
            token["need_patient_banner"] = True
            if picked:
                _remember_launch(token, request, patient)
        return result


def _remember_launch(token: dict[str, Any], request: Any, patient: Any) -> None:
    """Tie the staff-picked patient to the access token just issued (looked up by its checksum)."""
    import hashlib

    from oauth2_provider.models import get_access_token_model

    checksum = hashlib.sha256(str(token["access_token"]).encode("utf-8")).hexdigest()
    access = get_access_token_model().objects.filter(token_checksum=checksum).first()
    if access is not None:
        LaunchPatient.objects.create(token=access, patient=patient, user=request.user)


def _launch_patient(request: Any) -> tuple[Any, bool]:
    """The patient context of a token and whether a staff member picked it: a patient who authorised
    patient-scoped access to their record, or the patient a staff member chose for `launch/patient`."""
    from kapclinic.patients.models import Patient

    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None, False
    wanted, other = smart.parse_scopes(list(request.scopes or []))
    if "launch/patient" not in other and not any(s.context == "patient" for s in wanted):
        return None, False
    registered = getattr(request.client, "fhir_client", None)
    if registered is None:
        return None, False
    picked = getattr(request, "launch_patient_id", None)
    if picked is not None:
        return Patient.objects.filter(pk=picked, clinic=registered.clinic).first(), True
    return Patient.objects.filter(user=user, clinic=registered.clinic).first(), False
