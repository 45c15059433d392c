"""Issue 14: an IV ketamine infusion stopped early. What the infusion delivered (entered by the nurse in
mg, or in mL of the infusion from the pump) becomes the administered amount: the dose line written when
dosing started is reversed by a witnessed reversal and a new administration line is written for the
amount infused (ledger lines are never edited); the rest in the bag is the draw's residue, wasted with a
witness before discharge. An amount above the dose, below zero or in another unit is refused with a
sentence and nothing is stored. `controlled_substances verify` adds up after each step.
Facts: docs/controlled-substances.md §4, §5, §10."""

from __future__ import annotations

import datetime as dt
import html
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from kapclinic.core import clock
from kapclinic.core.errors import DomainError
from kapclinic.interop.fhir import administration_given_mg
from kapclinic.inventory import services
from kapclinic.inventory.models import Container, LedgerEntry, SessionDraw
from kapclinic.inventory.tests.test_split_and_partial import nearly_empty_vial
from kapclinic.sessions import services as session_services
from kapclinic.sessions.models import Administration, DosingSession
from kapclinic.sessions.tests.test_administration import iv_dosing, local
from kapclinic.sessions.tests.test_sessions import url, v
from kapclinic.testing.factories import PASSWORD, actor_for

pytestmark = pytest.mark.django_db


def verify_ok() -> None:
    call_command("controlled_substances", "verify", stdout=StringIO())


def stop_early(world: Any, s: DosingSession, **kw: Any) -> Administration:
    """The nurse records the stop 20 minutes into the 40-minute infusion."""
    assert s.first_dose_at is not None
    return session_services.infusion_stop_record(
        actor_for(world.nurse, world.clinic),
        s,
        expected_version=v(s),
        stopped_at=s.first_dose_at + dt.timedelta(minutes=20),
        actual_rate_ml_per_h=None,
        early_stop_reason="Dissociation too strong",
        **kw,
    )


def lines(container_pk: int) -> list[tuple[str, Decimal, Decimal]]:
    return [
        (e.kind, e.delta, e.balance_after)
        for e in LedgerEntry.objects.filter(container_id=container_pk).order_by("seq")
    ]


def nothing_stored(s: DosingSession, ledger_lines: int) -> None:
    assert LedgerEntry.objects.count() == ledger_lines
    admin = Administration.objects.get(session=s)
    assert admin.infusion_stopped_at is None and admin.infused_mg is None
    assert SessionDraw.objects.get(session=s).given == Decimal(35)


