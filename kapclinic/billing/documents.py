"""Billing documents as PDF through the one renderer (kapclinic/core/pdf.py): the superbill, the
statement of account and the invoice/receipt. Fields and their sources: docs/billing.md section 3.
Every download is an audited export (`export`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpResponse

from kapclinic.audit.models import AuditAction
from kapclinic.audit.services import record_event
from kapclinic.billing import selectors
from kapclinic.billing.models import Account
from kapclinic.clinical.billing.money import ZERO, money
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.pdf import Paper, render_pdf
from kapclinic.documents.logo import logo_data_uri
from kapclinic.patients.models import Patient


def _base(patient: Patient, title: str) -> dict[str, Any]:
    from kapclinic.billing import services

    profile = services.profile_for(patient.clinic)
    return {
        "clinic_name": profile.legal_name or patient.clinic.name,
        "running_header": f"{patient.legal_first_name} {patient.legal_last_name} · {patient.mrn}",
        "document_title": title,
        "clinic": patient.clinic,
        "clinic_logo": logo_data_uri(patient.clinic),
        "profile": profile,
        "patient": patient,
        "account": Account.objects.filter(patient=patient).first(),
        "currency": profile.currency,
    }


def superbill_pdf(bill: selectors.Superbill, paper: Paper = "Letter") -> bytes:
    ctx = _base(bill.patient, "Superbill")
    ctx.update({"bill": bill})
    return render_pdf("billing/pdf/superbill.html", ctx, paper=paper)


def statement_pdf(patient: Patient, start: dt.date, end: dt.date, paper: Paper = "Letter") -> bytes:
    opening, rows = selectors.ledger(patient, since=start, until=end)
    closing = rows[-1].balance if rows else opening
    ctx = _base(patient, "Statement of account")
    ctx.update(
        {
            "start": start,
            "end": end,
            "opening": opening,
            "rows": rows,
            "closing": closing,
            "packages": selectors.summary(patient).packages,
        }
    )
    return render_pdf("billing/pdf/statement.html", ctx, paper=paper)


def invoice_pdf(patient: Patient, start: dt.date, end: dt.date, paper: Paper = "Letter") -> bytes:
    """Charges for the dates with what was paid on each: titled Receipt when nothing is left to pay."""
    bill = selectors.superbill(patient, start, end)
    title = "Receipt" if bill.lines and bill.balance == ZERO else "Invoice"
    payments = [
        r for r in selectors.ledger(patient, since=start, until=end)[1] if r.kind in ("payment", "refund")
    ]
    ctx = _base(patient, title)
    ctx.update(
        {
            "bill": bill,
            "title": title,
            "payments": payments,
            "due": money(bill.balance),
            "issued": clock.today(),
        }
    )
    return render_pdf("billing/pdf/invoice.html", ctx, paper=paper)


def export(actor: Actor, patient: Patient, what: str) -> None:
    """One audited export event for a billing document download."""
    record_event(
        actor,
        AuditAction.EXPORT,
        patient=patient,
        object_type="billing.document",
        object_id=what,
        detail=f"billing.pdf:{what}",
    )


def pdf_response(data: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
