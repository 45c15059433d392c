"""Issue 14: an IV ketamine session ABORTED while its infusion runs. The abort records the infusion's stop
the way the infusion-stop form does (`sessions.services.infusion_stop_record`): what the infusion
delivered (mg, or mL from the pump) with a witness who signs in, the dose line reversed and the amount
infused written anew (`inventory.services.correct_for_partial_infusion`); then what was drawn and not
given (the bag, and any syringe residue) is wasted with the same witness
(`inventory.services.waste_residue` → `waste_for_session`), so the aborted record closes with no drug
unaccounted for. No amount, more than drawn, no witness or the nurse as her own witness: refused with a
sentence, nothing stored. Facts: docs/controlled-substances.md §4, §5, §10."""

from __future__ import annotations

import datetime as dt
import html
from decimal import Decimal
from typing import Any

import pytest

from kapclinic.audit.models import AuditEvent
from kapclinic.clinical.session_state import Event
from kapclinic.core.errors import DomainError
from kapclinic.inventory import services
from kapclinic.inventory.models import Container, LedgerEntry, SessionDraw
from kapclinic.inventory.tests.test_infusion_stopped_early import lines, verify_ok
from kapclinic.sessions import services as session_services
from kapclinic.sessions.models import Administration, DosingSession
from kapclinic.sessions.tests.test_administration import iv_dosing, local
from kapclinic.sessions.tests.test_sessions import url, v
from kapclinic.testing.factories import PASSWORD, actor_for

pytestmark = pytest.mark.django_db


def abort(world: Any, s: DosingSession, **infusion: Any) -> DosingSession:
    """The nurse aborts the session 20 minutes into the 40-minute infusion."""
    assert s.first_dose_at is not None
    return session_services.session_transition(
        actor_for(world.nurse, world.clinic),
        s,
        Event.ABORT,
        expected_version=v(s),
        reason="Patient asked to stop",
        infusion={"stopped_at": s.first_dose_at + dt.timedelta(minutes=20), **infusion},
    )


def nothing_stored(s: DosingSession, ledger_lines: int) -> None:
    assert LedgerEntry.objects.count() == ledger_lines
    assert DosingSession.objects.get(pk=s.pk).state == "dosing"
    admin = Administration.objects.get(session=s)
    assert admin.infusion_stopped_at is None and admin.infused_mg is None
    assert SessionDraw.objects.get(session=s).given == Decimal(35)


