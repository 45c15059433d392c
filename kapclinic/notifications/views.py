"""The staff notification bell: a small count polled by htmx, a list page, read marks per person."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from kapclinic.core import clock
from kapclinic.core.actor import actor_from_request
from kapclinic.notifications import sources
from kapclinic.notifications.models import NotificationRead
from kapclinic.policy import ClinicAction, require_clinic


@login_required
def badge(request: HttpRequest) -> HttpResponse:
    """The bell's count (polled every 30 s; the poll is not activity for the idle sign-out)."""
    require_clinic(request, ClinicAction.NOTIFICATIONS)
    count = len(sources.unread(actor_from_request(request)))
    response = render(request, "notifications/_badge.html", {"count": count})
    response["Cache-Control"] = "no-store"
    return response


@login_required
def index(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.NOTIFICATIONS)
    actor = actor_from_request(request)
    rows = sources.with_read(actor, sources.items(actor))
    return render(
        request,
        "notifications/index.html",
        {"rows": rows, "unread": sum(1 for _i, seen in rows if not seen)},
    )


def _mark(user_id: int, keys: list[str]) -> None:
    now = clock.now()
    for key in keys:
        NotificationRead.objects.update_or_create(user_id=user_id, key=key, defaults={"read_at": now})


@login_required
def open_item(request: HttpRequest, key: str) -> HttpResponse:
    """Mark one notification read and go to the thing it points to (only one of the person's own
    current notifications: the address is built here, never taken from the request)."""
    require_clinic(request, ClinicAction.NOTIFICATIONS)
    actor = actor_from_request(request)
    item = sources.find(actor, key)
    if item is None or actor.user is None:
        raise Http404
    _mark(actor.user.pk, [item.key])
    return redirect(item.url)


@login_required
@require_POST
def read_all(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.NOTIFICATIONS)
    actor = actor_from_request(request)
    assert actor.user is not None
    _mark(actor.user.pk, [i.key for i in sources.unread(actor)])
    return redirect(reverse("notifications:index"))
