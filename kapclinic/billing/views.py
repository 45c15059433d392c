"""Billing pages (thin: forms in, services write, selectors read; docs/billing.md).

Billing staff are admin and front desk (`ClinicAction.BILLING`, kapclinic/policy.py). They open a
patient's account through `policy.open_patient(... VIEW_DEMOGRAPHICS)`, so another clinic's patient is a
404 and every view is audited. Patients reach their own account from the portal only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from kapclinic.audit.models import AuditAction
from kapclinic.audit.services import record_event
from kapclinic.billing import documents, selectors, services
from kapclinic.billing.forms import (
    AccountForm,
    AdjustForm,
    DocumentForm,
    DraftForm,
    FeeEditForm,
    FeeItemForm,
    PackageForm,
    PaymentForm,
    ProfileForm,
    ProviderForm,
    RefundForm,
)
from kapclinic.billing.models import ChargeLine, ChargeStatus, FeeItem, Package, PackagePurchase, Payment
from kapclinic.core import clock
from kapclinic.core.actor import actor_from_request
from kapclinic.core.concurrency import ConflictError, save_versioned
from kapclinic.core.errors import DomainError
from kapclinic.core.params import IdField, param
from kapclinic.core.pdf import Paper
from kapclinic.core.request import request_patient
from kapclinic.patients.models import Patient
from kapclinic.policy import Action, ClinicAction, open_patient, require_clinic


def _billing(request: HttpRequest) -> Any:
    return require_clinic(request, ClinicAction.BILLING)


def _saved(request: HttpRequest, form: forms.Form, save: Callable[[dict[str, Any]], object]) -> bool:
    """Hand a valid POSTed form's data to `save`. True when it saved; a refusal lands on the form (False)."""
    if request.method != "POST" or not form.is_valid():
        return False
    try:
        save(form.cleaned_data)
    except (DomainError, ConflictError) as exc:
        for reason in getattr(exc, "reasons", (str(exc),)):
            form.add_error(None, reason)
        return False
    return True


def _missing_identifiers(clinic: Any) -> list[str]:
    p = services.profile_for(clinic)
    return [
        label
        for label, value in (("organisation NPI", p.organisation_npi), ("tax id", p.tax_id))
        if not value
    ]


@login_required
def index(request: HttpRequest) -> HttpResponse:
    actor = _billing(request)
    visits, sessions = selectors.unbilled(actor.clinic)
    drafts = (
        ChargeLine.objects.filter(clinic=actor.clinic, status=ChargeStatus.DRAFT)
        .select_related("patient")
        .order_by("service_date", "id")[:100]
    )
    record_event(actor, AuditAction.LIST, object_type="billing.worklist", detail="billing.index")
    return render(
        request,
        "billing/index.html",
        {
            "visits": visits,
            "sessions": sessions,
            "drafts": drafts,
            "missing": _missing_identifiers(actor.clinic),
        },
    )


@login_required
def fees(request: HttpRequest) -> HttpResponse:
    actor = _billing(request)
    form = FeeItemForm(request.POST or None)
    if _saved(
        request,
        form,
        lambda d: services.add_fee_item(
            actor,
            code=d["code"],
            price=d["price"],
            modifiers=d["modifiers"],
            description=d["description"],
            system=d["system"],
            appointment_kinds=d["appointment_kinds"],
            protocols=d["protocols"],
        ),
    ):
        messages.success(request, "Added to the fee schedule.")
        return redirect("billing:fees")
    items = FeeItem.objects.filter(clinic=actor.clinic)
    rows = [
        (i, i.description or services.describe(i.code, "(descriptor not reproduced; see docs)"))
        for i in items
    ]
    return render(
        request,
        "billing/fees.html",
        {"form": form, "rows": rows},
        status=400 if request.method == "POST" else 200,
    )


