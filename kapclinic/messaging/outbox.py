"""The one page of outgoing emails and its "Retry now" button, shared by every list of them: the
clinic's outgoing email (messaging) and appointment reminders (scheduling). Failed and retrying sends
first (`?show=all` for every one), 50 a page, listed once in the audit trail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from kapclinic.audit.services import record_event
from kapclinic.core.actor import Actor
from kapclinic.core.errors import DomainError
from kapclinic.policy import ClinicAction, require_clinic

PAGE_SIZE = 50


def outbox_page(
    request: HttpRequest,
    action: ClinicAction,
    rows: Callable[[Any, bool], QuerySet[Any]],
    *,
    template: str,
    object_type: str,
) -> HttpResponse:
    """The list: `rows(clinic, problems_only)` gives the sends to show."""
    actor = require_clinic(request, action)
    problems = request.GET.get("show") != "all"
    page = Paginator(rows(actor.clinic, problems), PAGE_SIZE).get_page(request.GET.get("page"))
    record_event(actor, "list", object_type=object_type, detail=f"n={len(page.object_list)}")
    return render(
        request, template, {"page": page, "problems": problems, "extra_query": "" if problems else "show=all"}
    )


def outbox_retry(
    request: HttpRequest,
    action: ClinicAction,
    model: type[Model],
    pk: int,
    retry: Callable[[Actor, Any], Any],
    *,
    queued: str,
    back_to: str,
) -> HttpResponse:
    """The button: send one of this clinic's failed or retrying sends again now, then back to the list."""
    actor = require_clinic(request, action)
    found = get_object_or_404(model, pk=pk, clinic=actor.clinic)
    try:
        retry(actor, found)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, queued)
    return redirect(back_to)
