from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.text import Truncator
from django.utils.translation import pgettext

from kapclinic.audit.models import AuditAction, AuditEvent
from kapclinic.core import dates
from kapclinic.core.forms import FixedChoiceSelect, KapForm
from kapclinic.core.params import id_param
from kapclinic.policy import ClinicAction, require_clinic

PAGE = 50

#: Action labels by code, read once: ``get_action_display()`` per row walks the field's choices.
ACTION_LABELS: dict[str, str] = {str(value): str(label) for value, label in AuditAction.choices}


class AuditFilterForm(KapForm):
    mrn = forms.CharField(label="Patient record number", required=False, max_length=20)
    actor = forms.CharField(label="Staff email", required=False, max_length=200)
    action = forms.ChoiceField(
        choices=[("", "Any action"), *AuditAction.choices], required=False, widget=FixedChoiceSelect
    )
    event = forms.RegexField(
        label="Event",
        required=False,
        max_length=80,
        regex=r"^[a-z][a-z0-9_.]*$",
        help_text="A namespaced action or its start, e.g. session. or patient.update",
        error_messages={"invalid": "Lowercase letters, digits, _ and . only, e.g. session.transition."},
    )
    date_from = forms.DateField(
        label="From",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[dates.browse_validator("From")],
    )
    date_to = forms.DateField(
        label="To",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[dates.browse_validator("To")],
    )


#: The columns the log prints (values query: no user or patient model instances).
_COLUMNS = (
    "pk",
    "at",
    "actor__email",
    "actor_role",
    "action",
    "patient__mrn",
    "object_type",
    "object_id",
    "request_id",
    "ip",
    "name",
    "data",
)


def _row(values: tuple[Any, ...], tz: dt.tzinfo, ellipsis: str) -> dict[str, Any]:
    """One event as the table prints it, in the text the template's filters gave: the time in the
    current time zone ``tz`` (``|date:"Y-m-d H:i:s"``), "system" without an actor's email, "—" without a
    patient, the request id cut to 12 characters (``|truncatechars:12``, with the truncation text
    looked up once per page rather than twice per row)."""
    pk, at, email, role, action, mrn, object_type, object_id, request_id, ip, name, data = values
    changed = data.get("changes") if isinstance(data, dict) else None
    return {
        "pk": pk,
        "at": f"{at.astimezone(tz):%Y-%m-%d %H:%M:%S}",
        "who": email or "system",
        "role": role,
        "denied": action == AuditAction.DENIED,
        "action": ACTION_LABELS.get(action, action),
        "mrn": mrn or "—",
        "object_type": object_type,
        "object_id": object_id,
        "request": Truncator(request_id).chars(12, truncate=ellipsis),
        "ip": ip,
        "name": name,
        # The names of the changed fields only: the values may be clinical, and admins read this page.
        "changed": ", ".join(sorted(changed)) if isinstance(changed, dict) else "",
    }


@login_required
def audit_log(request: HttpRequest) -> HttpResponse:
    """Admins browse and filter their clinic's audit trail; keyset-paginated, newest first."""
    actor = require_clinic(request, ClinicAction.VIEW_AUDIT)
    form = AuditFilterForm(request.GET or None)
    # Times are printed, and the From/To days are read, in the clinic's time zone (the site's current one).
    tz = timezone.get_current_timezone()
    qs = AuditEvent.objects.filter(clinic=actor.clinic)
    if form.is_valid():
        data = form.cleaned_data
        if data["mrn"]:
            qs = qs.filter(patient__mrn=data["mrn"].strip(), patient__clinic=actor.clinic)
        if data["actor"]:
            qs = qs.filter(actor__email__iexact=data["actor"].strip())
        if data["action"]:
            qs = qs.filter(action=data["action"])
        if data["event"]:
            qs = qs.filter(name__startswith=data["event"])
        if data["date_from"]:
            qs = qs.filter(at__gte=dt.datetime.combine(data["date_from"], dt.time.min, tzinfo=tz))
        if data["date_to"]:
            qs = qs.filter(
                at__lt=dt.datetime.combine(data["date_to"] + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
            )
    before = id_param(request.GET, "before", "page position")
    if before is not None:
        qs = qs.filter(id__lt=before)
    rows = list(qs.order_by("-id").values_list(*_COLUMNS)[: PAGE + 1])
    next_before = rows[PAGE - 1][0] if len(rows) > PAGE else None
    # What Truncator.chars (the truncatechars filter) appends, in the current language.
    ellipsis = pgettext("String to return when truncating text", "%(truncated_text)s…")
    params = request.GET.copy()
    params.pop("before", None)
    return render(
        request,
        "audit/log.html",
        {
            "form": form,
            "events": [_row(r, tz, ellipsis) for r in rows[:PAGE]],
            "next_before": next_before,
            "params": params.urlencode(),
            "tz_name": str(tz),
        },
    )
