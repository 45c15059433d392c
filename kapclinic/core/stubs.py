from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest


def require_roles(request: HttpRequest, roles: Iterable[str]) -> str:
    """Refuse (403) unless the signed-in user's role in the current clinic is one of `roles`."""
    role = getattr(request, "role", None)
    if role is None or role not in set(roles):
        raise PermissionDenied("Your role does not allow this page.")
    return str(role)
