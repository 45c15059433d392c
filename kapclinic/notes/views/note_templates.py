"""The clinic's note templates: the list, editing, retiring and reinstating, built-in visibility."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from kapclinic.core.actor import actor_from_request
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.notes import services
from kapclinic.notes.forms import (
    BuiltinVisibilityForm,
    TemplateEditForm,
    TemplateForm,
    VersionForm,
)
from kapclinic.notes.models import ClinicNoteTemplate, ClinicNoteTemplateVersion
from kapclinic.notes.templates_data import (
    INTEGRATION,
    builtin_templates,
    hidden_builtin_keys,
)
from kapclinic.policy import ClinicAction, require_clinic


def _stale_form_hint(form: Any) -> None:
    """A missing or garbled hidden ``version`` is not the user's doing: say what to do instead."""
    if "version" in form.errors:
        form.add_error(None, "This page is out of date or incomplete; reload it and make your changes again.")


def _templates_page(
    request: HttpRequest, actor: Any, form: TemplateForm, *, status: int = 200, error: str = ""
) -> HttpResponse:
    hidden = hidden_builtin_keys(actor.clinic)
    builtin = [
        {"t": t, "hidden": k in hidden, "required": k == INTEGRATION} for k, t in builtin_templates().items()
    ]
    custom = (
        ClinicNoteTemplate.objects.filter(clinic=actor.clinic)
        .select_related("created_by", "retired_by")
        .prefetch_related(
            Prefetch("versions", queryset=ClinicNoteTemplateVersion.objects.select_related("created_by"))
        )
        .order_by("-is_active", "title")
    )
    return render(
        request,
        "notes/templates.html",
        {"form": form, "builtin": builtin, "custom": custom, "error": error},
        status=status,
    )


@login_required
def templates(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.MANAGE_NOTE_TEMPLATES)
    actor = actor_from_request(request)
    form = TemplateForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                services.template_create(
                    actor,
                    title=form.cleaned_data["title"],
                    section_labels=form.cleaned_data["sections"].splitlines(),
                )
            except DomainError as exc:
                exc.add_to_form(form)
            else:
                messages.success(request, "Template added; it is offered for new notes from now on.")
                return redirect("notes:templates")
    return _templates_page(request, actor, form, status=status)


def _clinic_template(actor: Any, template_id: int) -> ClinicNoteTemplate:
    row = ClinicNoteTemplate.objects.filter(pk=template_id, clinic=actor.clinic).first()
    if row is None:
        raise Http404  # another clinic's template does not exist here
    return row


@login_required
def template_edit(request: HttpRequest, template_id: int) -> HttpResponse:
    """Edit a clinic template: saving makes its next version; notes keep the version they used."""
    require_clinic(request, ClinicAction.MANAGE_NOTE_TEMPLATES)
    actor = actor_from_request(request)
    row = _clinic_template(actor, template_id)
    initial = {
        "title": row.title,
        "sections": "\n".join(s["label"] for s in row.sections),
        "version": row.version,
    }
    form = TemplateEditForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        status = 400
        if not form.is_valid():
            _stale_form_hint(form)
        else:
            try:
                row = services.template_update(
                    actor,
                    row,
                    expected_version=form.cleaned_data["version"],
                    title=form.cleaned_data["title"],
                    section_labels=form.cleaned_data["sections"].splitlines(),
                )
            except ConflictError as exc:
                form.add_error(None, str(exc))
                status = 409
            except DomainError as exc:
                exc.add_to_form(form)
            else:
                messages.success(
                    request,
                    f"Saved as version {row.number}. New notes use it; notes already written keep the "
                    "version they were written with.",
                )
                return redirect("notes:templates")
    return render(request, "notes/template_edit.html", {"t": row, "form": form}, status=status)


def _template_active(request: HttpRequest, template_id: int, *, active: bool) -> HttpResponse:
    require_clinic(request, ClinicAction.MANAGE_NOTE_TEMPLATES)
    actor = actor_from_request(request)
    row = _clinic_template(actor, template_id)
    form = VersionForm(request.POST)
    if not form.is_valid():
        return _templates_page(
            request, actor, TemplateForm(), status=400, error="Reload the page and try again."
        )
    try:
        services.template_set_active(actor, row, expected_version=form.cleaned_data["version"], active=active)
    except ConflictError as exc:
        return _templates_page(request, actor, TemplateForm(), status=409, error=str(exc))
    except DomainError as exc:
        return _templates_page(request, actor, TemplateForm(), status=400, error=exc.message)
    if active:
        messages.success(request, f"{row.title} is offered for new notes again.")
    else:
        messages.success(
            request,
            f"{row.title} is retired: no longer offered for new notes; notes written with it are kept.",
        )
    return redirect("notes:templates")


@login_required
@require_POST
def template_retire(request: HttpRequest, template_id: int) -> HttpResponse:
    return _template_active(request, template_id, active=False)


@login_required
@require_POST
def template_reinstate(request: HttpRequest, template_id: int) -> HttpResponse:
    return _template_active(request, template_id, active=True)


@login_required
@require_POST
def builtin_visibility(request: HttpRequest, key: str) -> HttpResponse:
    """Hide a built-in template from this clinic's new-note choices, or offer it again."""
    require_clinic(request, ClinicAction.MANAGE_NOTE_TEMPLATES)
    actor = actor_from_request(request)
    form = BuiltinVisibilityForm(request.POST)
    if not form.is_valid():
        return _templates_page(request, actor, TemplateForm(), status=400, error="Choose hide or show.")
    hide = form.cleaned_data["action"] == "hide"
    try:
        services.builtin_set_hidden(actor, key, hidden=hide)
    except DomainError as exc:
        return _templates_page(request, actor, TemplateForm(), status=400, error=exc.message)
    messages.success(
        request,
        "Hidden from this clinic's new notes; notes already written with it are unchanged."
        if hide
        else "Offered for new notes again.",
    )
    return redirect("notes:templates")
