from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register


@register(deploy=True)
def id_token_key(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Production without FHIR_ID_TOKEN_KEY: apps asking `openid fhirUser` get no id_token."""
    if getattr(settings, "FHIR_ID_TOKEN_KEY", ""):
        return []
    return [
        Warning(
            "FHIR_ID_TOKEN_KEY is not set: the FHIR API issues no OpenID Connect id_tokens (`openid "
            "fhirUser` is ignored and discovery does not offer sso-openid-connect).",
            hint="Set FHIR_ID_TOKEN_KEY to an RSA private key of at least 2048 bits (PEM text or a file "
            "path), e.g. made with: openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048",
            id="fhirapi.W001",
        )
    ]