@login_required
def fee_edit(request: HttpRequest, fee_id: int) -> HttpResponse:
    actor = _billing(request)
    item = get_object_or_404(FeeItem, pk=fee_id, clinic=actor.clinic)
    form = FeeEditForm(
        request.POST or None,
        initial={
            "version": item.version,
            "price": item.price,
            "appointment_kinds": item.appointment_kinds,
            "protocols": item.protocols,
            "active": item.active,
        },
    )
    if _saved(
        request,
        form,
        lambda d: services.update_fee_item(
            actor,
            item,
            expected_version=d["version"],
            price=d["price"],
            appointment_kinds=d["appointment_kinds"],
            protocols=d["protocols"],
            active=d["active"],
        ),
    ):
        messages.success(request, f"{item} saved.")
        return redirect("billing:fees")
    return render(
        request,
        "billing/form.html",
        {"form": form, "title": f"Fee schedule: {item}"},
        status=400 if request.method == "POST" else 200,
    )


@login_required
def packages(request: HttpRequest) -> HttpResponse:
    actor = _billing(request)
    form = PackageForm(request.POST or None)
    if _saved(
        request,
        form,
        lambda d: services.add_package(
            actor,
            name=d["name"],
            sessions=d["sessions"],
            price=d["price"],
            appointment_kinds=d["appointment_kinds"],
        ),
    ):
        messages.success(request, "Package added.")
        return redirect("billing:packages")
    return render(
        request,
        "billing/packages.html",
        {
            "form": form,
            "packages": Package.objects.filter(clinic=actor.clinic),
        },
        status=400 if request.method == "POST" else 200,
    )


@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    from kapclinic.accounts.models import Membership, Role

    actor = _billing(request)
    profile = services.profile_for(actor.clinic)
    form = ProfileForm(
        request.POST or None,
        initial={
            "version": profile.version if profile.pk else None,
            **{f: getattr(profile, f) for f in services.PROFILE_FIELDS},
        },
    )
    if _saved(
        request,
        form,
        lambda d: services.save_profile(
            actor, expected_version=d.get("version"), **{f: d[f] for f in services.PROFILE_FIELDS}
        ),
    ):
        messages.success(request, "Billing identifiers saved.")
        return redirect("billing:settings")
    clinicians = (
        Membership.objects.filter(
            clinic=actor.clinic, is_active=True, role__in=[Role.PRESCRIBER, Role.THERAPIST, Role.NURSE]
        )
        .select_related("user")
        .order_by("user__full_name")
    )
    providers = [(m, services.provider_for(actor.clinic, m.user)) for m in clinicians]
    return render(
        request,
        "billing/settings.html",
        {"form": form, "providers": providers},
        status=400 if request.method == "POST" else 200,
    )


@login_required
def provider(request: HttpRequest, user_id: int) -> HttpResponse:
    from kapclinic.accounts.models import Membership

    actor = _billing(request)
    membership = get_object_or_404(Membership, user_id=user_id, clinic=actor.clinic, is_active=True)
    prof = services.provider_for(actor.clinic, membership.user)
    form = ProviderForm(
        request.POST or None,
        initial={
            "version": prof.version if prof.pk else None,
            **{f: getattr(prof, f) for f in services.PROVIDER_FIELDS},
        },
    )
    if _saved(
        request,
        form,
        lambda d: services.save_provider(
            actor,
            membership.user,
            expected_version=d.get("version"),
            **{f: d[f] for f in services.PROVIDER_FIELDS},
        ),
    ):
        messages.success(request, "Provider identifiers saved.")
        return redirect("billing:settings")
    return render(
        request,
        "billing/form.html",
        {
            "form": form,
            "title": f"Billing identifiers: {membership.user.full_name}",
        },
        status=400 if request.method == "POST" else 200,
    )


@login_required
def ageing(request: HttpRequest) -> HttpResponse:
    actor = _billing(request)
    rows, totals = selectors.ageing(actor.clinic, clock.today())
    record_event(actor, AuditAction.LIST, object_type="billing.ageing", detail=f"billing.ageing:{len(rows)}")
    return render(request, "billing/ageing.html", {"rows": rows, "totals": totals, "buckets": list(totals)})


# ---------------------------------------------------------------- one patient's account


