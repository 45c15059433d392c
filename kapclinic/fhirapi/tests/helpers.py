from __future__ import annotations

import datetime as dt
import json
from typing import Any

from kapclinic.measures import services as measures
from kapclinic.testing.factories import actor_for


def phq9(world: Any, total_items: list[int] | None = None, *, patient: Any = None, days_ago: int = 0) -> Any:
    return measures.response_submit(
        actor_for(world.prescriber, world.clinic),
        patient or world.patient,
        instrument="PHQ-9",
        version=None,
        answers=total_items or [1, 1, 1, 1, 1, 1, 1, 0, 0],
        source="paper",
        entered_by=world.prescriber,
        completed_at=dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC) + dt.timedelta(days=days_ago),
    )


def body(response: Any) -> Any:
    assert response["Content-Type"].startswith("application/fhir+json")
    return json.loads(response.content)


def backend_keys() -> tuple[Any, dict[str, Any]]:
    """A private EC P-384 key and its public JWKS (as a backend service would hold and register)."""
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-384", parameters={"kid": "k1", "alg": "ES384"})
    return key, {"keys": [key.as_dict(private=False)]}


def assertion(
    key: Any, client_id: str, *, jti: str | None = None, aud: str | None = None, seconds: int = 240
) -> str:
    import time
    import uuid

    from joserfc import jwt

    from kapclinic.fhirapi.oauth import token_url

    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud or token_url(),
        "exp": now + seconds,
        "jti": jti or uuid.uuid4().hex,
    }
    return jwt.encode({"alg": "ES384", "kid": "k1", "typ": "JWT"}, claims, key, algorithms=["ES384"])


def backend_token(client: Any, key: Any, client_id: str, scope: str = "system/*.rs", **kw: Any) -> Any:
    return client.post(
        "/fhir/auth/token",
        {
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion(key, client_id, **kw),
        },
    )


def register_backend(world: Any, scopes: str = "system/*.rs", clinic: Any = None) -> tuple[Any, Any]:
    from kapclinic.core.actor import Actor
    from kapclinic.fhirapi import clients

    key, jwks = backend_keys()
    clinic = clinic or world.clinic
    registered = clients.register(Actor.system(clinic), clinic, name="Registry", scopes=scopes, jwks=jwks)
    return registered, key


def register_app(
    world: Any, scopes: str = "launch/patient patient/*.rs user/*.rs openid fhirUser offline_access"
) -> Any:
    from kapclinic.core.actor import Actor
    from kapclinic.fhirapi import clients
    from kapclinic.fhirapi.models import ClientKind

    return clients.register(
        Actor.system(world.clinic),
        world.clinic,
        name="Mood app",
        scopes=scopes,
        kind=ClientKind.APP,
        redirect_uris="https://app.example.test/callback",
    )


def pkce() -> tuple[str, str]:
    import base64
    import hashlib
    import secrets

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_and_exchange(client: Any, app: Any, user: Any, scope: str, method: str = "S256") -> Any:
    """Sign in as `user`, allow `app`, exchange the code: the token endpoint's response."""
    from urllib.parse import parse_qs, urlsplit

    verifier, challenge = pkce()
    client.force_login(user)
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": "https://app.example.test/callback",
        "scope": scope,
        "state": "s1",
        "aud": "http://testserver/fhir",
        "code_challenge": challenge if method == "S256" else verifier,
        "code_challenge_method": method,
    }
    form = client.get("/fhir/auth/authorize", params)
    if form.status_code != 200:
        return form
    posted = client.post("/fhir/auth/authorize", {**params, "allow": "Authorize"})
    location = posted.get("Location", "")
    code = parse_qs(urlsplit(location).query).get("code", [""])[0]
    client.logout()
    return client.post(
        "/fhir/auth/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "https://app.example.test/callback",
            "client_id": app.client_id,
            "code_verifier": verifier,
        },
    )