def test_stopped_early_the_ledger_records_what_was_infused_and_the_bag_residue_is_wasted(
    world: Any, client: Any, clock_frozen: Any, tmp_path: Any
) -> None:
    s = iv_dosing(client, world)  # 35 mg (3.5 mL + 100 mL diluent over 40 min at 155.3 mL/h)
    draw = SessionDraw.objects.get(session=s)
    c = draw.container_id
    clock_frozen.advance(dt.timedelta(minutes=21))
    before = LedgerEntry.objects.count()
    # stopped early from stock without the amount infused: refused, with the pump's estimate
    with pytest.raises(DomainError) as exc:
        stop_early(world, s, witness=world.prescriber)
    text = " ".join(exc.value.all_messages)
    assert "the infusion stopped early, so enter what it delivered" in text
    assert "At 155.3 mL/h for 20 min the pump would have delivered about 51.8 mL (17.52 mg)." in text
    nothing_stored(s, before)
    # bad input: above the dose, below zero, another unit, more mL than the bag: refused, nothing stored
    for amount, unit, sentence in (
        ("36", "mg", "Amount infused: 36 mg is more than the 35 mg ordered"),
        ("-1", "mg", "Amount infused: it cannot be below zero."),
        ("10", "mcg", "Amount infused: enter it in mg or in mL of the infusion, not in 'mcg'."),
        ("104", "mL", "Amount infused: 104 mL of the 103.5 mL infusion = 35.17 mg is more than the 35 mg"),
    ):
        with pytest.raises(DomainError) as exc:
            stop_early(world, s, infused_amount=Decimal(amount), infused_unit=unit, witness=world.prescriber)
        assert any(m.startswith(sentence) for m in exc.value.all_messages), exc.value.all_messages
        assert exc.value.field_errors.get("infused_amount"), exc.value.field_errors
        nothing_stored(s, before)
    # the correction is witnessed: no witness, or the nurse herself, refused
    with pytest.raises(DomainError, match="needs a second person as witness"):
        stop_early(world, s, infused_amount=Decimal("17.5"))
    nothing_stored(s, before)
    with pytest.raises(DomainError, match="witness must be a different person"):
        stop_early(world, s, infused_amount=Decimal("17.5"), witness=world.nurse)
    nothing_stored(s, before)

    admin = stop_early(world, s, infused_amount=Decimal("17.5"), witness=world.prescriber)
    assert admin.infused_mg == Decimal("17.5") and admin.infusion_stop_reason == "Dissociation too strong"
    assert administration_given_mg(admin) == Decimal("17.5")  # the dose given, as FHIR exports it
    # receipt, the dose at the start, its reversal, the amount infused: never an edited line
    assert lines(c) == [
        ("receipt", Decimal(500), Decimal(500)),
        ("administration", Decimal(-35), Decimal(465)),
        ("reversal", Decimal(35), Decimal(500)),
        ("administration", Decimal("-17.5"), Decimal("482.5")),
    ]
    rev, new = LedgerEntry.objects.filter(container_id=c).order_by("seq")[2:]
    first = LedgerEntry.objects.get(container_id=c, seq=2)
    assert rev.reverses_id == first.pk and rev.witness_id == world.prescriber.pk
    assert rev.by_id == world.nurse.pk and "stopped after 20 of 40 min: 17.5 mg infused" in rev.reason
    assert (new.session_id, new.patient_id, new.route, new.witness_id) == (
        s.pk,
        world.patient.pk,
        first.route,
        world.prescriber.pk,
    )
    draw.refresh_from_db()
    assert draw.given == Decimal("17.5") and draw.entry_id == new.pk and draw.residue == Decimal("17.5")
    assert Container.objects.get(pk=c).balance == Decimal("482.5")
    verify_ok()
    # what stayed in the bag is not offered to another session and blocks discharge until wasted
    assert services.outstanding([c]) == {c: Decimal("17.5")}
    problems = services.discharge_stock_problems(s)
    assert problems == [
        "Controlled substances: 17.5 mg drawn from K-0001 (lot LOT-A1) was not given and is not recorded "
        "as waste; record the waste with a witness before discharge."
    ]
    DosingSession.objects.filter(pk=s.pk).update(state="recovery")
    with pytest.raises(DomainError) as exc:
        session_services.session_discharge(
            actor_for(world.nurse, world.clinic),
            s,
            expected_version=v(s),
            escort_present=True,
            no_driving=True,
            signed=True,
            ready_to_leave_minutes=None,
            note="",
        )
    assert problems[0] in exc.value.all_messages
    assert DosingSession.objects.get(pk=s.pk).state == "recovery"
    # more than the bag holds cannot be wasted; the bag's 17.5 mg, witnessed, can
    nurse = actor_for(world.nurse, world.clinic)
    with pytest.raises(DomainError, match=r"Only 17\.5 mg drawn from K-0001"):
        services.waste_for_session(nurse, s, draw_id=draw.pk, amount_mg=Decimal(18), witness=world.prescriber)
    services.waste_for_session(
        nurse, s, draw_id=draw.pk, amount_mg=Decimal("17.5"), witness=world.prescriber, reason="Left in bag"
    )
    assert services.discharge_stock_problems(s) == []
    assert Container.objects.get(pk=c).balance == Decimal(465)  # 35 mg out: 17.5 given, 17.5 wasted
    DosingSession.objects.filter(pk=s.pk).update(state="discharged", discharged_at=clock.now())
    verify_ok()  # after discharge: drawn (35) = given (17.5) + wasted (17.5)
    # the administration log shows the dose line, its reversal, the amount infused and the waste
    out = tmp_path / "log.csv"
    reg = Container.objects.get(pk=c).registration.dea_number
    day = clock.today().isoformat()
    call_command(
        "controlled_substances",
        "report",
        "--registration",
        reg,
        "--from",
        day,
        "--to",
        day,
        "--output",
        str(out),
        stdout=StringIO(),
    )
    rows = [r.split(",") for r in out.read_text().strip().splitlines()[1:]]
    assert [(r[2].split(" (")[-1] if "(" in r[2] else "", r[5]) for r in rows] == [
        ("", "35"),
        ("reversal: back on the balance)", "35"),
        ("", "17.5"),
        ("waste)", "17.5"),
    ]


