from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import time_format

from kapclinic.audit.services import record_event
from kapclinic.core.actor import actor_from_request
from kapclinic.patients.models import PathwayStatus, Patient
from kapclinic.patients.selectors import caseload_counts

CASELOAD_LIMIT = 25

_STATUS_LABELS: dict[str, str] = {str(value): str(label) for value, label in PathwayStatus.choices}


@dataclass(frozen=True)
class CaseloadRow:
    """One patient of the home page's caseload widget, ready to print."""

    url: str  # the chart
    name: str  # Patient.display_name
    status: str  # the pathway stage's label


def caseload_context(request: HttpRequest) -> dict[str, Any]:
    """The signed-in clinician's care-team patients in treatment, with counts by pathway stage.

    One query of the shown columns (no model instances); each row's chart link, name and stage label are
    written here once instead of a ``{% url %}`` and ``get_pathway_status_display`` per row in the
    template, and so is the census line (issue #7)."""
    actor = actor_from_request(request)
    assert actor.user is not None and actor.clinic is not None
    counts = caseload_counts(actor.clinic.pk, actor.user.pk)
    found = list(
        Patient.objects.filter(clinic=actor.clinic, care_team__user_id=actor.user.pk)
        .exclude(pathway_status=PathwayStatus.DISCHARGED)
        .order_by("legal_last_name", "legal_first_name", "id")
        .values_list("id", "preferred_name", "legal_first_name", "legal_last_name", "pathway_status")[
            :CASELOAD_LIMIT
        ]
    )
    record_event(actor, "list", object_type="caseload", detail=f"n={len(found)}")
    rows = [
        CaseloadRow(
            reverse("patients:chart", args=[pk]),
            f"{preferred or first} {last}",
            _STATUS_LABELS.get(status, status),
        )
        for pk, preferred, first, last, status in found
    ]
    return {
        "patients": rows,
        "counts": counts,
        "census": " · ".join(f"{label}: {counts[value]}" for value, label in _STATUS_LABELS.items()),
        "counted_at": time_format(timezone.localtime(counts["as_of"]), "H:i"),
        "more": counts["total"] - counts[PathwayStatus.DISCHARGED] > len(rows),
    }
