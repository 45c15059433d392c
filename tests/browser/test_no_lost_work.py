"""Issue #18 "No typed work is lost", in the browser: the idle warning with its countdown and "Stay signed
in"; the intake assessment's draft found again after an idle sign-out and signing back in on the same
page; the dosing monitor on a tablet keeping the typed vitals through a lost connection and saving them on
Retry, without moving the page or the focus."""

from __future__ import annotations

import datetime as dt
import re
import time
from decimal import Decimal
from typing import Any

from django.conf import settings as django_settings
from playwright.sync_api import expect

from kapclinic.accounts.middleware import SESSION_LAST_SEEN
from kapclinic.clinical.vitals import Reading
from kapclinic.core import clock
from kapclinic.drafts.models import Draft
from kapclinic.sessions import services as session_services
from kapclinic.sessions.models import Administration, DeviceUse, DosingSession, Observation
from kapclinic.testing.factories import actor_for, make_clinic, make_patient, make_staff
from tests.browser.conftest import PASSWORD

NOTES = "Synthetic: two adequate SSRI trials failed, last in 2025"


def _expire_session(page: Any) -> None:
    """What 15 idle minutes do: the session's last activity is long ago (the next request signs out)."""
    from importlib import import_module

    store = import_module(django_settings.SESSION_ENGINE).SessionStore
    cookie = next(c for c in page.context.cookies() if c["name"] == django_settings.SESSION_COOKIE_NAME)
    session = store(session_key=cookie["value"])
    session[SESSION_LAST_SEEN] = time.time() - 3600
    session.save()
    # The signed last-seen cookie counts as activity too: an idle browser's is as old as the session's.
    from kapclinic.accounts.middleware import _last_seen_cookie_name

    page.context.clear_cookies(name=_last_seen_cookie_name())


def _sign_in_here(page: Any, email: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("networkidle")


def test_idle_warning_counts_down_and_stay_signed_in_keeps_the_session(
    page: Any, server: str, login: Any, settings: Any, axe_check: Any, shot: Any
) -> None:
    # 12 seconds of allowed inactivity: the warning shows for the last 6 (the real setting gives 2 minutes).
    settings.STAFF_IDLE_TIMEOUT_MINUTES = 0.2
    clinic = make_clinic("Harbor")
    make_staff(clinic, "nurse", name="Nadia Nurse", email="nurse@idle.test")
    login(page, "nurse@idle.test")
    page.goto(f"{server}/patients/")
    dialog = page.get_by_role("dialog", name="Are you still there?")
    expect(dialog).to_be_visible(timeout=12000)
    expect(dialog.locator("[data-idle-countdown]")).to_have_text(re.compile(r"^0:0[0-6]$"))
    expect(dialog.get_by_role("button", name="Stay signed in")).to_be_focused()
    shot(page, "no-lost-work-1-idle-warning", full_page=False)
    axe_check(page, "idle warning")
    dialog.get_by_role("button", name="Stay signed in").click()
    expect(dialog).to_be_hidden()
    page.goto(f"{server}/patients/")  # still signed in: the POST counted as activity
    assert "/account/login/" not in page.url
    expect(page.get_by_role("heading", level=1)).to_be_visible()


def test_assessment_draft_survives_an_idle_sign_out_and_comes_back_on_the_same_page(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any, settings: Any
) -> None:
    settings.STAFF_IDLE_TIMEOUT_MINUTES = 15  # the suite's default is long (conftest): this test signs out
    clinic = make_clinic("Harbor")
    prescriber = make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="prescriber@draft.test")
    patient = make_patient(clinic, care_team=[prescriber], legal_first_name="Robin")
    url = f"{server}/intake/patients/{patient.pk}/assessment/"
    login(page, "prescriber@draft.test")
    page.goto(url)
    page.get_by_label("Prior treatment notes").fill(NOTES)
    page.get_by_label("Systolic BP").fill("128")
    page.get_by_label("Diastolic BP").fill("82")
    expect(page.locator("[data-draft-status]")).to_have_text(re.compile(r"^Draft saved \d\d:\d\d\.$"))
    assert Draft.objects.get(user=prescriber).data["prior_treatment_notes"] == NOTES

    # 15 idle minutes later the prescriber presses Save: the server signs them out first.
    _expire_session(page)
    with page.expect_navigation():
        page.get_by_role("button", name="Save assessment").click()
    assert "/account/login/" in page.url and "next=" in page.url
    expect(page.get_by_text("You were signed out after a period of inactivity.")).to_be_visible()
    shot(page, "no-lost-work-2a-signed-out")
    _sign_in_here(page, "prescriber@draft.test")

    # Back on the same page, with what was typed.
    assert page.url == url
    notice = page.locator("[data-draft-notice]")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text(re.compile(r"Restored your unsaved draft from \d\d:\d\d"))
    expect(page.get_by_label("Prior treatment notes")).to_have_value(NOTES)
    expect(page.get_by_label("Systolic BP")).to_have_value("128")
    expect(page.get_by_label("Diastolic BP")).to_have_value("82")
    shot(page, "no-lost-work-2b-draft-restored", full_page=False)
    axe_check(page, "assessment with a restored draft")

    # Saving the assessment clears the draft; the page no longer offers one.
    with page.expect_navigation():
        page.get_by_role("button", name="Save assessment").click()
    expect(page.get_by_text("Assessment saved.")).to_be_visible()
    assert not Draft.objects.exists()
    page.goto(url)
    expect(page.get_by_label("Prior treatment notes")).to_have_value(NOTES)  # now the saved value
    expect(page.locator("[data-draft-notice]")).to_be_hidden()


