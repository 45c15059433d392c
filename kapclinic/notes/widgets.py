from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.formats import date_format

from kapclinic.core.actor import actor_from_request
from kapclinic.notes import selectors
from kapclinic.notes.models import Note, NoteStatus
from kapclinic.policy import Action, can

_STATUS_LABELS: dict[str, str] = dict(NoteStatus.choices)


def chart_context(request: HttpRequest, patient: Any) -> dict[str, Any]:
    """The chart's five latest notes: only the shown columns (not the note text), each row's link, day
    and status label written out here rather than by a tag or filter per row in the template."""
    actor = actor_from_request(request)
    rows = (
        Note.objects.filter(patient_id=patient.pk)
        .order_by("-service_date", "-created_at", "-id")
        .values_list("id", "service_date", "title", "status")[:5]
    )
    return {
        "notes": [
            {
                "url": reverse("notes:detail", args=[patient.pk, pk]),
                "day": date_format(day, "j M"),
                "title": title,
                "signed": status == NoteStatus.SIGNED,
                "status": _STATUS_LABELS.get(status, status),
            }
            for pk, day, title, status in rows
        ],
        "can_write": can(actor, Action.EDIT_CLINICAL, patient),
    }


def drafts_context(request: HttpRequest) -> dict[str, Any]:
    return {"drafts": selectors.draft_count(actor_from_request(request))}
