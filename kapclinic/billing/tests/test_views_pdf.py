"""Billing pages and PDF documents: the biller's journey through the views, the superbill's every
required field read back from the PDF (docs/billing.md section 3), the statement and receipt, the
patient's own downloads from the portal, and the audit of each download."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from pypdf import PdfReader

from kapclinic.audit.models import AuditEvent
from kapclinic.billing import services
from kapclinic.billing.models import Account, ChargeLine, ChargeStatus, Payment
from kapclinic.billing.testing import add_diagnosis, discharged_session, starter_fee_schedule
from kapclinic.core import clock
from kapclinic.testing.factories import actor_for

pytestmark = pytest.mark.django_db

NPI_ORG = "1234567893"  # the CMS example NPI (valid check digit)
NPI_IND = "1245319599"


def _text(data: bytes) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)


@pytest.fixture
def billed(world: Any) -> Any:
    admin = actor_for(world.admin, world.clinic)
    starter_fee_schedule(admin)
    add_diagnosis(world.patient, world.prescriber, "F33.2", "Synthetic: major depressive disorder, recurrent")
    services.save_profile(
        admin,
        expected_version=None,
        legal_name="Harbor KAP Clinic LLC",
        organisation_npi=NPI_ORG,
        tax_id="12-3456789",
        billing_address="1 Synthetic Way\nPortland, OR 97201",
        billing_phone="+1 503 555 0100",
    )
    services.save_provider(
        admin,
        world.prescriber,
        expected_version=None,
        credentials="MD",
        licence_number="MD-000123",
        licence_state="OR",
        npi=NPI_IND,
    )
    type(world.patient).objects.filter(pk=world.patient.pk).update(
        address="22 Example Street\nSalem, OR 97301", phone="+1 503 555 0199"
    )
    world.patient.refresh_from_db()
    acc = services.account_for(world.patient)
    acc.insurance_member_id, acc.insurance_payer = "MBR-778899", "Synthetic Health Plan"
    acc.save()
    return world


def test_biller_proposes_posts_and_takes_a_payment(billed: Any, client: Any) -> None:
    w = billed
    s = discharged_session(w.patient, w.prescriber, dose_mg="56")
    client.force_login(w.front_desk)
    index = client.get(reverse("billing:index"))
    assert index.status_code == 200 and w.patient.mrn in index.content.decode()

    def act(op: str) -> str:
        return reverse("billing:patient_action", args=[w.patient.pk, op])

    assert client.post(act("propose"), {"session": s.pk}).status_code == 302
    line = ChargeLine.objects.get(session=s)
    page = client.get(reverse("billing:patient", args=[w.patient.pk])).content.decode()
    assert "G2082" in page and "Proposed charges" in page
    assert client.post(act("post"), {"lines": [line.pk]}).status_code == 302
    line.refresh_from_db()
    assert line.status == ChargeStatus.POSTED
    bad = client.post(act("payment"), {"method": "cheque", "amount": "400.00", "reference": ""})
    assert bad.status_code == 400 and "needs its reference" in bad.content.decode()
    assert not Payment.objects.exists()
    assert (
        client.post(act("payment"), {"method": "card", "amount": "400.00", "reference": "AUTH-1"}).status_code
        == 302
    )
    page = client.get(reverse("billing:patient", args=[w.patient.pk])).content.decode()
    assert "Owes 0.00" in page


def test_other_roles_and_clinics(billed: Any, client: Any) -> None:
    client.force_login(billed.prescriber)
    assert client.get(reverse("billing:patient", args=[billed.patient.pk])).status_code == 403
    client.force_login(billed.front_desk)
    assert client.get(reverse("billing:patient", args=[billed.other_clinic_patient.pk])).status_code == 404
    assert client.post(reverse("billing:patient_action", args=[billed.patient.pk, "nope"])).status_code == 404


def _posted_and_paid(w: Any) -> ChargeLine:
    desk = actor_for(w.front_desk, w.clinic)
    s = discharged_session(w.patient, w.prescriber, dose_mg="84")
    proposed = services.propose_for_session(desk, s)
    (line,) = services.post_charges(desk, w.patient, line_ids=[x.pk for x in proposed])
    services.record_payment(desk, w.patient, method="card", amount="450.00", reference="AUTH-9")
    return line


@pytest.mark.parametrize(("paper", "width"), [("Letter", 612), ("A4", 595)])
def test_superbill_pdf_carries_every_required_field(billed: Any, client: Any, paper: str, width: int) -> None:
    w = billed
    line = _posted_and_paid(w)
    client.force_login(w.front_desk)
    day = line.service_date.isoformat()
    r = client.get(
        reverse("billing:document", args=[w.patient.pk, "superbill"]),
        {"start": day, "end": day, "paper": paper},
    )
    assert r.status_code == 200 and r["Content-Type"] == "application/pdf"
    data = b"".join(r.streaming_content) if r.streaming else r.content
    reader = PdfReader(io.BytesIO(data))
    assert round(float(reader.pages[0].mediabox.width)) == width
    text = _text(data)
    required = [
        # patient
        w.patient.legal_first_name,
        w.patient.legal_last_name,
        "1985-04-12",
        "22 Example Street",
        "MBR-778899",
        # provider
        w.prescriber.full_name,
        "MD",
        "MD-000123",
        NPI_IND,
        NPI_ORG,
        "12-3456789",
        "1 Synthetic Way",
        "Provider signature",
        # line
        day,
        "11",
        "G2083",
        "F33.2",
        "450.00",
        # totals
        "Total charges",
        "Amount paid",
        "Balance",
        "Paid in full",
        # running header
        w.patient.mrn,
        "Page 1 of",
    ]
    missing = [f for f in required if f not in text]
    assert missing == []
    exports = AuditEvent.objects.filter(patient=w.patient, action="export", detail="billing.pdf:superbill")
    assert exports.count() == 1


def test_superbill_for_one_session_and_empty_range(billed: Any, client: Any) -> None:
    w = billed
    line = _posted_and_paid(w)
    client.force_login(w.front_desk)
    url = reverse("billing:document", args=[w.patient.pk, "superbill"])
    r = client.get(url, {"session": line.session_id})
    assert r.status_code == 200 and "G2083" in _text(r.content)
    r = client.get(url, {"start": "2020-01-01", "end": "2020-01-31"})
    assert r.status_code == 302
    assert (
        AuditEvent.objects.filter(patient=w.patient, detail="billing.pdf:superbill").count() == 1
    )  # not the empty one


def test_statement_and_receipt(billed: Any, client: Any) -> None:
    w = billed
    line = _posted_and_paid(w)
    client.force_login(w.admin)
    day = line.service_date.isoformat()
    today = clock.today().isoformat()
    st = _text(
        client.get(
            reverse("billing:document", args=[w.patient.pk, "statement"]), {"start": day, "end": today}
        ).content
    )
    assert "Statement of account" in st and "Previous balance" in st and "Ending balance: 0.00" in st
    inv = _text(
        client.get(
            reverse("billing:document", args=[w.patient.pk, "invoice"]), {"start": day, "end": today}
        ).content
    )
    assert "Receipt" in inv and "AUTH-9" in inv and "Paid in full" in inv


def test_patient_downloads_own_superbill_from_portal(billed: Any, client: Any) -> None:
    w = billed
    line = _posted_and_paid(w)
    client.force_login(w.patient_user)
    page = client.get(reverse("billing:portal"))
    assert page.status_code == 200 and "Download superbill" in page.content.decode()
    one = f"{reverse('billing:portal_document', args=['superbill'])}?session={line.session_id}"
    assert one in page.content.decode()
    assert "G2083" in _text(client.get(one).content)
    home = client.get(reverse("portal:index")).content.decode()
    assert reverse("billing:portal") in home
    day = line.service_date.isoformat()
    r = client.get(reverse("billing:portal_document", args=["superbill"]), {"start": day, "end": day})
    assert r.status_code == 200 and "G2083" in _text(r.content)
    assert AuditEvent.objects.filter(patient=w.patient, action="export", actor=w.patient_user).count() == 2
    # another patient of the clinic sees only their own (empty) account
    client.force_login(w.other_patient_user)
    r = client.get(reverse("billing:portal_document", args=["superbill"]), {"start": day, "end": day})
    assert r.status_code == 302


def test_bad_document_parameters(billed: Any, client: Any) -> None:
    client.force_login(billed.front_desk)
    url = reverse("billing:document", args=[billed.patient.pk, "superbill"])
    assert client.get(url, {"start": "2026-05-01", "end": "2026-01-01"}).status_code == 302
    assert client.get(url, {"start": "not a date", "end": "2026-01-01"}).status_code == 302
    assert (
        client.get(
            reverse("billing:document", args=[billed.patient.pk, "other"]),
            {"start": "2026-01-01", "end": "2026-01-02"},
        ).status_code
        == 404
    )


def test_account_insurance_saved(billed: Any, client: Any) -> None:
    client.force_login(billed.front_desk)
    acc = Account.objects.get(patient=billed.patient)
    r = client.post(
        reverse("billing:patient_action", args=[billed.patient.pk, "account"]),
        {"version": acc.version, "insurance_payer": "Other plan", "insurance_member_id": "X1"},
    )
    assert r.status_code == 302
    acc.refresh_from_db()
    assert acc.insurance_member_id == "X1"
    assert Decimal(0) == Decimal(0)
