"""Controlled-substance records pages (thin: forms in, services write, selectors read).

Who may do what (docs/controlled-substances.md; issue 14): prescribers, nurses and admins read; the
clinic's stock roles (a clinic setting, prescribers by default) receive, adjust and destroy; nurses and
prescribers administer, waste, witness and count; prescribers reverse lines and resolve discrepancies.
Front desk and patients see nothing here.

Over 600 lines: one thin view per controlled-substance form (receipt, count, discrepancy, loss report,
destruction, ...); each is read alone.
"""

from __future__ import annotations

import csv
import itertools
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from kapclinic.audit.services import record_event
from kapclinic.core import clock
from kapclinic.core.actor import actor_from_request
from kapclinic.core.errors import DomainError
from kapclinic.core.params import param
from kapclinic.inventory import selectors, services
from kapclinic.inventory.forms import (
    CountForm,
    DestroyForm,
    EntryForm,
    HolidayForm,
    LossForm,
    ProductForm,
    ReceiveForm,
    RegistrationForm,
    ReportForm,
    ResolveForm,
    SettingsForm,
)
from kapclinic.inventory.models import ClinicHoliday
from kapclinic.inventory.witness import confirm
from kapclinic.patients.models import Patient
from kapclinic.policy import ClinicAction, clinic_can, require_clinic

# Page sizes of the long lists (every row is in the CSV / `controlled_substances report`).
STOCK_PAGE = 25
LEDGER_PAGE = 25
ADMIN_LOG_PAGE = 50


def _clinic(request: HttpRequest) -> Any:
    return getattr(request, "clinic", None)


def _errors(form: Any, exc: DomainError) -> None:
    exc.add_to_form(form)


def _witness(
    request: HttpRequest, form: Any, prefix: str = "witness", label: str = "witness", required: bool = True
) -> Any:
    """The witness who signed in on ``form`` (None when not required and nothing was typed); a refusal
    is a form error (audited by inventory.witness)."""
    d = form.cleaned_data
    if not required and not d.get(f"{prefix}_email") and not d.get(f"{prefix}_password"):
        return None
    try:
        return confirm(request, actor_from_request(request), d, prefix, label)
    except DomainError as exc:
        exc.add_to_form(form)
        return None


def _may(request: HttpRequest, action: ClinicAction) -> bool:
    return clinic_can(actor_from_request(request), action)


@login_required
def index(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.VIEW_INVENTORY)
    clinic = _clinic(request)
    page = Paginator(selectors.stock(clinic), STOCK_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "inventory/index.html",
        {
            "registrations": selectors.registrations(clinic).prefetch_related("locations"),
            "stock": [(c, selectors.balance_text(c)) for c in page.object_list],
            "page": page,
            "open_discrepancies": selectors.discrepancies(clinic, open_only=True),
            "losses": selectors.loss_reports(clinic, open_only=True),
            "can_stock": _may(request, ClinicAction.HANDLE_STOCK),
            "is_admin": _may(request, ClinicAction.MANAGE_CLINIC),
            "inventories": selectors.inventories_due(clinic),
            "today": clock.today(),
        },
    )


@login_required
def registration_new(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.REGISTER_DEA)
    form = RegistrationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            services.create_registration(
                actor_from_request(request),
                dea_number=d["dea_number"],
                registrant=d["registrant"],
                expires_on=d["expires_on"],
                schedules=d["schedules"],
                address=d["address"],
                location_names=[d["location"]],
            )
        except DomainError as exc:
            _errors(form, exc)
        else:
            messages.success(request, "Registration added.")
            return redirect("inventory:index")
    return render(
        request,
        "inventory/form.html",
        {"form": form, "title": "Add a DEA registration"},
        status=400 if request.method == "POST" else 200,
    )


@login_required
def product_new(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.HANDLE_STOCK)
    form = ProductForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        product = form.save(commit=False)
        product.clinic = _clinic(request)
        product.save()
        record_event(actor_from_request(request), "create", obj=product, detail="inventory.product")
        messages.success(request, "Product added.")
        return redirect("inventory:receive")
    return render(
        request,
        "inventory/form.html",
        {"form": form, "title": "Add a product"},
        status=400 if request.method == "POST" else 200,
    )


