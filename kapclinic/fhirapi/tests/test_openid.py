"""`openid fhirUser` (docs/fhir-api.md#openid): an id_token signed with the published key, naming the
user's FHIR resource; none without `openid`."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from kapclinic.core.env import ConfigError
from kapclinic.fhirapi import signing_key
from kapclinic.fhirapi.tests.helpers import authorize_and_exchange, register_app


def _published_keys(client: Any) -> KeySet:
    config = client.get("/fhir/.well-known/smart-configuration").json()
    assert "sso-openid-connect" in config["capabilities"]
    answer = client.get(urlsplit(config["jwks_uri"]).path)
    assert answer.status_code == 200
    keys = answer.json()
    assert keys["keys"] and all("d" not in key for key in keys["keys"])  # public halves only
    return KeySet.import_key_set(keys)


def _claims(client: Any, id_token: str) -> dict[str, Any]:
    token = jwt.decode(id_token, _published_keys(client), algorithms=["RS256"])
    assert token.header["alg"] == "RS256"
    return dict(token.claims)


def test_patient_id_token_names_their_patient_resource(world: Any, client: Any, settings: Any) -> None:
    app = register_app(world)
    answer = authorize_and_exchange(
        client, app, world.patient_user, "launch/patient patient/*.rs openid fhirUser"
    )
    assert answer.status_code == 200, answer.content
    data = answer.json()
    claims = _claims(client, data["id_token"])
    assert claims["fhirUser"] == f"{settings.SITE_URL}/fhir/Patient/p{world.patient.pk}"
    assert claims["iss"] == f"{settings.SITE_URL}/fhir"
    assert claims["aud"] == app.client_id
    assert claims["sub"] == str(world.patient_user.pk)
    assert data["patient"] == f"p{world.patient.pk}"


def test_staff_id_token_names_their_practitioner_resource(world: Any, client: Any, settings: Any) -> None:
    app = register_app(world)
    data = authorize_and_exchange(client, app, world.therapist, "user/*.rs openid fhirUser").json()
    claims = _claims(client, data["id_token"])
    assert claims["fhirUser"] == f"{settings.SITE_URL}/fhir/Practitioner/pr{world.therapist.pk}"
    # the Practitioner it names is readable with the same token
    practitioner = client.get(
        urlsplit(claims["fhirUser"]).path, HTTP_AUTHORIZATION=f"Bearer {data['access_token']}"
    )
    assert practitioner.status_code == 200
    assert practitioner.json()["id"] == f"pr{world.therapist.pk}"


def test_without_openid_there_is_no_id_token(world: Any, client: Any) -> None:
    app = register_app(world)
    data = authorize_and_exchange(client, app, world.patient_user, "launch/patient patient/*.rs").json()
    assert "access_token" in data and "id_token" not in data


def test_openid_without_fhiruser_carries_no_fhiruser_claim(world: Any, client: Any) -> None:
    app = register_app(world)
    data = authorize_and_exchange(client, app, world.therapist, "user/*.rs openid").json()
    claims = _claims(client, data["id_token"])
    assert "fhirUser" not in claims and claims["sub"] == str(world.therapist.pk)


def test_userinfo_answers_fhiruser(world: Any, client: Any, settings: Any) -> None:
    app = register_app(world)
    data = authorize_and_exchange(client, app, world.patient_user, "patient/*.rs openid fhirUser").json()
    answer = client.get("/fhir/auth/userinfo", HTTP_AUTHORIZATION=f"Bearer {data['access_token']}")
    assert answer.status_code == 200, answer.content
    assert answer.json()["fhirUser"] == f"{settings.SITE_URL}/fhir/Patient/p{world.patient.pk}"
    assert client.get("/fhir/auth/userinfo", HTTP_AUTHORIZATION="Bearer nope").status_code in (401, 403)


def test_openid_configuration_matches_smart_configuration(client: Any) -> None:
    smart = client.get("/fhir/.well-known/smart-configuration").json()
    oidc = client.get("/fhir/.well-known/openid-configuration").json()
    for field in ("issuer", "jwks_uri", "token_endpoint", "authorization_endpoint", "userinfo_endpoint"):
        assert oidc[field] == smart[field]
    assert oidc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert "openid" in smart["scopes_supported"] and "fhirUser" in smart["scopes_supported"]


def test_without_a_key_there_is_no_openid(client: Any, settings: Any) -> None:
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_ENABLED": False, "OIDC_RSA_PRIVATE_KEY": ""}
    smart = client.get("/fhir/.well-known/smart-configuration").json()
    assert "sso-openid-connect" not in smart["capabilities"] and "jwks_uri" not in smart
    assert "openid" not in smart["scopes_supported"]
    assert client.get("/fhir/.well-known/openid-configuration").status_code == 404


def test_key_setting_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FHIR_ID_TOKEN_KEY"):
        signing_key.from_setting("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----")
    with pytest.raises(ConfigError, match="readable PEM file"):
        signing_key.from_setting(str(tmp_path / "missing.pem"))
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    def pem(key: Any) -> str:
        return str(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode()
        )

    with pytest.raises(ConfigError, match="RSA"):
        signing_key.check(pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(ConfigError, match="1024 bits"):
        signing_key.check(pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)))
    good = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    (tmp_path / "key.pem").write_text(good)
    assert signing_key.from_setting(str(tmp_path / "key.pem")) == good
    assert signing_key.from_setting(good.replace("\n", "\\n")) == good
    # production: only from the environment (none: id_tokens off); development: generated once, kept
    assert signing_key.id_token_key("", production=True, test=False, var_dir=tmp_path) == ""
    first = signing_key.id_token_key("", production=False, test=False, var_dir=tmp_path / "var")
    assert first == signing_key.id_token_key("", production=False, test=False, var_dir=tmp_path / "var")
    assert (tmp_path / "var" / signing_key.DEV_FILE_NAME).stat().st_mode & 0o077 == 0


def test_deploy_check_warns_without_a_key(settings: Any) -> None:
    from kapclinic.fhirapi.checks import id_token_key

    assert id_token_key() == []
    settings.FHIR_ID_TOKEN_KEY = ""
    assert [w.id for w in id_token_key()] == ["fhirapi.W001"]