def _patient_context(patient: Patient) -> dict[str, Any]:
    rows, summary = selectors.ledger_and_summary(patient)
    open_charges = services.open_charges(patient)
    drafts = list(selectors.drafts(patient))
    account = services.account_for(patient)
    today = clock.today()
    return {
        "patient": patient,
        "rows": rows,
        "summary": summary,
        "drafts": [
            (
                d,
                DraftForm(
                    prefix=f"d{d.pk}",
                    initial={
                        "version": d.version,
                        "units": d.units,
                        "modifiers": d.modifiers,
                        "diagnosis_codes": ", ".join(d.diagnosis_codes or []),
                        "pos": d.pos,
                        "unit_price": d.unit_price,
                    },
                ),
            )
            for d in drafts
        ],
        "payment_form": PaymentForm(initial={"received_on": today}),
        "account_form": AccountForm(
            initial={
                "version": account.version,
                "insurance_payer": account.insurance_payer,
                "insurance_member_id": account.insurance_member_id,
            }
        ),
        "doc_form": DocumentForm(
            initial={"start": today.replace(month=1, day=1), "end": today, "paper": "Letter"}
        ),
        "open_charges": open_charges,
        "payments": Payment.objects.filter(patient=patient, kind="payment").order_by("-received_on", "-id")[
            :20
        ],
        "packages_offered": Package.objects.filter(clinic=patient.clinic, active=True),
        "purchases": [p for p in summary.packages if p.remaining > 0],
        "posted_sessions": _drawable(patient, open_charges),
    }


def _drawable(
    patient: Patient, open_charges: list[ChargeLine] | None = None
) -> list[tuple[dt.date, list[ChargeLine]]]:
    """Posted session charges not yet covered by a package, grouped by date of service (one query for
    the covered ones, whatever the number of open charges)."""
    from kapclinic.billing.models import Adjustment, AdjustmentKind

    if open_charges is None:
        open_charges = services.open_charges(patient)
    covered = set(
        Adjustment.objects.filter(patient=patient, kind=AdjustmentKind.PACKAGE, charge__isnull=False)
        .values_list("charge_id", flat=True)
        .distinct()
    )
    by_date: dict[dt.date, list[ChargeLine]] = {}
    for c in open_charges:
        if c.package_purchase_id or c.pk in covered:
            continue
        by_date.setdefault(c.service_date, []).append(c)
    return sorted(by_date.items())


@login_required
def patient(request: HttpRequest, patient_id: int) -> HttpResponse:
    _billing(request)
    p = open_patient(request, patient_id, Action.VIEW_DEMOGRAPHICS, object_type="billing.account")
    return render(request, "billing/patient.html", _patient_context(p))


@login_required
@require_POST
def patient_action(request: HttpRequest, patient_id: int, op: str) -> HttpResponse:
    """Every write on one patient's account; `op` names it. Refusals re-show the page with the sentence."""
    actor = _billing(request)
    p = open_patient(request, patient_id, Action.VIEW_DEMOGRAPHICS, audit=None, object_type="billing.account")
    back = redirect("billing:patient", patient_id=p.pk)
    try:
        done = _OPS[op](request, actor, p)
    except KeyError:
        raise Http404 from None
    except (DomainError, ConflictError) as exc:
        for reason in getattr(exc, "reasons", (str(exc),)):
            messages.error(request, reason)
        ctx = _patient_context(p)
        return render(
            request, "billing/patient.html", ctx, status=409 if isinstance(exc, ConflictError) else 400
        )
    messages.success(request, done)
    return back


def _form_or_fail(form: Any) -> dict[str, Any]:
    if not form.is_valid():
        reasons = [
            f"{form.fields[k].label or k}: {' '.join(v)}" if k != "__all__" else " ".join(v)
            for k, v in form.errors.items()
        ]
        raise DomainError(reasons)
    return dict(form.cleaned_data)


