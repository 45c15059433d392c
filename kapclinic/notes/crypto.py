"""Encryption at rest for psychotherapy process notes (cryptography's Fernet / MultiFernet).

Keys come from settings.PROCESS_NOTE_KEYS (environment variable PROCESS_NOTE_KEYS, comma-separated Fernet
keys, newest first). Encryption always uses the first key; decryption tries every key, so a key can be
rotated in without losing a note: put the new key first, run `manage.py rotate_process_note_keys`, then
drop the old key.

In development, demo and test (never production) an empty setting falls back to a deterministic key
derived from SECRET_KEY, so the demo works out of the box; production refuses to start without real
keys (system check notes.E001) and `encrypt`/`decrypt` raise ImproperlyConfigured there.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = ["InvalidToken", "decrypt", "encrypt", "fernet", "key_problems", "keys"]


def derived_dev_key() -> bytes:
    digest = hashlib.sha256(b"kapclinic-process-notes-dev-key:" + settings.SECRET_KEY.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def key_problems(raw: list[str]) -> list[str]:
    problems = []
    for index, key in enumerate(raw, start=1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            problems.append(
                f"Key number {index} in PROCESS_NOTE_KEYS is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes)."
            )
    return problems


def keys() -> list[bytes]:
    raw = list(getattr(settings, "PROCESS_NOTE_KEYS", []) or [])
    if not raw:
        if getattr(settings, "IS_PRODUCTION", False):
            raise ImproperlyConfigured("PROCESS_NOTE_KEYS must be set in production to store process notes.")
        return [derived_dev_key()]
    problems = key_problems(raw)
    if problems:
        raise ImproperlyConfigured(" ".join(problems))
    return [k.encode() for k in raw]


def fernet() -> MultiFernet:
    return MultiFernet([Fernet(k) for k in keys()])


def encrypt(text: str) -> str:
    return fernet().encrypt(text.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    return fernet().decrypt(token.encode("ascii")).decode("utf-8")
