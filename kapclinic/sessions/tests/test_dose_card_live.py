"""Issue 18, the dose hand-off live: the dose card refreshes itself (htmx, every DOSE_CARD_POLL_SECONDS)
while it offers its reader nothing to type into (waiting for the order, for the double-check, for the
colleague who gives it), and stops once it shows a form or the session has moved on. The refresh is not
activity for the idle sign-out (its element is named "poll") and costs a constant number of queries.
The sessions list names each session's protocol, not its id."""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal
from typing import Any

import pytest
from django.test import override_settings
from django.urls import reverse

from kapclinic.core import clock
from kapclinic.inventory.testing import stock_for_session
from kapclinic.sessions import services, views
from kapclinic.sessions.models import Administration, DosingSession, SupersededDoseOrder
from kapclinic.testing.factories import actor_for, make_staff

pytestmark = pytest.mark.django_db

IV = "ketamine-iv-racemic"
POLL = f'hx-trigger="every {views.DOSE_CARD_POLL_SECONDS}s"'


def waiting(world: Any, protocol_id: str = IV) -> DosingSession:
    """A session whose pre-dose checks passed, with no dose ordered yet."""
    now = clock.now()
    return DosingSession.objects.create(
        clinic=world.clinic, patient=world.patient, protocol_id=protocol_id, protocol_version="1.0.0",
        scheduled_for=now, created_by=world.prescriber, state="predose_passed",
        checked_in_at=now - dt.timedelta(minutes=30), predose_passed_at=now,
    )  # fmt: skip


def order(world: Any, s: DosingSession) -> Administration:
    return Administration.objects.create(
        session=s, product="Ketamine", route="IV", dose_mg=Decimal("35"), ordered_by=world.prescriber,
        ordered_at=clock.now(),
    )  # fmt: skip


def typed(body: str) -> list[str]:
    """The fields of the card one types into (not the forms' hidden CSRF token and version)."""
    return re.findall(r'<(?:input(?![^>]*type="hidden")|textarea|select)\b', body)


def card_url(s: DosingSession) -> str:
    return reverse("sessions:dose_card", kwargs={"patient_id": s.patient_id, "session_id": s.pk})


def detail_url(s: DosingSession) -> str:
    return reverse("sessions:detail", kwargs={"patient_id": s.patient_id, "session_id": s.pk})


def card(client: Any, s: DosingSession) -> str:
    r = client.get(card_url(s), HTTP_HX_REQUEST="true", HTTP_HX_TRIGGER_NAME="poll")
    assert r.status_code == 200
    return html.unescape(r.content.decode())


