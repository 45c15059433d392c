from __future__ import annotations

from collections.abc import Iterable

from django.http import HttpRequest


def require_roles(request: HttpRequest, roles: Iterable[str]) -> str:
    """Refuse (403, audited as "denied" through policy) unless the signed-in user's role in the current
    clinic is one of `roles`."""
    from kapclinic.policy import refuse

    role = getattr(request, "role", None)
    if role is None or role not in set(roles):
        raise refuse(request, "Your role does not allow this page.")
    return str(role)
