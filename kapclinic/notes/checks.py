from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register


@register()
def process_note_keys(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from kapclinic.notes.crypto import key_problems

    raw = list(getattr(settings, "PROCESS_NOTE_KEYS", []) or [])
    errors = [Error(p, id="notes.E002") for p in key_problems(raw)]
    if not raw and getattr(settings, "IS_PRODUCTION", False):
        errors.append(
            Error(
                "PROCESS_NOTE_KEYS is empty: production needs at least one Fernet key to encrypt "
                "psychotherapy process notes.",
                hint='Generate one with: python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"',
                id="notes.E001",
            )
        )
    return errors
