"""Issue 18, phone and accessibility: every page each role reaches fits a 360 CSS px phone and passes axe.

For each staff role and the patient, one browser context (360x800, touch, mobile) signs in once and opens
the dashboard, every link of the role's header menu, and the pages of a patient's record and of the day's
objects (appointment, dosing session, inquiry) that the role may open (a 403/404 answer means the role
may not: skipped). On each page: nothing scrolls sideways (the failure names the page and the widest
elements), every checkbox and radio button is at least 24x24 CSS px (WCAG 2.5.8), axe-core finds nothing
serious or critical, and, widened to 1280 px in the same context (once per kind of page), axe-core
again finds nothing. The public pages are swept the same way without signing in.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe

from kapclinic.clinical.eligibility import selfcheck as sc
from kapclinic.core import clock
from kapclinic.intake.models import Inquiry
from kapclinic.scheduling.models import Reminder
from kapclinic.testing.factories import actor_for, make_clinic, make_patient, make_patient_user, make_staff

PHONE = {"width": 360, "height": 800}
DESKTOP = {"width": 1280, "height": 900}
# KAP_SWEEP_SHOTS=1 keeps a screenshot of every page; otherwise only of the pages with a problem.
SHOTS = bool(os.environ.get("KAP_SWEEP_SHOTS"))
STAFF_ROLES = ["admin", "prescriber", "therapist", "nurse", "front_desk"]

# Elements wider than the viewport, widest first, described so a failure names its cause.
# ``w`` is the viewport's width: with is_mobile, Chromium zooms a page that is too wide out, and
# window.innerWidth then grows with the page.
OVERFLOW_JS = """(w) => {
  const doc = document.documentElement.scrollWidth;
  if (doc <= w) return null;
  // Inside a scroll box that fits (a .table-wrap)? An absolutely positioned element escapes every
  // scroll box below its containing block (a visually hidden label inside a table widens the page).
  const clipped = (el) => {
    let contained = getComputedStyle(el).position !== 'absolute';
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (!contained && style.position !== 'static') contained = true;
      if (contained && style.overflowX !== 'visible' && p.getBoundingClientRect().right <= w + 1) return true;
    }
    return false;
  };
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.right > w + 1 && r.width > 0 && !clipped(el)) {
      const cls = typeof el.className === 'string' && el.className.trim()
        ? '.' + el.className.trim().split(/\\s+/).join('.') : '';
      const text = (el.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 40);
      const tag = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + cls;
      out.push([Math.round(r.right), tag + ' "' + text + '"']);
    }
  }
  out.sort((a, b) => b[0] - a[0]);
  return {scrollWidth: doc, width: w, widest: out.slice(0, 4)};
}"""

_DESKTOP_DONE: set[str] = set()
AXE_RUN = "axe.run(document, {resultTypes: ['violations']})"

# Checkboxes and radio buttons smaller than 24x24 CSS px (WCAG 2.5.8 target size, minimum).
SMALL_TARGETS_JS = """() => {
  const out = [];
  for (const el of document.querySelectorAll('input[type=checkbox], input[type=radio]')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;  // not rendered (print-only, closed details)
    if (r.width < 24 || r.height < 24) out.push((el.name || el.id) + ' ' + r.width + 'x' + r.height);
  }
  return out.slice(0, 3);
}"""


@pytest.fixture
def clinic_day(db: Any) -> dict[str, Any]:
    """One clinic with every staff role, a portal patient ready to dose with a dosing appointment
    tomorrow (its reminder failed once), today's dosing session and an inquiry: long values everywhere a
    phone has to wrap them."""
    from kapclinic.scheduling.models import Appointment
    from kapclinic.sessions import services as session_services
    from kapclinic.treatment.testing import make_dosing_ready

    clinic = make_clinic(
        "Harbor Ketamine-Assisted Psychotherapy",
        phone="(555) 010-2040",
        email="hello@harbor-kap.test",
        address="200 Example Street, Suite 3\nPortland, OR 97201",
        hours="Monday to Friday, 8:00 to 18:00",
    )
    staff = {role: make_staff(clinic, role, email=f"{role}@sweep.test") for role in STAFF_ROLES}
    user, patient = make_patient_user(
        clinic,
        care_team=[staff["prescriber"], staff["therapist"], staff["nurse"]],
        email="alexandra.featherstonehaugh-longname@example-clinic-mail.test",
        phone="+1 (555) 010-4477",
        emergency_contact_name="Sam Featherstonehaugh",
        emergency_contact_relationship="sibling",
        emergency_contact_phone="+1 (555) 010-9911",
    )
    plan = make_dosing_ready(patient, staff["prescriber"])
    now = clock.now()
    appt = Appointment.objects.create(
        clinic=clinic,
        patient=patient,
        kind="dosing",
        staff=staff["therapist"],
        created_by=staff["front_desk"],
        starts_at=now + dt.timedelta(days=1),
        ends_at=now + dt.timedelta(days=1, hours=2),
    )
    Reminder.objects.create(
        clinic=clinic,
        appointment=appt,
        send_at=now - dt.timedelta(hours=1),
        status="failed",
        attempts=3,
        last_error="SMTPServerDisconnected: Connection unexpectedly closed by the remote mail exchanger",
    )
    session = session_services.session_create(
        actor_for(staff["prescriber"], clinic),
        patient,
        protocol_key="esketamine-in-trd",
        scheduled_for=now + dt.timedelta(hours=1),
    )
    inquiry = Inquiry.objects.create(
        clinic=clinic,
        name="Jordan Quinterro-Whitfield",
        email="jordan.quinterro-whitfield.longaddress@example-mailbox.test",
        phone="+1 (555) 010-2233",
        message="Long-standing low mood; two antidepressants did not help.",
        consent_to_contact=True,
        submission_token="sweep-1",
        client_key="sweep",
    )
    # A second patient who has not signed the consent yet: the in-clinic (tablet) signature pages.
    newcomer = make_patient(clinic, care_team=[staff["therapist"]])
    pid = patient.pk
    record = [
        f"/patients/{pid}/",
        f"/patients/{pid}/edit/",
        f"/patients/{pid}/care-team/",
        f"/patients/{pid}/timeline/",
        f"/intake/patients/{pid}/assessment/",
        f"/intake/patients/{pid}/eligibility/",
        f"/consent/patients/{pid}/",
        f"/consent/patients/{newcomer.pk}/sign/",
        f"/measures/patients/{pid}/",
        f"/measures/patients/{pid}/safety-plan/",
        f"/notes/patients/{pid}/",
        f"/schedule/patient/{pid}/",
        f"/schedule/a/{appt.pk}/",
        f"/sessions/patient/{pid}/{session.pk}/",
        f"/intake/inquiries/{inquiry.pk}/",
        "/schedule/reminders/",
        "/schedule/week/",
        "/account/staff/",
        "/account/clinic/details/",
        f"/treatment/patients/{pid}/plans/{plan.pk}/",
        f"/measures/patients/{pid}/history/PHQ-9/",
        f"/notes/patients/{pid}/process/",
        "/patients/new/",
        "/schedule/new/",
        "/schedule/chairs/",
        "/schedule/rooms/",
        "/notes/templates/",
        "/consent/documents/new/",
    ]
    return {
        "clinic": clinic,
        "staff": staff,
        "patient_user": user,
        "patient": patient,
        "newcomer": newcomer,
        "record": record,
    }


def _problems(page: Any, name: str, axe: Any) -> list[str]:
    found: list[str] = []
    overflow = page.evaluate(OVERFLOW_JS, PHONE["width"])
    if overflow:
        widest = "; ".join(f"{right}px {desc}" for right, desc in overflow["widest"])
        found.append(f"{name}: scrolls sideways ({overflow['scrollWidth']} px wide): {widest}")
    small = page.evaluate(SMALL_TARGETS_JS)
    if small:
        found.append(f"{name}: tap targets under 24x24 px: {small}")
    page.evaluate(axe.axe_script)  # once per page; axe.run() would inject it again for each width
    # The desktop pass runs once per kind of page (ids masked) in the whole sweep, to keep it short.
    kind = re.sub(r"\d+", "N", name)
    widths = [("phone", PHONE)] if kind in _DESKTOP_DONE else [("phone", PHONE), ("desktop", DESKTOP)]
    _DESKTOP_DONE.add(kind)
    for label, size in widths:
        page.set_viewport_size(size)
        results = page.evaluate(AXE_RUN)["violations"]
        found += [
            f"{name} ({label}): axe {v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
            for v in results
            if v.get("impact") in ("serious", "critical")
        ]
    page.set_viewport_size(PHONE)
    return found


def _sweep(page: Any, server: str, paths: list[str], shot: Any, prefix: str) -> list[str]:
    axe = Axe()
    found: list[str] = []
    seen: set[str] = set()
    for path in paths:
        if path in seen:
            continue
        seen.add(path)
        response = page.goto(server + path)
        status = response.status if response else 0
        if status in (403, 404):
            continue  # this role may not open it
        if status != 200:
            found.append(f"{path}: answered {status}")
            continue
        if page.url.startswith(server + "/account/login/") and path != "/account/login/":
            found.append(f"{path}: sent to the sign-in page")
            continue
        problems = _problems(page, path, axe)
        if problems or SHOTS:
            shot(page, f"sweep-{prefix}-{path.strip('/').replace('/', '-') or 'home'}")
        found += problems
    return found


def _menu(page: Any) -> list[str]:
    hrefs = page.eval_on_selector_all(
        "header.site nav a[href]", "els => els.map(a => a.getAttribute('href'))"
    )
    return [h for h in hrefs if h.startswith("/")]


@pytest.fixture
def phone(small_phone_page: Any) -> Any:
    assert small_phone_page.viewport_size == PHONE
    return small_phone_page


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_staff_pages_fit_a_phone_and_pass_axe(
    role: str, clinic_day: dict[str, Any], phone: Any, server: str, login: Any, shot: Any
) -> None:
    login(phone, f"{role}@sweep.test")
    paths = ["/home/", *_menu(phone), *clinic_day["record"]]
    problems = _sweep(phone, server, paths, shot, role)
    if role == "front_desk":
        # An error summary on a phone: the new-patient form sent empty.
        phone.goto(f"{server}/patients/new/")
        with phone.expect_navigation():
            phone.get_by_role("button", name="Create record").click()
        assert phone.locator(".errorlist").count() > 0
        problems += _problems(phone, "/patients/new/ with errors", Axe())
        # The consent kiosk: staff hand the device to the patient, who sees only the document.
        phone.goto(f"{server}/consent/patients/{clinic_day['newcomer'].pk}/sign/")
        with phone.expect_navigation():
            phone.get_by_role("button", name="Hand the tablet to the patient").click()
        assert urlsplit(phone.url).path == "/consent/kiosk/"
        found = _problems(phone, "/consent/kiosk/", Axe())
        if found:
            shot(phone, "sweep-front_desk-consent-kiosk")
        problems += found
    assert not problems, f"{role} on a 360 px phone:\n" + "\n".join(problems)


def test_patient_pages_fit_a_phone_and_pass_axe(
    clinic_day: dict[str, Any], phone: Any, server: str, login: Any, shot: Any
) -> None:
    login(phone, clinic_day["patient_user"].email)
    phone.goto(f"{server}/portal/")
    paths = [
        "/portal/",
        *_menu(phone),
        "/portal/journal/",
        "/portal/calendar/",
        "/portal/who-opened-my-record/",
        "/measures/my/",
        "/measures/my/safety-plan/",
        "/consent/sign/",
        "/measures/my/take/PHQ-9/",
        "/intake/questionnaire/",
    ]
    problems = _sweep(phone, server, paths, shot, "patient")
    assert not problems, "patient on a 360 px phone:\n" + "\n".join(problems)


def test_public_pages_fit_a_phone_and_pass_axe(
    clinic_day: dict[str, Any], phone: Any, server: str, shot: Any
) -> None:
    clinic = clinic_day["clinic"]
    clinic.is_public = True
    clinic.save(update_fields=["is_public"])
    phone.goto(f"{server}/")
    paths = ["/", *_menu(phone), "/contact/", "/is-kap-right-for-me/", "/account/login/"]
    problems = _sweep(phone, server, paths, shot, "public")
    # The inquiry sent empty: the error summary and the messages beside the fields.
    phone.goto(f"{server}/contact/")
    with phone.expect_navigation():
        phone.get_by_role("button", name="Send").click()
    assert phone.locator(".errorlist.nonfield").is_visible()
    problems += _problems(phone, "/contact/ with errors", Axe())
    # The self-check's result with every question answered (its answers in a definition list).
    phone.goto(f"{server}/is-kap-right-for-me/")
    radios = phone.locator('input[type="radio"][value="0"], input[type="radio"][value="no"]')
    for i in range(radios.count()):
        radios.nth(i).check()
    tried = phone.locator('input[type="checkbox"][name="prior"]')
    for i in range(tried.count()):
        tried.nth(i).check()
    with phone.expect_navigation():
        phone.get_by_role("button", name="See my next step").click()
    assert phone.get_by_role("heading", name="Your next step").is_visible()
    problems += _problems(phone, "self-check result", Axe())
    shot(phone, "sweep-public-self-check-result")
    # The self-check's result after a crisis answer (the crisis resources come first).
    phone.goto(f"{server}/is-kap-right-for-me/")
    form = sc.self_check_form()
    phone.locator(f'input[name="{form.self_harm.key}"]').last.check()
    with phone.expect_navigation():
        phone.get_by_role("button", name="See my next step").click()
    assert phone.get_by_role("heading", name="Please talk to someone now").is_visible()
    problems += _problems(phone, "self-check crisis result", Axe())
    shot(phone, "sweep-public-self-check-crisis")
    assert not problems, "public pages on a 360 px phone:\n" + "\n".join(problems)
