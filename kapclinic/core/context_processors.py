from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def _public_clinic() -> Any:
    from kapclinic.accounts.models import Clinic

    return Clinic.objects.filter(is_public=True, is_active=True).order_by("id").first()


class May:
    """`{% if may.use_calendar %}`: the policy's answer (`policy.clinic_can`) for a `ClinicAction`, so that
    templates show a link or a button by the same decision as the page behind it, never by role names.
    Asked lazily, once per action and request."""

    def __init__(self, request: HttpRequest) -> None:
        self._request = request
        self._answers: dict[str, bool] = {}

    def __getitem__(self, name: str) -> bool:
        from kapclinic.core.actor import actor_from_request
        from kapclinic.policy import ClinicAction, clinic_can

        if name not in self._answers:
            try:
                action = ClinicAction(name)
            except ValueError:
                raise KeyError(name) from None
            self._answers[name] = clinic_can(actor_from_request(self._request), action)
        return self._answers[name]


def clinic_context(request: HttpRequest) -> dict[str, Any]:
    from kapclinic.accounts.middleware import idle_seconds_left

    return {
        # Staff pages warn before the idle sign-out (static/js/site.js reads it from <body>).
        "idle_seconds_left": idle_seconds_left(request) if hasattr(request, "session") else None,
        "idle_limit_seconds": settings.STAFF_IDLE_TIMEOUT_MINUTES * 60,
        "current_clinic": getattr(request, "clinic", None),
        "current_role": getattr(request, "role", None),
        "current_patient": getattr(request, "patient", None),
        "may": May(request),
        "user_clinics": getattr(request, "user_clinics", ()),
        "kap_env": settings.KAP_ENV,
        "public_clinic": SimpleLazyObject(_public_clinic),
    }
