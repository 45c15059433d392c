from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from kapclinic.audit.services import record_event
from kapclinic.core.actor import actor_from_request
from kapclinic.patients.models import PathwayStatus, Patient
from kapclinic.patients.selectors import caseload_counts

CASELOAD_LIMIT = 25


def caseload_context(request: HttpRequest) -> dict[str, Any]:
    """The signed-in clinician's care-team patients in treatment, with counts by pathway stage."""
    actor = actor_from_request(request)
    assert actor.user is not None and actor.clinic is not None
    mine = Patient.objects.filter(clinic=actor.clinic, care_team__user_id=actor.user.pk)
    counts = caseload_counts(actor.clinic.pk, actor.user.pk)
    rows = list(
        mine.exclude(pathway_status=PathwayStatus.DISCHARGED)
        .order_by("legal_last_name", "legal_first_name", "id")
        .only("id", "legal_first_name", "legal_last_name", "preferred_name", "pathway_status", "mrn")[
            :CASELOAD_LIMIT
        ]
    )
    record_event(actor, "list", object_type="caseload", detail=f"n={len(rows)}")
    return {
        "patients": rows,
        "counts": counts,
        "statuses": PathwayStatus.choices,
        "more": counts["total"] - counts[PathwayStatus.DISCHARGED] > len(rows),
    }
