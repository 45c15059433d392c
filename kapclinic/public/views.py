"""The public site (no login): information pages, the non-diagnostic self-check, the inquiry form."""

from __future__ import annotations

import secrets

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from kapclinic.accounts.models import Clinic
from kapclinic.clinical.eligibility import Answer
from kapclinic.clinical.eligibility import selfcheck as sc
from kapclinic.core.actor import client_ip
from kapclinic.core.params import BadParameter, param
from kapclinic.intake import services as intake_services
from kapclinic.intake.forms import InquiryForm

PAGES = {
    "index": "What is KAP?",
    "evidence": "What the evidence shows",
    "risks": "Risks and side effects",
    "candidates": "Who may not be a candidate",
    "expect": "What to expect",
    "therapies": "KAP with CBT and psychodynamic therapy",
}


def _public_clinic() -> Clinic | None:
    return Clinic.objects.filter(is_public=True, is_active=True).order_by("id").first()


def page(request: HttpRequest, slug: str = "index") -> HttpResponse:
    return render(request, f"public/{slug}.html", {"pages": PAGES, "slug": slug, "title": PAGES[slug]})


def index(request: HttpRequest) -> HttpResponse:
    return page(request, "index")


def evidence(request: HttpRequest) -> HttpResponse:
    return page(request, "evidence")


def risks(request: HttpRequest) -> HttpResponse:
    return page(request, "risks")


def candidates(request: HttpRequest) -> HttpResponse:
    return page(request, "candidates")


def expect(request: HttpRequest) -> HttpResponse:
    return page(request, "expect")


def therapies(request: HttpRequest) -> HttpResponse:
    return page(request, "therapies")


def self_check(request: HttpRequest) -> HttpResponse:
    """Non-diagnostic; nothing is stored. Self-harm answers show crisis resources first."""
    form = sc.self_check_form()
    ctx: dict[str, object] = {"form": form, "pages": PAGES, "slug": "self_check", "values": request.POST}
    if request.method == "POST":
        freqs: dict[str, int] = {}
        for q in (*form.mood, *form.worry, form.self_harm):
            # An answer that is not a whole number counts as not given: validate_answers names the question.
            try:
                value = param(request.POST, q.key, forms.IntegerField(required=False))
            except BadParameter:
                value = None
            if value is not None:
                freqs[q.key] = value
        flags = {
            q.key: Answer.parse(request.POST.get(q.key, "unknown")) for q in (*form.red_flags, form.intent)
        }
        answers = sc.SelfCheckAnswers(freqs, flags, tuple(request.POST.getlist("prior")))
        result = sc.assess(answers, form)
        errors = sc.validate_answers(answers, form)
        if result.next_step is sc.NextStep.CRISIS:
            return render(request, "public/self_check_result.html", {**ctx, "result": result, "pages": PAGES})
        if errors:
            return render(request, "public/self_check.html", {**ctx, "errors": errors}, status=400)
        return render(request, "public/self_check_result.html", {**ctx, "result": result})
    return render(request, "public/self_check.html", ctx)


def inquiry(request: HttpRequest) -> HttpResponse:
    clinic = _public_clinic()
    ctx: dict[str, object] = {"pages": PAGES, "slug": "inquiry", "clinic": clinic}
    if clinic is None:
        return render(request, "public/inquiry.html", {**ctx, "unavailable": True}, status=503)
    if request.method == "POST":
        form = InquiryForm(request.POST)
        if request.POST.get("website"):
            # Honeypot filled: a bot. Say the same as for a person, store nothing.
            return redirect("public:inquiry_sent")
        if form.is_valid():
            d = form.cleaned_data
            data = {
                k: d[k]
                for k in ("name", "email", "phone", "preferred_contact_time", "message", "consent_to_contact")
            }
            try:
                intake_services.inquiry_submit(clinic, ip=client_ip(request), token=d["token"], data=data)
            except intake_services.RateLimitedError as exc:
                form.add_error(None, str(exc))
                return render(request, "public/inquiry.html", {**ctx, "form": form}, status=429)
            return redirect("public:inquiry_sent")
        return render(request, "public/inquiry.html", {**ctx, "form": form}, status=400)
    form = InquiryForm(initial={"token": secrets.token_hex(16)})
    return render(request, "public/inquiry.html", {**ctx, "form": form})


def inquiry_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "public/inquiry_sent.html", {"pages": PAGES, "slug": "inquiry"})
