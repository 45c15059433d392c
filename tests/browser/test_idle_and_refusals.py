"""In a real browser: a nurse active every 13 s at the 1-minute idle setting stays signed in (the
last-activity cookie is HttpOnly and SameSite=Lax), is signed out with a sentence after 61 s idle; a
refused page (403) leaves one "denied" audit event naming the patient."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from playwright.sync_api import expect

from kapclinic.testing.factories import make_clinic, make_patient, make_staff

pytestmark = pytest.mark.browser


def test_nurse_idle_timeout_and_refusal(
    page: Any, server: str, login: Any, settings: Any, axe_check: Any, shot: Any
) -> None:
    from kapclinic.audit.models import AuditEvent
    from kapclinic.core import clock

    clinic = make_clinic("Harbor")
    make_staff(clinic, "nurse", name="Nadia Nurse", email="nurse@b.test")
    patient = make_patient(clinic, legal_first_name="Robin")
    settings.STAFF_IDLE_TIMEOUT_MINUTES = 1
    clock.freeze(dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC))

    login(page, "nurse@b.test")
    for _ in range(10):  # 130 s of activity every 13 s
        clock.advance(dt.timedelta(seconds=13))
        page.goto(f"{server}/patients/")
        expect(page.get_by_role("heading", name="Patients")).to_be_visible()
    seen = [c for c in page.context.cookies() if c["name"] == "kap_seen"]
    assert len(seen) == 1 and seen[0]["httpOnly"] and seen[0]["sameSite"] == "Lax"

    before = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    response = page.goto(f"{server}/notes/patient/{patient.pk}/process/")
    assert response is not None and response.status == 403
    denied = list(AuditEvent.objects.filter(pk__gt=before).values_list("action", "patient_id"))
    assert denied == [("denied", patient.pk)]
    shot(page, "hardening-nurse-process-notes-403")

    clock.advance(dt.timedelta(seconds=61))
    page.goto(f"{server}/patients/")
    assert "/account/login/" in page.url
    expect(page.get_by_text("You were signed out after a period of inactivity.")).to_be_visible()
    axe_check(page, "signed-out-idle")
    shot(page, "hardening-idle-signed-out")