@login_required
def receive(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.HANDLE_STOCK)
    clinic = _clinic(request)
    form = ReceiveForm(clinic, request.POST or None, initial={"received_on": clock.today()})
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            receipt = services.receive_delivery(actor_from_request(request), **d)
        except DomainError as exc:
            _errors(form, exc)
        else:
            messages.success(
                request, f"Received {receipt.containers} container(s). Print their labels below."
            )
            return redirect("inventory:receipt", receipt_id=receipt.pk)
    return render(
        request, "inventory/receive.html", {"form": form}, status=400 if request.method == "POST" else 200
    )


@login_required
def receipt(request: HttpRequest, receipt_id: int) -> HttpResponse:
    require_clinic(request, ClinicAction.VIEW_INVENTORY)
    found = selectors.receipt(_clinic(request), receipt_id)
    if found is None:
        raise Http404
    return render(
        request, "inventory/receipt.html", {"receipt": found, "containers": found.container_set.all()}
    )


@login_required
def container(request: HttpRequest, container_id: int) -> HttpResponse:
    require_clinic(request, ClinicAction.VIEW_INVENTORY)
    clinic = _clinic(request)
    found = selectors.container(clinic, container_id)
    if found is None:
        raise Http404
    form = EntryForm(clinic, initial={"unit": found.product.unit})
    status = 200
    if request.method == "POST":
        require_clinic(request, ClinicAction.HANDLE_DOSES)
        form = EntryForm(clinic, request.POST)
        status = 400
        if form.is_valid():
            d = form.cleaned_data
            patient = None
            if d["patient_mrn"]:
                patient = Patient.objects.filter(clinic=clinic, mrn=d["patient_mrn"].strip()).first()
                if patient is None:
                    form.add_error("patient_mrn", "No patient of this clinic has that record number.")
            kind = d["kind"]
            if kind in ("overfill", "underfill") and not _may(request, ClinicAction.HANDLE_STOCK):
                form.add_error(None, "Your role may not adjust controlled-substance stock.")
            if kind == "reversal" and not _may(request, ClinicAction.CORRECT_INVENTORY):
                form.add_error(None, "Only a prescriber may reverse a ledger line.")
            witness = None if form.errors else _witness(request, form, required=False)
            if not form.errors:
                try:
                    services.record_entry(
                        actor_from_request(request),
                        found.pk,
                        kind="adjustment" if kind in ("overfill", "underfill") else kind,
                        amount=d["amount"],
                        unit=d["unit"],
                        witness=witness,
                        reason=d["reason"],
                        increase={"overfill": True, "underfill": False}.get(kind),
                        reverses_seq=d["reverses_seq"],
                        patient=patient,
                        route=d["route"],
                    )
                except DomainError as exc:
                    _errors(form, exc)
                else:
                    messages.success(request, "Ledger line added.")
                    return redirect("inventory:container", container_id=found.pk)
    # One page of lines, newest page first by default (a long-lived vial can hold hundreds of lines);
    # the administration log CSV and `controlled_substances report` give every line.
    paginator = Paginator(selectors.ledger_lines(found), LEDGER_PAGE)
    page = paginator.get_page(request.GET.get("page") or paginator.num_pages)
    lines = list(page.object_list)
    record_event(
        actor_from_request(request),
        "list",
        obj=found,
        detail=f"inventory.ledger lines={len(lines)} page={page.number}",
    )
    return render(
        request,
        "inventory/container.html",
        {
            "container": found,
            "lines": lines,
            "page": page,
            "form": form,
            "balance": selectors.balance_text(found),
            "can_enter": _may(request, ClinicAction.HANDLE_DOSES),
            "can_stock": _may(request, ClinicAction.HANDLE_STOCK),
        },
        status=status,
    )


