from __future__ import annotations

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from kapclinic.audit.services import record_event
from kapclinic.core.actor import actor_from_request
from kapclinic.core.errors import DomainError
from kapclinic.messaging import selectors, services
from kapclinic.messaging.models import OutboundMessage
from kapclinic.policy import ClinicAction, require_clinic

#: Admins run the clinic's mail; prescribers carry safety alerts and may need to push one through.


@login_required
def index(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.VIEW_MESSAGES)
    actor = actor_from_request(request)
    problems = request.GET.get("show") != "all"
    page = Paginator(selectors.messages_for_clinic(actor.clinic, problems_only=problems), 50).get_page(
        request.GET.get("page")
    )
    record_event(actor, "list", object_type="messaging.outboundmessage", detail=f"n={len(page.object_list)}")
    return render(
        request,
        "messaging/index.html",
        {"page": page, "problems": problems, "extra_query": "" if problems else "show=all"},
    )


@login_required
@require_POST
def retry(request: HttpRequest, message_id: int) -> HttpResponse:
    require_clinic(request, ClinicAction.VIEW_MESSAGES)
    actor = actor_from_request(request)
    message = get_object_or_404(OutboundMessage, pk=message_id, clinic=actor.clinic)
    try:
        services.retry_now(actor, message)
    except DomainError as exc:
        flash.error(request, str(exc))
    else:
        flash.success(request, "The email was queued to be sent again.")
    return redirect(reverse("messaging:index"))
