from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from kapclinic.audit.models import AuditAction, AuditEvent
from kapclinic.policy import ClinicAction, require_clinic

PAGE = 50


class AuditFilterForm(forms.Form):
    mrn = forms.CharField(label="Patient record number", required=False, max_length=20)
    actor = forms.CharField(label="Staff email", required=False, max_length=200)
    action = forms.ChoiceField(choices=[("", "Any action"), *AuditAction.choices], required=False)
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))


@login_required
def audit_log(request: HttpRequest) -> HttpResponse:
    """Admins browse and filter their clinic's audit trail; keyset-paginated, newest first."""
    actor = require_clinic(request, ClinicAction.VIEW_AUDIT)
    form = AuditFilterForm(request.GET or None)
    qs = AuditEvent.objects.filter(clinic=actor.clinic)
    if form.is_valid():
        data = form.cleaned_data
        if data["mrn"]:
            qs = qs.filter(patient__mrn=data["mrn"].strip(), patient__clinic=actor.clinic)
        if data["actor"]:
            qs = qs.filter(actor__email__iexact=data["actor"].strip())
        if data["action"]:
            qs = qs.filter(action=data["action"])
        if data["date_from"]:
            qs = qs.filter(at__gte=dt.datetime.combine(data["date_from"], dt.time.min, tzinfo=dt.UTC))
        if data["date_to"]:
            qs = qs.filter(
                at__lt=dt.datetime.combine(data["date_to"] + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
            )
    before = request.GET.get("before", "")
    if before.isdigit():
        qs = qs.filter(id__lt=int(before))
    rows = list(qs.select_related("actor", "patient").order_by("-id")[: PAGE + 1])
    next_before = rows[PAGE - 1].pk if len(rows) > PAGE else None
    params = request.GET.copy()
    params.pop("before", None)
    return render(
        request,
        "audit/log.html",
        {"form": form, "events": rows[:PAGE], "next_before": next_before, "params": params.urlencode()},
    )
