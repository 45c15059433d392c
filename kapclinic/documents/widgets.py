from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from kapclinic.core.actor import actor_from_request
from kapclinic.documents.models import ADMINISTRATIVE, Document, Status
from kapclinic.policy import Action, can


def chart_context(request: HttpRequest, patient: Any) -> dict[str, Any]:
    """The chart's five newest documents the viewer may see (administrative only for front desk and
    admins), and whether the viewer may print clinical records."""
    actor = actor_from_request(request)
    clinical = can(actor, Action.VIEW_CLINICAL, patient)
    qs = Document.objects.filter(patient_id=patient.pk).exclude(status=Status.REJECTED)
    if not clinical:
        qs = qs.filter(category__in=[str(c) for c in ADMINISTRATIVE])
    return {
        "docs": list(qs.only("id", "title", "uploaded_at", "status").order_by("-uploaded_at", "-id")[:5]),
        "can_upload": can(actor, Action.EDIT_DEMOGRAPHICS, patient)
        or can(actor, Action.EDIT_CLINICAL, patient),
        "records": clinical,
    }