def test_the_card_refreshes_while_waiting_and_stops_at_a_form(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    s = waiting(world)
    client.force_login(world.nurse)
    page = html.unescape(client.get(detail_url(s)).content.decode())
    assert "Waiting for the prescriber's order." in page
    assert f'name="poll" hx-get="{card_url(s)}" {POLL}' in page
    body = card(client, s)
    assert body.lstrip().startswith('<section class="card" id="dose-card"')
    assert "Waiting for the prescriber's order." in body and POLL in body
    assert not typed(body)  # nothing to type into while it refreshes
    # The prescriber has the order form: her card never refreshes under her typing.
    client.force_login(world.prescriber)
    assert POLL not in card(client, s) and POLL not in client.get(detail_url(s)).content.decode()

    # The order arrives: the nurse's next refresh shows it; the dose waits for the double-check, which
    # she may give (a button) but nothing to type yet: "Start dosing" waits for the double-check.
    order(world, s)
    client.force_login(world.nurse)
    body = card(client, s)
    assert "Dose ordered: waiting for the double-check." in body
    assert "I have independently double-checked this dose" in body
    assert "Start dosing now" not in body and "once a second staff member has double-checked" in body
    assert POLL in body and not typed(body)

    # She double-checks: she waits for the colleague who gives it (still refreshing).
    services.dose_double_check(actor_for(world.nurse, world.clinic), s)
    body = card(client, s)
    assert "You double-checked this dose, so another staff member must give it." in body
    assert POLL in body and 'id="withdraw-double-check"' in body  # focus is kept across refreshes

    # A colleague's card offers "Start dosing" (the container the dose is drawn from, issue 14): no
    # refresh under her typing.
    vial = stock_for_session(s)
    second = make_staff(world.clinic, "nurse", name="Second Nurse")
    client.force_login(second)
    body = card(client, s)
    assert "Start dosing now" in body and POLL not in body
    assert "Container the dose is drawn from" in body and "Lot number" not in body
    s.refresh_from_db()
    services.dosing_start_from_stock(
        actor_for(second, world.clinic), s, expected_version=s.version, container_id=vial
    )

    # The session moved on: the first nurse's card says so, links to the page, and stops refreshing.
    client.force_login(world.nurse)
    body = card(client, s)
    assert "This session has moved on since the page was opened: dosing has started." in body
    assert detail_url(s) in body and "hx-get" not in body


def test_esketamine_no_double_check_the_nurse_card_stops_once_ordered(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    s = waiting(world, "esketamine-in-trd")
    stock_for_session(s)  # the clinic has a pack to draw from (issue 14)
    client.force_login(world.nurse)
    assert POLL in card(client, s)
    Administration.objects.create(
        session=s, product="Esketamine", route="IN", dose_mg=Decimal("56"), devices=2,
        ordered_by=world.prescriber, ordered_at=clock.now(),
    )  # fmt: skip
    body = card(client, s)
    assert "Start dosing now" in body and POLL not in body


@override_settings(STAFF_IDLE_TIMEOUT_MINUTES=1)
def test_the_refresh_is_not_activity(world: Any, client: Any, clock_frozen: Any) -> None:
    s = waiting(world)
    client.force_login(world.nurse)
    assert client.get(detail_url(s)).status_code == 200  # activity
    for _ in range(4):  # 48 s of refreshes only
        clock.advance(dt.timedelta(seconds=12))
        assert client.get(card_url(s), HTTP_HX_REQUEST="true", HTTP_HX_TRIGGER_NAME="poll").status_code == 200
    clock.advance(dt.timedelta(seconds=13))  # 61 s since the page was opened
    r = client.get(card_url(s), HTTP_HX_REQUEST="true", HTTP_HX_TRIGGER_NAME="poll")
    assert r.status_code == 302 and reverse("accounts:login") in r["Location"]


def test_the_monitor_status_poll_is_named_poll(world: Any, client: Any, clock_frozen: Any) -> None:
    s = waiting(world)
    DosingSession.objects.filter(pk=s.pk).update(state="monitoring", first_dose_at=clock.now())
    client.force_login(world.nurse)
    page = client.get(detail_url(s)).content.decode()
    assert '<div id="monitor-status" name="poll" hx-get=' in page


# The card as the nurse: session, user, membership; the patient; the audit entry (savepoint, chain head,
# insert, head update, release: 5); the session; the clinic's protocol settings; the administration (with
# its people); the superseded orders. The same with none and with several superseded orders. (The
# clinic's stock is looked up only on a card that offers "Start dosing", which does not refresh.)
CARD_QUERIES = 13


@pytest.mark.parametrize("superseded", [0, 3])
def test_the_card_costs_a_constant_number_of_queries(
    world: Any, client: Any, clock_frozen: Any, django_assert_num_queries: Any, superseded: int
) -> None:
    s = waiting(world)
    order(world, s)
    for i in range(superseded):
        SupersededDoseOrder.objects.create(
            session=s, order={"dose_mg": str(30 + i)}, ordered_by=world.prescriber, ordered_at=clock.now(),
            superseded_by=world.prescriber, superseded_at=clock.now(), reason="Weight re-measured",
        )  # fmt: skip
    client.force_login(world.nurse)
    client.get(detail_url(s))
    with django_assert_num_queries(CARD_QUERIES):
        body = card(client, s)
    assert body.count("Weight re-measured") == superseded


def test_sessions_list_names_the_protocol(
    world: Any, client: Any, clock_frozen: Any, django_assert_max_num_queries: Any
) -> None:
    s = waiting(world)
    DosingSession.objects.create(
        clinic=world.clinic, patient=world.patient, protocol_id="esketamine-in-trd", protocol_version="1.1.0",
        scheduled_for=clock.now() - dt.timedelta(days=3), created_by=world.prescriber,
    )  # fmt: skip
    client.force_login(world.nurse)
    with django_assert_max_num_queries(22):
        body = html.unescape(client.get(reverse("sessions:index")).content.decode())
    from kapclinic.clinical.protocols import get_protocol

    assert f'{get_protocol(IV, "1.0.0").title} <small class="muted">v1.0.0</small>' in body  # today
    assert f'{get_protocol("esketamine-in-trd", "1.1.0").title} <small class="muted">v1.1.0</small>' in body
    assert IV not in body and "esketamine-in-trd" not in body
    assert s.protocol_id == IV