def _op_propose(request: HttpRequest, actor: Any, p: Patient) -> str:
    from kapclinic.scheduling.models import Appointment
    from kapclinic.sessions.models import DosingSession

    appt = param(request.POST, "appointment", IdField(required=False))
    sess = param(request.POST, "session", IdField(required=False))
    if sess:
        s = get_object_or_404(DosingSession, pk=sess, patient=p)
        lines = services.propose_for_session(actor, s)
    elif appt:
        a = get_object_or_404(Appointment, pk=appt, patient=p)
        lines = services.propose_for_appointment(actor, a)
    else:
        raise DomainError("Choose the visit or session to bill.")
    return f"{len(lines)} charge line(s) proposed: review them, then post."


def _draft(request: HttpRequest, p: Patient) -> ChargeLine:
    line_id = param(request.POST, "line", IdField())
    return get_object_or_404(ChargeLine, pk=line_id, patient=p)


def _op_edit(request: HttpRequest, actor: Any, p: Patient) -> str:
    line = _draft(request, p)
    d = _form_or_fail(DraftForm(request.POST, prefix=f"d{line.pk}"))
    services.edit_draft(
        actor,
        line,
        expected_version=d["version"],
        units=d["units"],
        modifiers=d["modifiers"],
        diagnosis_codes=d["diagnosis_codes"],
        pos=d["pos"],
        unit_price=d["unit_price"],
    )
    return f"{line.code} saved."


def _op_discard(request: HttpRequest, actor: Any, p: Patient) -> str:
    line = _draft(request, p)
    version = param(request.POST, "version", IdField())
    services.discard_draft(actor, line, expected_version=version)
    return f"{line.code} discarded."


def _op_post(request: HttpRequest, actor: Any, p: Patient) -> str:
    ids = [int(x) for x in request.POST.getlist("lines") if x.isdigit() and len(x) < 18]
    lines = services.post_charges(actor, p, line_ids=ids)
    return f"{len(lines)} charge(s) posted."


def _op_payment(request: HttpRequest, actor: Any, p: Patient) -> str:
    d = _form_or_fail(PaymentForm(request.POST))
    pay = services.record_payment(
        actor,
        p,
        method=d["method"],
        amount=d["amount"],
        reference=d["reference"],
        received_on=d["received_on"],
    )
    return f"Payment of {pay.amount} recorded."


def _op_refund(request: HttpRequest, actor: Any, p: Patient) -> str:
    d = _form_or_fail(RefundForm(request.POST))
    payment = get_object_or_404(Payment, pk=d["payment"], patient=p)
    r = services.refund(actor, payment, amount=d["amount"], method=d["method"], reference=d["reference"])
    return f"Refund of {r.amount} recorded."


def _op_adjust(request: HttpRequest, actor: Any, p: Patient) -> str:
    d = _form_or_fail(AdjustForm(request.POST))
    line = get_object_or_404(ChargeLine, pk=d["line"], patient=p)
    services.adjust(actor, line, kind=d["kind"], amount=d["amount"], reason=d["reason"])
    return "Adjustment recorded."


def _op_credit(request: HttpRequest, actor: Any, p: Patient) -> str:
    made = services.apply_credit(actor, p)
    return f"Credit applied to {made} charge(s)." if made else "Nothing to apply."


def _op_sell(request: HttpRequest, actor: Any, p: Patient) -> str:
    pkg_id = param(request.POST, "package", IdField())
    pkg = get_object_or_404(Package, pk=pkg_id, clinic=p.clinic)
    services.sell_package(actor, p, package=pkg)
    return f"{pkg.name} sold: its price is charged; sessions draw from it."


def _op_draw(request: HttpRequest, actor: Any, p: Patient) -> str:
    purchase = get_object_or_404(PackagePurchase, pk=param(request.POST, "purchase", IdField()), patient=p)
    on = param(request.POST, "on", forms.DateField(required=False))
    lines = dict(_drawable(p)).get(on) if on else None
    if not lines:
        raise DomainError("Choose the session the package covers.")
    left = services.draw_package(actor, purchase, charges=lines).remaining
    return f"One session drawn from {purchase.name}; {left} left."


