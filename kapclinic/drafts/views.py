"""Draft endpoints for the long forms' autosave (static/js/site.js, forms marked data-draft-url)."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from kapclinic.audit.services import record_event
from kapclinic.core.actor import actor_from_request
from kapclinic.core.errors import DomainError
from kapclinic.drafts import selectors, services
from kapclinic.drafts.models import Draft
from kapclinic.drafts.registry import draft_form


def _saved_at(draft: Draft) -> str:
    return timezone.localtime(draft.updated_at).strftime("%H:%M")


@login_required
@require_http_methods(["GET", "POST"])
def draft(request: HttpRequest, key: str, object_id: int) -> HttpResponse:
    """GET: the author's draft (204 when there is none). POST {"data": {field: value}}: save it."""
    patient = draft_form(key).resolve(request, object_id)
    actor = actor_from_request(request)
    if request.method == "GET":
        found = selectors.draft_for(request.user, key, object_id)
        if found is None:
            return HttpResponse(status=204)
        if patient is not None:
            record_event(actor, "view", patient=patient, obj=found, object_type="draft", detail=key)
        return JsonResponse({"saved_at": _saved_at(found), "data": found.data})
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return JsonResponse({"error": "The draft is not valid JSON."}, status=400)
    if not isinstance(body, dict) or "data" not in body:
        return JsonResponse({"error": 'Send {"data": {field name: value}}.'}, status=400)
    try:
        saved = services.draft_save(actor, key, object_id=object_id, data=body["data"], patient=patient)
    except DomainError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"saved_at": _saved_at(saved)})


@login_required
@require_POST
def discard(request: HttpRequest, key: str, object_id: int) -> HttpResponse:
    patient = draft_form(key).resolve(request, object_id)
    services.draft_discard(actor_from_request(request), key, object_id=object_id, patient=patient)
    return HttpResponse(status=204)
