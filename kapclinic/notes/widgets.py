from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from kapclinic.core.actor import actor_from_request
from kapclinic.notes import selectors
from kapclinic.notes.models import Note
from kapclinic.policy import Action, can


def chart_context(request: HttpRequest, patient: Any) -> dict[str, Any]:
    actor = actor_from_request(request)
    return {
        "notes": list(
            Note.objects.filter(patient=patient).order_by("-service_date", "-created_at", "-id")[:5]
        ),
        "can_write": can(actor, Action.EDIT_CLINICAL, patient),
    }


def drafts_context(request: HttpRequest) -> dict[str, Any]:
    return {"drafts": selectors.draft_count(actor_from_request(request))}