def _op_account(request: HttpRequest, actor: Any, p: Patient) -> str:
    d = _form_or_fail(AccountForm(request.POST))
    account = services.account_for(p)
    account.insurance_payer = d["insurance_payer"].strip()
    account.insurance_member_id = d["insurance_member_id"].strip()
    save_versioned(account, d.get("version") or account.version, ["insurance_payer", "insurance_member_id"])
    record_event(actor, AuditAction.UPDATE, patient=p, obj=account, detail="billing.account")
    return "Insurance details saved."


_OPS = {
    "propose": _op_propose,
    "edit": _op_edit,
    "discard": _op_discard,
    "post": _op_post,
    "payment": _op_payment,
    "refund": _op_refund,
    "adjust": _op_adjust,
    "credit": _op_credit,
    "sell": _op_sell,
    "draw": _op_draw,
    "account": _op_account,
}


# ---------------------------------------------------------------- documents


def _document(request: HttpRequest, actor: Any, p: Patient, kind: str) -> HttpResponse:
    if kind not in {"superbill", "statement", "invoice"}:
        raise Http404
    form = DocumentForm(request.GET, kind=kind)
    if not form.is_valid():
        raise DomainError([" ".join(str(e) for e in v) for v in form.errors.values()])
    d = form.cleaned_data
    paper: Paper = "A4" if d.get("paper") == "A4" else "Letter"
    start, end = d.get("start") or dt.date.min, d.get("end") or dt.date.max
    stamp = f"{p.mrn}"
    if kind == "superbill":
        bill = selectors.superbill(p, start, end, session_id=d.get("session"))
        if not bill.lines:
            raise DomainError("There are no posted services in that range.")
        data = documents.superbill_pdf(bill, paper)
        name = f"superbill-{stamp}-{bill.start:%Y%m%d}-{bill.end:%Y%m%d}.pdf"
    elif kind == "statement":
        data = documents.statement_pdf(p, start, end, paper)
        name = f"statement-{stamp}-{start:%Y%m%d}-{end:%Y%m%d}.pdf"
    elif kind == "invoice":
        data = documents.invoice_pdf(p, start, end, paper)
        name = f"invoice-{stamp}-{start:%Y%m%d}-{end:%Y%m%d}.pdf"
    else:
        raise Http404
    documents.export(actor, p, kind)
    return documents.pdf_response(data, name)


@login_required
def document(request: HttpRequest, patient_id: int, kind: str) -> HttpResponse:
    actor = _billing(request)
    p = open_patient(
        request, patient_id, Action.VIEW_DEMOGRAPHICS, audit=None, object_type="billing.document"
    )
    try:
        return _document(request, actor, p, kind)
    except DomainError as exc:
        for reason in exc.all_messages:
            messages.error(request, reason)
        return redirect(reverse("billing:patient", kwargs={"patient_id": p.pk}))


# ---------------------------------------------------------------- the patient's own account (portal)


def _me(request: HttpRequest, *, audit: str | None = "view") -> Patient:
    require_clinic(request, ClinicAction.SELF_SERVICE)
    return open_patient(
        request, request_patient(request).pk, Action.SELF_SERVICE, audit=audit, object_type="billing.account"
    )


@login_required
def portal(request: HttpRequest) -> HttpResponse:
    p = _me(request)
    rows, summary = selectors.ledger_and_summary(p)
    today = clock.today()
    return render(
        request,
        "billing/portal.html",
        {
            "patient": p,
            "rows": rows[-50:],
            "summary": summary,
            "doc_form": DocumentForm(
                initial={"start": today.replace(month=1, day=1), "end": today, "paper": "Letter"}
            ),
        },
    )


@login_required
def portal_document(request: HttpRequest, kind: str) -> HttpResponse:
    p = _me(request, audit=None)
    actor = actor_from_request(request)
    try:
        return _document(request, actor, p, kind)
    except DomainError as exc:
        for reason in exc.all_messages:
            messages.error(request, reason)
        return redirect("billing:portal")