@login_required
def destroy(request: HttpRequest, container_id: int) -> HttpResponse:
    require_clinic(request, ClinicAction.HANDLE_STOCK)
    clinic = _clinic(request)
    found = selectors.container(clinic, container_id)
    if found is None:
        raise Http404
    form = DestroyForm(clinic, request.POST or None)
    if request.method == "POST" and form.is_valid():
        # both witnesses sign in on the form (issue 14); a refusal is a form error, nothing stored
        w1 = _witness(request, form, "witness_1", "first witness")
        w2 = _witness(request, form, "witness_2", "second witness")
        d = {k: v for k, v in form.cleaned_data.items() if not k.startswith("witness_")}
        if w1 is not None and w2 is not None:
            try:
                services.destroy(actor_from_request(request), found.pk, witness_1=w1, witness_2=w2, **d)
            except DomainError as exc:
                _errors(form, exc)
            else:
                messages.success(request, f"{found.identifier} destroyed and recorded.")
                return redirect("inventory:container", container_id=found.pk)
    return render(
        request,
        "inventory/destroy.html",
        {"form": form, "container": found, "balance": selectors.balance_text(found)},
        status=400 if request.method == "POST" else 200,
    )


@login_required
def destructions(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.VIEW_INVENTORY)
    return render(
        request, "inventory/destructions.html", {"destructions": selectors.destructions(_clinic(request))}
    )


@login_required
def counts(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.VIEW_INVENTORY)
    return render(
        request,
        "inventory/counts.html",
        {
            "counts": selectors.counts(_clinic(request))[:200],
            "can_count": _may(request, ClinicAction.HANDLE_DOSES),
        },
    )


@login_required
def count_new(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.HANDLE_DOSES)
    clinic = _clinic(request)
    regs = list(selectors.registrations(clinic))
    reg = next(
        (r for r in regs if str(r.pk) == request.GET.get("registration", "")), regs[0] if regs else None
    )
    if reg is None:
        return render(request, "inventory/count_new.html", {"form": None, "registration": None})
    containers = [c for c in selectors.stock(clinic) if c.registration_id == reg.pk]
    local_now = clock.now().astimezone(clinic.zone).replace(tzinfo=None, second=0, microsecond=0)
    form = CountForm(clinic, containers, request.POST or None, initial={"taken_at": local_now})
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        lines = [
            services.CountInput(c.pk, d[f"counted_{c.pk}"], not d[f"estimated_{c.pk}"]) for c in containers
        ]
        witness = _witness(request, form)
        try:
            if witness is None:
                raise DomainError([])  # the refusal is on the form already
            count = services.record_count(
                actor_from_request(request),
                reg,
                timing=d["timing"],
                witness=witness,
                lines=lines,
                kind=d["kind"],
                taken_at=d["taken_at"],
            )
        except DomainError as exc:
            _errors(form, exc)
        else:
            opened = sum(1 for line in count.lines.all() if not line.agrees)
            if opened:
                messages.warning(
                    request,
                    f"The count disagrees with the ledger for {opened} container(s): "
                    "a discrepancy was opened.",
                )
            else:
                messages.success(request, "Count recorded; it agrees with the ledger.")
            return redirect("inventory:count", count_id=count.pk)
    return render(
        request,
        "inventory/count_new.html",
        {"form": form, "registration": reg, "registrations": regs},
        status=400 if request.method == "POST" else 200,
    )


@login_required
def count(request: HttpRequest, count_id: int) -> HttpResponse:
    require_clinic(request, ClinicAction.VIEW_INVENTORY)
    found = selectors.count(_clinic(request), count_id)
    if found is None:
        raise Http404
    lines = found.lines.select_related("container__product").order_by("container__identifier")
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="inventory-{found.pk}.csv"'
        w = csv.writer(response)
        w.writerow(
            [
                "date",
                "timing",
                "substance",
                "finished form",
                "container",
                "counted",
                "unit",
                "exact or estimated",
                "ledger",
                "agrees",
            ]
        )
        for line in lines:
            c = line.container
            w.writerow(
                [
                    found.taken_at.date().isoformat(),
                    found.get_timing_display(),
                    c.product.name,
                    c.product.content().describe(),
                    c.identifier,
                    selectors._num(line.counted),
                    c.product.unit,
                    "exact" if line.exact else "estimated",
                    selectors._num(line.ledger_balance),
                    "yes" if line.agrees else "no",
                ]
            )
        record_event(actor_from_request(request), "export", obj=found, detail="inventory.count.csv")
        return response
    return render(request, "inventory/count.html", {"count": found, "lines": lines})