def _monitoring_session(clinic: Any, nurse: Any, prescriber: Any) -> DosingSession:
    now = clock.now()
    patient = make_patient(clinic, care_team=[prescriber, nurse], legal_first_name="Robin")
    s = DosingSession.objects.create(
        clinic=clinic, patient=patient, protocol_id="esketamine-in-trd", protocol_version="1.0.0",
        scheduled_for=now - dt.timedelta(minutes=60), created_by=prescriber, state="checked_in",
        checked_in_at=now - dt.timedelta(minutes=60),
    )  # fmt: skip
    baseline = Reading(sbp=130, dbp=80, hr=70, rr=14, spo2=98)
    session_services.vitals_record(actor_for(nurse, clinic), s, baseline)
    DosingSession.objects.filter(pk=s.pk).update(
        state="monitoring", predose_passed_at=now - dt.timedelta(minutes=50),
        gate_snapshot=[{"label": "Signed treatment plan", "status": "pass", "detail": "Synthetic"}],
        first_dose_at=now - dt.timedelta(minutes=45), monitoring_started_at=now - dt.timedelta(minutes=35),
    )  # fmt: skip
    admin = Administration.objects.create(
        session=s, product="Esketamine nasal spray", route="IN", dose_mg=Decimal("56"), devices=2,
        ordered_by=prescriber, ordered_at=now - dt.timedelta(minutes=48), double_checked_by=nurse,
        double_checked_at=now - dt.timedelta(minutes=47), administered_by=nurse,
        administered_at=now - dt.timedelta(minutes=45),
    )  # fmt: skip
    for number in (1, 2):
        at = now - dt.timedelta(minutes=45 - 5 * (number - 1))
        DeviceUse.objects.create(
            administration=admin, number=number, at=at, recorded_by=nurse, recorded_at=at
        )
    return DosingSession.objects.get(pk=s.pk)


