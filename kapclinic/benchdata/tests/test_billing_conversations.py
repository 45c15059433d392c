"""seed_scale's billing and messaging domains write data the apps' own reads agree with: ledgers that
balance, allocations within their charges, threads whose summary columns match their messages."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import Max, Sum

from kapclinic.billing import selectors as billing
from kapclinic.billing import services as billing_services
from kapclinic.billing.models import Allocation, ChargeLine, Payment
from kapclinic.conversations import selectors as conversations
from kapclinic.conversations.models import Message, ReadMark, Thread
from kapclinic.patients.models import Patient
from kapclinic.testing.factories import actor_for


@pytest.fixture
def seeded(db: Any) -> dict[str, Any]:
    out = io.StringIO()
    call_command("seed_scale", patients=40, seed=5, no_progress=True, json=True, stdout=out)
    summary: dict[str, Any] = json.loads(out.getvalue())
    assert "billing" in summary["domains_run"] and "conversations" in summary["domains_run"]
    return summary


def test_ledgers_balance_and_allocations_stay_within_their_charges(seeded: dict[str, Any]) -> None:
    billed = Patient.objects.filter(charge_lines__isnull=False).distinct()
    assert billed.count() >= 10
    assert Payment.objects.exists()
    for patient in billed:
        opening, rows = billing.ledger(patient)
        charges = ChargeLine.objects.filter(patient=patient, status="posted").aggregate(t=Sum("amount"))["t"]
        paid = Payment.objects.filter(patient=patient).aggregate(t=Sum("amount"))["t"] or Decimal(0)
        adjusted = patient.adjustments.aggregate(t=Sum("amount"))["t"] or Decimal(0)
        assert opening == 0 and rows[-1].balance == charges - paid - adjusted
        assert billing.summary(patient).balance == rows[-1].balance >= 0
        assert billing_services.unapplied_credit(patient) == 0  # every payment is allocated in full
    for line in billing_services.with_open(ChargeLine.objects.all()):
        assert 0 <= line.open_amount_db <= line.amount
    assert not Allocation.objects.filter(amount__lte=0).exists()
    # The benchmark patient (long history) has a ledger of realistic length.
    bench = Patient.objects.get(user__email__startswith="bench-patient@")
    assert len(billing.ledger(bench)[1]) >= 15


def test_threads_agree_with_their_messages_and_read_marks(seeded: dict[str, Any]) -> None:
    assert Thread.objects.filter(kind="patient").exists() and Thread.objects.filter(kind="staff").exists()
    assert Thread.objects.filter(status="open").exists() and Thread.objects.filter(status="done").exists()
    for thread in Thread.objects.annotate(last=Max("messages__created_at")):
        assert thread.last == thread.last_message_at
        last = Message.objects.filter(thread=thread).order_by("-created_at", "-id").first()
        assert last is not None and last.author_id == thread.last_message_by_id
        if thread.awaiting_since is not None:
            assert thread.status == "open" and last.from_patient
        if thread.kind == "staff":
            assert not thread.messages.filter(from_patient=True).exists()
        mark = ReadMark.objects.get(thread=thread, user_id=thread.last_message_by_id)
        assert mark.read_at >= thread.last_message_at
    # The bell's and the inbox's counts read the seeded threads (some unread for someone).
    staff = {
        (t.clinic, u)
        for t in Thread.objects.select_related("clinic", "patient")
        for u in t.patient.care_team.all()
    }
    assert any(conversations.unread_count(actor_for(m.user, clinic)) > 0 for clinic, m in staff)