@login_required
def discrepancies(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.VIEW_INVENTORY)
    return render(
        request, "inventory/discrepancies.html", {"discrepancies": selectors.discrepancies(_clinic(request))}
    )


@login_required
def discrepancy(request: HttpRequest, discrepancy_id: int) -> HttpResponse:
    require_clinic(request, ClinicAction.VIEW_INVENTORY)
    found = selectors.discrepancies(_clinic(request)).filter(pk=discrepancy_id).first()
    if found is None:
        raise Http404
    form = ResolveForm(request.POST or None)
    if request.method == "POST":
        require_clinic(request, ClinicAction.CORRECT_INVENTORY)
        if form.is_valid():
            try:
                services.resolve_discrepancy(
                    actor_from_request(request), found.pk, explanation=form.cleaned_data["explanation"]
                )
            except DomainError as exc:
                _errors(form, exc)
            else:
                messages.success(request, "Discrepancy resolved.")
                return redirect("inventory:discrepancy", discrepancy_id=found.pk)
        return render(
            request, "inventory/discrepancy.html", {"d": found, "form": form, "can_resolve": True}, status=400
        )
    return render(
        request,
        "inventory/discrepancy.html",
        {"d": found, "form": form, "can_resolve": _may(request, ClinicAction.CORRECT_INVENTORY)},
    )


@login_required
def losses(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.VIEW_INVENTORY)
    clinic = _clinic(request)
    can_stock = _may(request, ClinicAction.HANDLE_STOCK)
    form = LossForm(clinic, request.POST or None)
    status = 200
    if request.method == "POST":
        require_clinic(request, ClinicAction.HANDLE_STOCK)
        status = 400
        if form.is_valid():
            try:
                services.open_loss_report(actor_from_request(request), **form.cleaned_data)
            except DomainError as exc:
                _errors(form, exc)
            else:
                messages.success(request, "Loss report opened: its deadlines are shown until marked filed.")
                return redirect("inventory:losses")
    return render(
        request,
        "inventory/losses.html",
        {"rows": selectors.loss_reports(clinic), "form": form, "can_stock": can_stock},
        status=status,
    )


@login_required
def loss_filed(request: HttpRequest, report_id: int) -> HttpResponse:
    require_clinic(request, ClinicAction.HANDLE_STOCK)
    if request.method != "POST":
        return redirect("inventory:losses")
    try:
        services.mark_loss_filed(actor_from_request(request), report_id, which=request.POST.get("which", ""))
    except DomainError as exc:
        if "not in this clinic" in str(exc):
            raise Http404 from None
        messages.error(request, str(exc))
        return redirect("inventory:losses")
    messages.success(request, "Marked filed.")
    return redirect("inventory:losses")


@login_required
def reports(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.VIEW_INVENTORY)
    clinic = _clinic(request)
    today = clock.today()
    return render(
        request,
        "inventory/reports.html",
        {
            "form": ReportForm(clinic, initial={"start": today.replace(day=1), "end": today}),
            "receipts": selectors.receipts(clinic)[:500],
            "counts": selectors.counts(clinic)[:50],
        },
    )


@login_required
def receipt_log(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.VIEW_INVENTORY)
    rows = selectors.receipts(_clinic(request))
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="receipt-log.csv"'
        w = csv.writer(response)
        w.writerow(
            [
                "received on",
                "registration",
                "supplier",
                "supplier DEA number",
                "invoice",
                "invoice date",
                "product",
                "NDC",
                "lot",
                "expiry",
                "containers",
                "received by",
            ]
        )
        for r in rows:
            w.writerow(
                [
                    r.received_on.isoformat(),
                    r.registration.dea_number,
                    r.supplier,
                    r.supplier_dea_number,
                    r.invoice_number,
                    r.invoice_date.isoformat(),
                    f"{r.product.name} {r.product.content().describe()}",
                    r.product.ndc,
                    r.lot,
                    r.expiry.isoformat(),
                    r.containers,
                    r.received_by.full_name,
                ]
            )
        record_event(actor_from_request(request), "export", object_type="inventory.receipt_log", detail="csv")
        return response
    return render(request, "inventory/receipt_log.html", {"receipts": rows})


