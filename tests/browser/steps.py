"""Browser steps several journeys share."""

from __future__ import annotations

import datetime as dt
from typing import Any

from playwright.sync_api import expect

from kapclinic.core import clock


def check_in_esketamine(page: Any, *, systolic: str, diastolic: str, heart_rate: str) -> None:
    """On an open session page: check the patient in, record the pre-dose details for an esketamine
    session and the baseline vitals."""
    page.get_by_role("button", name="Check patient in").click()
    page.get_by_label("Weight today (kg)").fill("70")
    page.get_by_label("Last food").fill("2026-03-02T06:00")
    page.get_by_label("Last liquids").fill("2026-03-02T08:00")
    page.get_by_label("Escort / driver home").fill("Sam Escort")
    page.get_by_label("Medication changes since the last session reviewed").check()
    page.get_by_label("Pregnancy status").select_option("not_applicable")
    page.get_by_label("Intention for the session").fill("Meet what arises with curiosity")
    page.get_by_label("Patient enrolled in the Spravato REMS").check()
    page.get_by_label("Nasal corticosteroid / decongestant today").select_option("none")
    page.get_by_role("button", name="Save details").click()
    page.get_by_label("Systolic BP (mmHg)").fill(systolic)
    page.get_by_label("Diastolic BP (mmHg)").fill(diastolic)
    page.get_by_label("Heart rate (/min)").fill(heart_rate)
    page.get_by_label("SpO2 (%)").fill("98")
    page.get_by_label("Respiratory rate (/min)").fill("14")
    page.get_by_role("button", name="Save baseline vitals").click()


def record_remaining_devices(page: Any, detail: str, *, ordered: int) -> None:
    """Device 1 is recorded by "Start dosing now"; each further device 5 minutes after the previous one
    (Spravato administration: wait 5 minutes between devices). Advances the application clock."""
    for n in range(2, ordered + 1):
        clock.advance(dt.timedelta(minutes=5))
        page.goto(detail)  # the device time is pre-filled with "now" when the page renders
        with page.expect_navigation():
            page.get_by_role("button", name=f"Record device {n}").click()


def htmx_click(page: Any, target: Any) -> None:
    """Click an htmx-powered button and wait until its response has been swapped in and settled, so the
    next step never races a request still in flight (text the test waits for may already be on the page)."""
    with page.expect_response(lambda r: r.request.method == "POST"):
        target.click()
    # A locator, not wait_for_function: the Content-Security-Policy forbids evaluating strings.
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)


def sign_out(page: Any) -> None:
    """Press "Sign out" in the header and wait for the sign-in page."""
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state("networkidle")


def start_dosing(page: Any, detail: str, *, lot: str, expiry: str = "2027-06-30") -> None:
    """On the session page with a dose ordered: choose the stock container (a delivery of lot ``lot``
    is received first when the clinic has none, issue 14) and start dosing (the monitoring clock
    starts; for esketamine device 1 is recorded at this time). A lozenge's lot and expiry are typed."""
    import re

    from kapclinic.inventory.testing import stock_for_session
    from kapclinic.sessions.models import DosingSession
    from kapclinic.sessions.services import stock_form

    found = re.search(r"/(\d+)/?$", detail.rstrip("/") + "/")
    session = DosingSession.objects.get(pk=int(found.group(1))) if found else None
    page.goto(detail)
    if session is not None and stock_form(session):
        pk = stock_for_session(session, lot=lot)
        page.goto(detail)
        page.get_by_label("Container the dose is drawn from").select_option(str(pk))
    else:
        page.get_by_label("Lot number").fill(lot)
        page.get_by_label("Expiry date").fill(expiry)
    with page.expect_navigation():
        page.get_by_role("button", name="Start dosing now").click()


def record_device_disposal(page: Any, detail: str, *, email: str, password: str) -> None:
    """Esketamine: the used devices' disposal, with a witness who signs in on the form (issue 14)."""
    page.goto(detail)
    form = page.locator("form", has=page.get_by_role("button", name="Record the witnessed disposal"))
    form.get_by_label("Witness: their email address").fill(email)
    form.get_by_label("Witness: their password").fill(password)
    with page.expect_navigation():
        form.get_by_role("button", name="Record the witnessed disposal").click()
    expect(page.get_by_text("witnessed by")).to_be_visible()
