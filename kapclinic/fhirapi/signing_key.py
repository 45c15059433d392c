"""The RSA key that signs OpenID Connect id_tokens (`openid fhirUser`, docs/fhir-api.md#openid).

settings.FHIR_ID_TOKEN_KEY (environment variable FHIR_ID_TOKEN_KEY) holds a PEM RSA private key of at
least 2048 bits, either the PEM text itself (newlines may be written `\\n`) or the path of a PEM file.
django-oauth-toolkit signs with it (RS256, OIDC_RSA_PRIVATE_KEY) and publishes its public half at
`/fhir/auth/jwks`.

- production: only from the environment; without it id_tokens are off (`openid` is ignored, discovery
  does not offer `sso-openid-connect`) and the deploy check fhirapi.W001 says so.
- development and demo: generated once and kept in `var/fhir-id-token-key.pem` (mode 0600), so every
  process of the server signs with the same key.
- test: generated once per process, kept in memory.

Imported by settings: no Django imports here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kapclinic.core.env import (
    ConfigError,  # the key cannot be used: the message names the setting, never the key
)

MIN_BITS = 2048
DEV_FILE_NAME = "fhir-id-token-key.pem"
_PROCESS_KEY: list[str] = []


def _generate() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=MIN_BITS)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def check(pem: str) -> str:
    """The PEM if it is an unencrypted RSA private key of at least MIN_BITS bits; ConfigError otherwise."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        reason = "it is encrypted" if isinstance(exc, TypeError) else "it is not a PEM private key"
        raise ConfigError(f"The environment variable FHIR_ID_TOKEN_KEY cannot be used: {reason}.") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError("The environment variable FHIR_ID_TOKEN_KEY must hold an RSA key (RS256).")
    if key.key_size < MIN_BITS:
        raise ConfigError(
            f"The RSA key in FHIR_ID_TOKEN_KEY has {key.key_size} bits; at least {MIN_BITS} are needed."
        )
    return pem


def from_setting(raw: str) -> str:
    """The PEM text of the setting: the value itself, or the content of the file it names."""
    text = raw.strip().replace("\\n", "\n")
    if not text.startswith("-----BEGIN"):
        try:
            text = Path(text).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                "The environment variable FHIR_ID_TOKEN_KEY is neither a PEM key nor a readable PEM file "
                f"({type(exc).__name__})."
            ) from None
    return check(text)


def _dev_key(directory: Path) -> str:
    """The development key kept in `directory`, created on first use (safe when processes race)."""
    path = directory / DEV_FILE_NAME
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".fhir-key-")
        try:
            os.fchmod(handle, 0o600)
            os.write(handle, _generate().encode())
            os.close(handle)
            with contextlib.suppress(FileExistsError):  # another process got there first: use theirs
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    return check(path.read_text(encoding="ascii"))


def id_token_key(raw: str, *, production: bool, test: bool, var_dir: Path) -> str:
    """The PEM key that signs id_tokens, or "" (id_tokens off: production without the setting)."""
    if raw.strip():
        return from_setting(raw)
    if production:
        return ""
    if test:
        if not _PROCESS_KEY:
            _PROCESS_KEY.append(_generate())
        return _PROCESS_KEY[0]
    return _dev_key(var_dir)
