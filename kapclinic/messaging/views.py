from __future__ import annotations

import hmac

from django import forms
from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from kapclinic.core.actor import actor_from_request
from kapclinic.core.errors import DomainError
from kapclinic.core.forms import KapForm
from kapclinic.messaging import selectors, services, sms
from kapclinic.messaging.models import OutboundMessage, SmsPreference
from kapclinic.messaging.outbox import outbox_page, outbox_retry
from kapclinic.policy import ON_READ, Action, ClinicAction, open_patient


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


# --- text messages (issue 17) --------------------------------------------------------------------


class SmsForm(KapForm):
    phone = forms.CharField(
        label="Mobile number",
        max_length=40,
        help_text="International form with the country code, e.g. +1 202 555 0142.",
    )
    wants_sms = forms.BooleanField(
        label="Send appointment reminders and questionnaire links by text too", required=False
    )
    consent = forms.BooleanField(label="The patient consents to receiving texts", required=False)
    stopped = forms.BooleanField(label="The patient asked to stop texts (STOP)", required=False)


@login_required
def sms_preference(request: HttpRequest, patient_id: int) -> HttpResponse:
    posting = request.method == "POST"
    patient = open_patient(
        request,
        patient_id,
        Action.EDIT_DEMOGRAPHICS if posting else Action.VIEW_DEMOGRAPHICS,
        audit=ON_READ,
        object_type="sms_preference",
    )
    pref = SmsPreference.objects.filter(patient=patient).first()
    initial = {
        "phone": pref.phone_e164 if pref else patient.phone,
        "wants_sms": pref.wants_sms if pref else False,
        "consent": bool(pref and pref.consent_at),
        "stopped": bool(pref and pref.stopped_at),
    }
    form = SmsForm(request.POST or None, initial=initial)
    status = 200
    if posting:
        status = 400
        if form.is_valid():
            try:
                services.sms_preference_update(actor_from_request(request), patient, **form.cleaned_data)
            except DomainError as exc:
                exc.add_to_form(form)
            else:
                flash.success(request, "Text-message preference saved.")
                return redirect(reverse("messaging:sms", kwargs={"patient_id": patient.pk}))
    return render(
        request, "messaging/sms.html", {"patient": patient, "pref": pref, "form": form}, status=status
    )


@csrf_exempt
@require_POST
def sms_inbound(request: HttpRequest) -> HttpResponse:
    """The provider's webhook for texts to the clinic's number (STOP handling). Only with the twilio
    backend, and only when the request carries Twilio's signature made with our auth token."""
    if settings.SMS_BACKEND != "twilio":
        raise Http404
    params = {k: request.POST.get(k, "") for k in request.POST}
    url = settings.SITE_URL + request.path
    expected = sms.twilio_signature(settings.TWILIO_AUTH_TOKEN, url, params)
    if not hmac.compare_digest(expected, request.headers.get("X-Twilio-Signature", "")):
        return HttpResponse("Signature does not match.", status=403, content_type="text/plain")
    services.sms_inbound(params.get("From", ""), params.get("Body", ""))
    return HttpResponse("<Response/>", content_type="application/xml")