def test_full_length_infusion_needs_no_amount_and_changes_no_line(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    s = iv_dosing(client, world)
    assert s.first_dose_at is not None
    clock_frozen.advance(dt.timedelta(minutes=41))
    before = LedgerEntry.objects.count()
    admin = session_services.infusion_stop_record(
        actor_for(world.nurse, world.clinic),
        s,
        expected_version=v(s),
        stopped_at=s.first_dose_at + dt.timedelta(minutes=40),
        actual_rate_ml_per_h=None,
    )
    assert admin.infused_mg is None and LedgerEntry.objects.count() == before
    assert SessionDraw.objects.get(session=s).given == Decimal(35)
    assert services.discharge_stock_problems(s) == []


def test_stopped_early_from_two_vials_counts_the_first_vial_first(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    from kapclinic.inventory.testing import stock_for_session
    from kapclinic.inventory.tests.test_dosing_draws import iv_ordered

    s = iv_ordered(client, world)  # 35 mg, double-checked by the nurse; the prescriber gives it
    first = nearly_empty_vial(world, s)  # 20 mg left
    second = stock_for_session(s, lot="LOT-B2")
    r = client.post(
        url(s, "start_dosing"),
        {
            "version": v(s),
            "container": first,
            "drawn_mg": "20",
            "second_container": second,
            "second_drawn_mg": "17",
        },
    )
    assert r.status_code == 302, html.unescape(r.content.decode())[:2000]
    s.refresh_from_db()
    clock_frozen.advance(dt.timedelta(minutes=21))
    stop_early(world, s, infused_amount=Decimal(10), witness=world.prescriber)
    assert [k for k, _d, _b in lines(first)][-3:] == ["administration", "reversal", "administration"]
    assert lines(first)[-1] == ("administration", Decimal(-10), Decimal(10))
    assert lines(second)[-2:] == [
        ("administration", Decimal(-15), Decimal(485)),
        ("reversal", Decimal(15), Decimal(500)),
    ]
    d1, d2 = SessionDraw.objects.filter(session=s).order_by("pk")
    assert (d1.given, d1.residue, d2.given, d2.residue, d2.entry_id) == (
        Decimal(10),
        Decimal(10),
        Decimal(0),
        Decimal(17),
        None,
    )
    verify_ok()
    nurse = actor_for(world.nurse, world.clinic)
    for d in (d1, d2):
        services.waste_for_session(nurse, s, draw_id=d.pk, amount_mg=d.residue, witness=world.prescriber)
    assert services.discharge_stock_problems(s) == []
    DosingSession.objects.filter(pk=s.pk).update(state="discharged", discharged_at=clock.now())
    verify_ok()


def test_stop_page_takes_ml_from_the_pump_and_a_signed_in_witness(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    s = iv_dosing(client, world)  # the nurse is signed in
    assert s.first_dose_at is not None
    clock_frozen.advance(dt.timedelta(minutes=21))
    data = {
        "inf-version": v(s),
        "inf-stopped_at": local(s.first_dose_at + dt.timedelta(minutes=20)),
        "inf-early_stop_reason": "Nausea",
        "inf-infused_amount": "51.75",
        "inf-infused_unit": "mL",
        "inf-witness_email": world.prescriber.email,
        "inf-witness_password": "wrong",
    }
    before = LedgerEntry.objects.count()
    r = client.post(url(s, "infusion_stop"), data)
    assert r.status_code == 400 and "sign-in was not accepted" in html.unescape(r.content.decode())
    assert LedgerEntry.objects.count() == before
    assert Administration.objects.get(session=s).infusion_stopped_at is None
    r = client.post(url(s, "infusion_stop"), {**data, "inf-witness_password": PASSWORD})
    assert r.status_code == 302, html.unescape(r.content.decode())[:3000]
    assert Administration.objects.get(session=s).infused_mg == Decimal("17.50")  # 51.75 x 35 / 103.5
    rev = LedgerEntry.objects.get(kind="reversal")
    assert "51.75 mL of the 103.5 mL infusion = 17.5 mg infused of the 35 mg dose" in rev.reason
    page = html.unescape(client.get(url(s, "detail")).content.decode())
    assert "17.50 mg of the 35 mg ordered" in page
    assert "Record the waste of 17.5 mg from K-0001" in page
    verify_ok()
