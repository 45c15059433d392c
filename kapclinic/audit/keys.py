"""The secret that keys the audit hash chain (HMAC-SHA256), kept out of the database.

settings.AUDIT_CHAIN_KEY (environment variable AUDIT_CHAIN_KEY) lists keys newest first as
`id:secret` pairs separated by commas, e.g. `2026b:<48 random characters>,2026a:<...>`. New events are
keyed with the first key and store its id (AuditEvent.key_id); verification looks each event's key up by
that id, so rotating is: put a new key first and KEEP the old ones after it (events are append-only and
are never re-keyed; dropping a key makes the events written under it unverifiable, and `audit_verify`
says so).

Without the key, someone who can write to the database can still change rows, but can no longer compute
hashes that verify: a rewrite is detected even when every later hash and the chain head were recomputed.

In development, demo and test (never production) an empty setting falls back to a key derived from
SECRET_KEY (id `dev`), so the demo works out of the box; production refuses to start without a real key
(system check audit.E001), and `signing_key()` raises ImproperlyConfigured there.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEV_KEY_ID = "dev"
MIN_SECRET_LENGTH = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,16}$")


def derived_dev_key(secret_key: str) -> bytes:
    return hashlib.sha256(b"kapclinic-audit-chain-dev-key:" + secret_key.encode()).digest()


def key_problems(raw: list[str]) -> list[str]:
    """A sentence for every malformed entry of AUDIT_CHAIN_KEY (empty list = well-formed)."""
    problems: list[str] = []
    seen: set[str] = set()
    for index, entry in enumerate(raw, start=1):
        kid, sep, secret = entry.partition(":")
        if not sep or not _KEY_ID.match(kid):
            problems.append(
                f"Entry number {index} of AUDIT_CHAIN_KEY is not `id:secret` with an id of 1-16 letters, "
                "digits, '.', '_' or '-'."
            )
        elif len(secret) < MIN_SECRET_LENGTH:
            problems.append(
                f"The secret of key {kid!r} in AUDIT_CHAIN_KEY is {len(secret)} characters long; "
                f"use at least {MIN_SECRET_LENGTH} random characters."
            )
        elif kid in seen:
            problems.append(f"The key id {kid!r} appears twice in AUDIT_CHAIN_KEY.")
        seen.add(kid)
    return problems


@functools.lru_cache(maxsize=8)
def _parse(raw: tuple[str, ...], secret_key: str, production: bool) -> tuple[tuple[str, bytes], ...]:
    if not raw:
        if production:
            raise ImproperlyConfigured("AUDIT_CHAIN_KEY must be set in production to write the audit trail.")
        return ((DEV_KEY_ID, derived_dev_key(secret_key)),)
    problems = key_problems(list(raw))
    if problems:
        raise ImproperlyConfigured(" ".join(problems))
    pairs = []
    for entry in raw:
        kid, _, secret = entry.partition(":")
        pairs.append((kid, secret.encode()))
    return tuple(pairs)


def chain_keys() -> tuple[tuple[str, bytes], ...]:
    """(key id, secret) pairs, newest (the signing key) first."""
    raw = tuple(getattr(settings, "AUDIT_CHAIN_KEY", []) or [])
    return _parse(raw, settings.SECRET_KEY, bool(getattr(settings, "IS_PRODUCTION", False)))


def signing_key() -> tuple[str, bytes]:
    return chain_keys()[0]


def key_by_id(kid: str) -> bytes | None:
    for known, secret in chain_keys():
        if known == kid:
            return secret
    return None


def mac(secret: bytes, text: str) -> str:
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()