def test_abort_mid_infusion_records_what_was_infused_and_wastes_the_rest(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    s = iv_dosing(client, world)  # 35 mg drawn and given at the start (3.5 mL + 100 mL diluent, 40 min)
    draw = SessionDraw.objects.get(session=s)
    c = draw.container_id
    clock_frozen.advance(dt.timedelta(minutes=21))
    before = LedgerEntry.objects.count()
    # bad input: no amount, above the dose, below zero, another unit: refused with a sentence, nothing stored
    for infusion, sentence in (
        (
            {"witness": world.prescriber},
            "Amount infused: the infusion stopped early, so enter what it delivered",
        ),
        (
            {"infused_amount": Decimal(36), "witness": world.prescriber},
            "Amount infused: 36 mg is more than the 35 mg ordered",
        ),
        (
            {"infused_amount": Decimal(-1), "witness": world.prescriber},
            "Amount infused: it cannot be below zero.",
        ),
        (
            {"infused_amount": Decimal(10), "infused_unit": "mcg", "witness": world.prescriber},
            "Amount infused: enter it in mg or in mL of the infusion, not in 'mcg'.",
        ),
        ({"infused_amount": Decimal("17.5")}, "Less than the dose was infused (17.5 of 35 mg)"),
        (
            {"infused_amount": Decimal("17.5"), "witness": world.nurse},
            "The witness must be a different person",
        ),
    ):
        with pytest.raises(DomainError) as exc:
            abort(world, s, **infusion)
        assert any(m.startswith(sentence) for m in exc.value.all_messages), exc.value.all_messages
        nothing_stored(s, before)

    s = abort(world, s, infused_amount=Decimal("17.5"), witness=world.prescriber)
    assert s.state == "aborted" and s.abort_reason == "Patient asked to stop"
    admin = Administration.objects.get(session=s)
    assert admin.infused_mg == Decimal("17.5") and s.first_dose_at is not None
    assert admin.infusion_stop_reason == "Session aborted: Patient asked to stop"
    assert admin.infusion_stopped_at == s.first_dose_at + dt.timedelta(minutes=20)
    # the dose line reversed, the amount infused written anew, the bag's rest wasted: never an edited line
    assert lines(c) == [
        ("receipt", Decimal(500), Decimal(500)),
        ("administration", Decimal(-35), Decimal(465)),
        ("reversal", Decimal(35), Decimal(500)),
        ("administration", Decimal("-17.5"), Decimal("482.5")),
        ("waste", Decimal("-17.5"), Decimal(465)),
    ]
    waste = LedgerEntry.objects.get(container_id=c, kind="waste")
    assert (waste.by_id, waste.witness_id, waste.session_id, waste.patient_id) == (
        world.nurse.pk,
        world.prescriber.pk,
        s.pk,
        world.patient.pk,
    )
    rev = LedgerEntry.objects.get(container_id=c, kind="reversal")
    assert "stopped after 20 of 40 min: 17.5 mg infused of the 35 mg dose" in rev.reason
    draw.refresh_from_db()
    assert (draw.drawn, draw.given) == (Decimal(35), Decimal("17.5"))
    # nothing left unaccounted for: not offered elsewhere, not owed by the aborted record
    assert services.outstanding([c]) == {c: Decimal(0)}
    assert services.discharge_stock_problems(s) == []
    assert Container.objects.get(pk=c).balance == Decimal(465)
    verify_ok()


def test_abort_after_the_full_infusion_time_with_syringe_residue_wastes_it_witnessed(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    """The infusion ran its 40 minutes but its stop was not recorded: no amount is needed (the whole dose
    was given), yet the 5 mg drawn beyond the dose is wasted at the abort, so a witness signs in."""
    from kapclinic.inventory.testing import stock_for_session
    from kapclinic.inventory.tests.test_dosing_draws import iv_ordered

    s = iv_ordered(client, world)
    vial = stock_for_session(s)
    r = client.post(url(s, "start_dosing"), {"version": v(s), "container": vial, "drawn_mg": "40"})
    assert r.status_code == 302, html.unescape(r.content.decode())[:2000]
    s.refresh_from_db()
    assert s.first_dose_at is not None
    clock_frozen.advance(dt.timedelta(minutes=45))
    before = LedgerEntry.objects.count()
    stop_at = s.first_dose_at + dt.timedelta(minutes=40)
    with pytest.raises(DomainError) as exc:
        abort(world, s, stopped_at=stop_at)
    assert exc.value.field_errors["witness_email"] == [
        "What was drawn and not given (5 mg from K-0001) is wasted when the session is aborted: a second "
        "person witnesses it, signed in on this form."
    ]
    assert LedgerEntry.objects.count() == before
    assert DosingSession.objects.get(pk=s.pk).state == "dosing"
    assert Administration.objects.get(session=s).infusion_stopped_at is None
    s = abort(world, s, stopped_at=stop_at, witness=world.prescriber)
    assert s.state == "aborted"
    assert Administration.objects.get(session=s).infused_mg is None  # the whole dose was given
    assert [(k, d) for k, d, _b in lines(vial)][1:] == [
        ("administration", Decimal(-35)),
        ("waste", Decimal(-5)),
    ]
    assert services.discharge_stock_problems(s) == []
    verify_ok()


def test_abort_page_asks_the_amount_and_a_signed_in_witness(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    s = iv_dosing(client, world)  # the nurse is signed in
    assert s.first_dose_at is not None
    clock_frozen.advance(dt.timedelta(minutes=21))
    page = html.unescape(client.get(url(s, "detail")).content.decode())
    assert "The IV infusion is running: aborting records when it stopped and what it delivered" in page
    assert "Witness to the amount infused and the waste of the rest: their email address" in page
    data = {
        "version": v(s),
        "reason": "Patient unwell",
        "stopped_at": local(s.first_dose_at + dt.timedelta(minutes=20)),
        "infused_amount": "51.75",
        "infused_unit": "mL",
        "witness_email": world.prescriber.email,
        "witness_password": "wrong",
    }
    before = LedgerEntry.objects.count()
    denied = AuditEvent.objects.filter(action="denied").count()
    r = client.post(url(s, "abort"), data)
    assert r.status_code == 400 and "sign-in was not accepted" in html.unescape(r.content.decode())
    assert LedgerEntry.objects.count() == before
    assert DosingSession.objects.get(pk=s.pk).state == "dosing"
    assert AuditEvent.objects.filter(action="denied").count() == denied + 1  # the failed witness sign-in
    # no amount: refused on its field with the pump's estimate, nothing stored
    r = client.post(url(s, "abort"), {**data, "infused_amount": "", "witness_password": PASSWORD})
    text = html.unescape(r.content.decode())
    assert r.status_code == 400 and "the infusion stopped early, so enter what it delivered" in text
    assert "about 51.8 mL (17.52 mg)" in text
    assert LedgerEntry.objects.count() == before
    r = client.post(url(s, "abort"), {**data, "witness_password": PASSWORD})
    assert r.status_code == 302, html.unescape(r.content.decode())[:3000]
    assert DosingSession.objects.get(pk=s.pk).state == "aborted"
    assert Administration.objects.get(session=s).infused_mg == Decimal("17.50")  # 51.75 x 35 / 103.5
    assert [e.kind for e in LedgerEntry.objects.filter(session=s).order_by("pk")] == [
        "administration", "reversal", "administration", "waste",
    ]  # fmt: skip
    page = html.unescape(client.get(url(s, "detail")).content.decode())
    assert "17.50 mg of the 35 mg ordered" in page
    assert "Record the waste of" not in page
    verify_ok()


def test_abort_without_a_running_infusion_asks_nothing_more(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    """The stop already recorded (the rest to waste on the page, as before): the abort form is the plain
    one and aborting changes no ledger line."""
    s = iv_dosing(client, world)
    assert s.first_dose_at is not None
    clock_frozen.advance(dt.timedelta(minutes=41))
    session_services.infusion_stop_record(
        actor_for(world.nurse, world.clinic),
        s,
        expected_version=v(s),
        stopped_at=s.first_dose_at + dt.timedelta(minutes=40),
        actual_rate_ml_per_h=None,
    )
    page = html.unescape(client.get(url(s, "detail")).content.decode())
    assert "The IV infusion is running" not in page and "Witness to the amount infused" not in page
    before = LedgerEntry.objects.count()
    r = client.post(url(s, "abort"), {"version": v(s), "reason": "Patient unwell"})
    assert r.status_code == 302
    assert DosingSession.objects.get(pk=s.pk).state == "aborted" and LedgerEntry.objects.count() == before