@login_required
def administration_log(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    require_clinic(request, ClinicAction.VIEW_INVENTORY)
    clinic = _clinic(request)
    form = ReportForm(clinic, request.GET or None)
    if not form.is_valid():
        return render(
            request,
            "inventory/administration_log.html",
            {"form": form, "rows": None},
            status=400 if request.GET else 200,
        )
    d = form.cleaned_data
    reg = d["registration"]
    entries = selectors.administration_log(reg, d["start"], d["end"])
    actor = actor_from_request(request)
    if request.GET.get("format") == "csv":
        # Every row of the range, streamed in chunks (the page below shows one page at a time).
        total = entries.count()
        record_event(actor, "export", obj=reg, detail=f"inventory.administration_log rows={total}")
        writer = csv.writer(_Echo())
        header = [selectors.ADMIN_LOG_HEADER]
        every = selectors.stream_administration_rows(entries, reg.clinic.zone)
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in itertools.chain(header, every)), content_type="text/csv"
        )
        name = f"administration-log-{reg.dea_number}-{d['start']}-{d['end']}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    number = param(request.GET, "page", forms.IntegerField(min_value=1, max_value=10**6, required=False)) or 1
    page = selectors.administration_log_page(entries, number, ADMIN_LOG_PAGE)  # no count of the range
    rows = selectors.administration_rows(page.entries, reg.clinic.zone)
    record_event(
        actor,
        "list",
        obj=reg,
        detail=f"inventory.administration_log rows={len(rows)} page={page.number}",
    )
    params = request.GET.copy()
    params.pop("page", None)
    params.pop("format", None)
    return render(
        request,
        "inventory/administration_log.html",
        {
            "form": form,
            "rows": rows,
            "page": page,
            "extra_query": params.urlencode(),
            "header": selectors.ADMIN_LOG_HEADER,
            "registration": reg,
            "start": d["start"],
            "end": d["end"],
            "csv_url": reverse("inventory:administration_log") + "?" + params.urlencode() + "&format=csv",
        },
    )


class _Echo:
    """A file-like object whose write returns the line (csv.writer into a streaming response)."""

    def write(self, value: str) -> str:
        return value


@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.MANAGE_CLINIC)
    current = services.settings_for(_clinic(request))
    form = SettingsForm(
        request.POST or None,
        initial={"roles": current.stock_role_list(), "estimate_tolerance_mg": current.estimate_tolerance_mg},
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.update_settings(
                actor_from_request(request),
                roles=form.cleaned_data["roles"],
                estimate_tolerance_mg=form.cleaned_data["estimate_tolerance_mg"],
            )
        except DomainError as exc:
            _errors(form, exc)
        else:
            messages.success(request, "Controlled-substance settings saved.")
            return redirect("inventory:settings")
    return render(
        request,
        "inventory/form.html",
        {"form": form, "title": "Controlled-substance settings"},
        status=400 if request.method == "POST" else 200,
    )


@login_required
def holidays(request: HttpRequest) -> HttpResponse:
    """The clinic's holidays: the loss report's one-business-day notice skips them and weekends (§6)."""
    require_clinic(request, ClinicAction.VIEW_INVENTORY)
    clinic = _clinic(request)
    can_edit = _may(request, ClinicAction.REGISTER_DEA)
    form = HolidayForm(request.POST or None)
    if request.method == "POST":
        require_clinic(request, ClinicAction.REGISTER_DEA)
        remove = request.POST.get("remove", "")
        try:
            if remove:
                services.remove_holiday(actor_from_request(request), int(remove) if remove.isdigit() else 0)
                messages.success(request, "Holiday removed.")
                return redirect("inventory:holidays")
            if form.is_valid():
                services.add_holiday(actor_from_request(request), **form.cleaned_data)
                messages.success(request, "Holiday recorded.")
                return redirect("inventory:holidays")
        except DomainError as exc:
            _errors(form, exc)
    return render(
        request,
        "inventory/holidays.html",
        {
            "holidays": ClinicHoliday.objects.filter(clinic=clinic).order_by("-day")[:200],
            "form": form,
            "can_edit": can_edit,
        },
        status=400 if request.method == "POST" else 200,
    )
