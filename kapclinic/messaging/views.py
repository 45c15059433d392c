from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from kapclinic.messaging import selectors, services
from kapclinic.messaging.models import OutboundMessage
from kapclinic.messaging.outbox import outbox_page, outbox_retry
from kapclinic.policy import ClinicAction


@login_required
def index(request: HttpRequest) -> HttpResponse:
    return outbox_page(
        request,
        ClinicAction.VIEW_MESSAGES,
        lambda clinic, problems: selectors.messages_for_clinic(clinic, problems_only=problems),
        template="messaging/index.html",
        object_type="messaging.outboundmessage",
    )


@login_required
@require_POST
def retry(request: HttpRequest, message_id: int) -> HttpResponse:
    return outbox_retry(
        request,
        ClinicAction.VIEW_MESSAGES,
        OutboundMessage,
        message_id,
        services.retry_now,
        queued="The email was queued to be sent again.",
        back_to=reverse("messaging:index"),
    )