def test_vitals_survive_a_lost_connection_on_a_tablet(
    tablet_page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    page = tablet_page
    clinic = make_clinic("Harbor")
    prescriber = make_staff(clinic, "prescriber", email="prescriber@net.test")
    nurse = make_staff(clinic, "nurse", name="Nadia Nurse", email="nurse@net.test")
    s = _monitoring_session(clinic, nurse, prescriber)
    login(page, "nurse@net.test")
    page.goto(f"{server}/sessions/patient/{s.patient_id}/{s.pk}/")
    expect(page.get_by_role("heading", name="Record vitals")).to_be_visible()

    # "Skip to vitals entry" is the second Tab stop of the page and puts the cursor in the first field.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to vitals entry")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Systolic BP (mmHg)")).to_be_focused()
    # Past it, the field still comes right after the header, the navigation and the session's link
    # to the chart: before the pre-dose checks, the dose given and the monitoring history.
    # (Counted from the start of the page's main content: the header's menu grows with the role's pages.)
    page.goto(page.url)
    page.focus("#main")
    presses = 0
    while page.evaluate("document.activeElement && document.activeElement.id") != "id_sbp":
        page.keyboard.press("Tab")
        presses += 1
        assert presses <= 6, "the first vitals field is more than 6 Tab presses into the page's content"

    vitals = {"Systolic BP (mmHg)": "128", "Diastolic BP (mmHg)": "82", "Heart rate (/min)": "72",
              "Respiratory rate (/min)": "14", "SpO2 (%)": "97"}  # fmt: skip
    for label, value in vitals.items():
        page.get_by_label(label).fill(value)
    before = Observation.objects.filter(session=s).count()

    # The network drops: announced, and the save says it failed while the values stay typed in.
    page.context.set_offline(True)
    connection = page.locator("[data-connection-state]")
    expect(connection).to_contain_text("Connection lost")
    form = page.locator("#vitals-form")
    page.get_by_role("button", name="Save vitals").click()
    state = form.locator("[data-save-state]")
    expect(state).to_contain_text("Not saved: connection lost. Your values are kept")
    retry = state.get_by_role("button", name="Retry")
    expect(retry).to_be_visible()
    for label, value in vitals.items():
        expect(page.get_by_label(label)).to_have_value(value)
    assert Observation.objects.filter(session=s).count() == before
    # Following a link now would throw the values away: the browser asks first (and we stay).
    asked: list[str] = []

    def stay_on_page(dialog: Any) -> None:
        asked.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", stay_on_page)
    page.get_by_role("link", name="Chart").click(no_wait_after=True)
    # The page answers again only once the dialog is answered.
    expect(page.get_by_label("Systolic BP (mmHg)")).to_have_value("128")
    assert asked == ["beforeunload"]
    page.remove_listener("dialog", stay_on_page)
    shot(page, "no-lost-work-3a-vitals-not-saved", full_page=False)
    axe_check(page, "vitals not saved")

    # Back online: announced; Retry saves; the form stays where it was on the screen and keeps the focus.
    page.context.set_offline(False)
    expect(connection).to_contain_text("Connection restored")
    retry.scroll_into_view_if_needed()
    top = form.bounding_box()["y"]
    retry.click()
    expect(page.locator("#vitals-form [data-save-status]")).to_have_text(re.compile(r"^Saved \d\d:\d\d\."))
    assert Observation.objects.filter(session=s).count() > before
    assert abs(form.bounding_box()["y"] - top) < 4, "the view moved after the save"
    expect(page.get_by_role("button", name="Save vitals")).to_be_focused()  # Retry's form keeps the focus
    shot(page, "no-lost-work-3b-vitals-saved", full_page=False)
    axe_check(page, "vitals saved")

    # A save from the keyboard (Enter in a field) keeps that field focused after the swap.
    page.get_by_label("Heart rate (/min)").fill("74")
    page.get_by_label("Heart rate (/min)").press("Enter")
    expect(page.locator("#vitals-form [data-save-status]")).to_have_text(re.compile(r"^Saved \d\d:\d\d\."))
    expect(page.get_by_label("Heart rate (/min)")).to_be_focused()


def test_portal_questionnaire_draft_on_a_phone_and_discarding_it(
    phone_page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    from kapclinic.accounts.models import User
    from kapclinic.testing.factories import PASSWORD as FACTORY_PASSWORD

    page = phone_page
    clinic = make_clinic("Harbor")
    user = User.objects.create_user(
        email="robin@draft.test", full_name="Robin Synthetic", password=FACTORY_PASSWORD
    )
    make_patient(clinic, user=user, legal_first_name="Robin")
    login(page, "robin@draft.test")
    page.goto(f"{server}/intake/questionnaire/")
    notes = page.get_by_label("Anything else you would like your care team to know")
    notes.fill("Synthetic: I get nervous in clinics")
    expect(page.locator("[data-draft-status]")).to_have_text(re.compile(r"^Draft saved \d\d:\d\d\.$"))

    # The phone's browser is closed and opened again later: the draft is on the server, not on the phone.
    page.reload()
    expect(page.locator("[data-draft-notice]")).to_be_visible()
    expect(notes).to_have_value("Synthetic: I get nervous in clinics")
    page.locator("[data-draft-notice]").scroll_into_view_if_needed()
    shot(page, "no-lost-work-4-portal-draft-restored", full_page=False)
    axe_check(page, "portal questionnaire with a restored draft")
    stored = page.evaluate(
        "JSON.stringify([Object.entries(window.localStorage), Object.entries(window.sessionStorage)])"
    )
    assert "nervous" not in stored  # nothing typed is kept in the browser's storage

    # "Discard draft": the saved values come back and the draft is gone.
    with page.expect_navigation():
        page.get_by_role("button", name="Discard draft").click()
    expect(notes).to_have_value("")
    expect(page.locator("[data-draft-notice]")).to_be_hidden()
    assert not Draft.objects.exists()
