"""The hash under which emailed single-use link tokens are stored (measure links, calendar feeds,
two-factor enrolment links). Tokens are 256-bit random values (secrets.token_urlsafe(32)), so a plain
SHA-256 is enough: a database reader cannot turn the stored hash back into a working link."""

from __future__ import annotations

import hashlib


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
