"""Issue #18: the idle sign-out is announced before it happens, "Stay signed in" keeps the session, asking
how long is left does not, and signing back in returns to the page the person was on (safely)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.http import HttpResponseBase
from django.test import override_settings

from kapclinic.accounts.middleware import SESSION_LAST_SEEN, _last_seen_cookie_name
from kapclinic.testing.factories import PASSWORD


def _age(client: Any, seconds: float) -> None:
    """Make the last activity `seconds` ago: the session's record says so and the signed last-seen
    cookie (which the middleware prefers when it is newer) is dropped."""
    client.cookies.pop(_last_seen_cookie_name(), None)
    session = client.session
    session[SESSION_LAST_SEEN] = time.time() - seconds
    session.save()


def _next(response: HttpResponseBase) -> str:
    return parse_qs(urlsplit(response["Location"]).query)["next"][0]


@override_settings(STAFF_IDLE_TIMEOUT_MINUTES=15)
def test_staff_pages_carry_the_seconds_left_and_the_warning(world: Any, client: Any) -> None:
    client.force_login(world.nurse)
    client.get("/patients/")
    _age(client, 30)
    html = client.get("/patients/").content.decode()  # opening a page is activity: the full timeout
    left = int(html.split('data-idle-left="')[1].split('"')[0])
    assert 15 * 60 - 2 <= left <= 15 * 60
    assert 'data-idle-limit="900"' in html and "data-idle-warning" in html and "Stay signed in" in html


def test_patients_get_no_idle_warning(world: Any, client: Any) -> None:
    client.force_login(world.patient_user)
    html = client.get("/portal/").content.decode()
    assert "data-idle-left" not in html and "data-idle-warning" not in html
    assert "data-connection-state" in html  # the connection state is announced everywhere


@override_settings(STAFF_IDLE_TIMEOUT_MINUTES=15)
def test_asking_how_long_is_left_is_not_activity(world: Any, client: Any) -> None:
    client.force_login(world.nurse)
    client.get("/patients/")
    _age(client, 10 * 60)
    for _ in range(3):
        answer = client.get("/account/session/").json()
        assert answer["signed_in"] is True and 4 * 60 < answer["seconds_left"] <= 5 * 60
    assert time.time() - client.session[SESSION_LAST_SEEN] >= 10 * 60 - 1  # the poll moved nothing
    _age(client, 16 * 60)
    assert client.get("/account/session/").status_code == 302  # expired: signed out like any page
    assert client.get("/account/session/").json() == {"signed_in": False, "seconds_left": None}


@override_settings(STAFF_IDLE_TIMEOUT_MINUTES=15)
def test_stay_signed_in_counts_as_activity(world: Any, client: Any) -> None:
    client.force_login(world.nurse)
    client.get("/patients/")
    _age(client, 14 * 60)
    answer = client.post("/account/session/stay/").json()
    assert answer["signed_in"] is True and answer["seconds_left"] >= 15 * 60 - 2
    _age(client, 14 * 60 + 30)  # 14.5 minutes after pressing it: still signed in
    assert client.get("/patients/").status_code == 200
    assert client.get("/account/session/stay/").status_code == 405


def test_stay_signed_in_when_already_signed_out_says_so(db: Any, client: Any) -> None:
    assert client.post("/account/session/stay/").status_code == 401


@override_settings(STAFF_IDLE_TIMEOUT_MINUTES=15)
def test_idle_sign_out_returns_to_the_page_with_its_query(world: Any, client: Any) -> None:
    client.force_login(world.nurse)
    client.get("/patients/")
    _age(client, 16 * 60)
    response = client.get("/patients/?q=Robin&page=2")
    assert _next(response) == "/patients/?q=Robin&page=2"


@override_settings(STAFF_IDLE_TIMEOUT_MINUTES=15)
def test_idle_sign_out_met_by_a_background_request_returns_to_its_page(world: Any, client: Any) -> None:
    """Before: an htmx save sent the person back to the save's own address (a POST-only URL: 405)."""
    client.force_login(world.nurse)
    client.get("/patients/")
    _age(client, 16 * 60)
    response = client.post(
        "/sessions/patient/1/2/vitals/",
        {"sbp": "120"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/sessions/patient/1/2/",
    )
    assert _next(response) == "/sessions/patient/1/2/"


@override_settings(STAFF_IDLE_TIMEOUT_MINUTES=15)
def test_idle_sign_out_never_returns_off_site(world: Any, client: Any) -> None:
    client.force_login(world.nurse)
    client.get("/patients/")
    _age(client, 16 * 60)
    response = client.get("/patients/", HTTP_HX_CURRENT_URL="https://evil.example//evil.example/x")
    assert _next(response) == "/home/"


def test_sign_in_goes_to_next_on_this_site_only(world: Any, client: Any) -> None:
    response = client.post(
        "/account/login/", {"username": world.nurse.email, "password": PASSWORD, "next": "/patients/"}
    )
    assert response.status_code == 302 and response["Location"] == "/patients/"
    client.logout()
    response = client.post(
        "/account/login/",
        {"username": world.nurse.email, "password": PASSWORD, "next": "https://evil.example/phish"},
    )
    assert response.status_code == 302 and "evil.example" not in response["Location"]


def test_sign_in_page_keeps_next_in_its_form(db: Any, client: Any) -> None:
    html = client.get("/account/login/?next=/intake/patients/3/assessment/").content.decode()
    assert 'name="next" value="/intake/patients/3/assessment/"' in html


@override_settings(STAFF_IDLE_TIMEOUT_MINUTES=15)
def test_a_draft_save_is_activity(world: Any, client: Any) -> None:
    """Typing in a long form for 15 minutes without a request used to end in a sign-out on Save: the
    form's draft saves now tell the server someone is there."""
    client.force_login(world.prescriber)
    client.get("/patients/")
    _age(client, 14 * 60)
    url = f"/drafts/intake.assessment/{world.patient.pk}/"
    draft = '{"data": {"prior_treatment_notes": "x"}}'
    assert client.post(url, draft, content_type="application/json").status_code == 200
    assert time.time() - client.session[SESSION_LAST_SEEN] < 5
