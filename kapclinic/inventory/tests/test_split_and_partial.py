"""Issue 14, the remaining points: a dose drawn from two containers of the same strength when the first
holds less than the dose (each container's ledger line written with the administration, each residue
wasted with a witness before discharge; an amount above a container's content refused, nothing stored,
nothing clamped), and a partial esketamine dose (each device's line written as it is used; the devices
taken out and not used returned to stock or disposed of with a witness), `controlled_substances verify`
adding up after each. Facts: docs/controlled-substances.md §10."""

from __future__ import annotations

import datetime as dt
import html
import threading
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from kapclinic.core import clock
from kapclinic.core.errors import DomainError
from kapclinic.inventory import services
from kapclinic.inventory.models import Container, LedgerEntry, SessionDraw
from kapclinic.inventory.testing import make_vial_product, receive, stock_for_session
from kapclinic.inventory.tests.test_dosing_draws import iv_ordered
from kapclinic.sessions.models import Administration, DosingSession
from kapclinic.sessions.tests.test_administration import complete, device
from kapclinic.sessions.tests.test_sessions import make_session, to_predose, url, v
from kapclinic.testing.factories import PASSWORD, actor_for

pytestmark = pytest.mark.django_db


def verify_ok() -> None:
    call_command("controlled_substances", "verify")


def verify_fails(capsys: Any) -> str:
    with pytest.raises(SystemExit) as exc:
        call_command("controlled_substances", "verify")
    assert exc.value.code == 1
    return str(capsys.readouterr().err)


def nearly_empty_vial(world: Any, s: DosingSession, left: int = 20) -> int:
    """A 500 mg vial of the session's stock with only ``left`` mg on its ledger."""
    pk = stock_for_session(s)
    services.record_entry(
        actor_for(world.nurse, world.clinic), pk, kind="administration", amount=500 - left, unit="mg"
    )
    return pk


def body(r: Any) -> str:
    return html.unescape(r.content.decode())


# ---------------------------------------------------------------- a dose from two vials


def test_dose_split_across_two_vials_each_line_with_the_administration(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    s = iv_ordered(client, world)  # 35 mg ordered, double-checked by the nurse; the prescriber gives it
    first = nearly_empty_vial(world, s)  # 20 mg left
    second = stock_for_session(s, lot="LOT-B2")
    page = client.get(url(s, "detail")).content.decode()
    assert "Second container, only when the first holds less than the dose" in page
    assert "K-0001: lot LOT-A1, expires" in page and "20 mg left" in page
    # one container holding less than the dose: refused with a sentence that points to a second one
    r = client.post(url(s, "start_dosing"), {"version": v(s), "container": first})
    assert r.status_code == 400
    assert "K-0001 holds 20 mg; 35 mg cannot be drawn from it. Choose another container, or a second " in (
        body(r)
    )
    assert not SessionDraw.objects.exists() and Administration.objects.get(session=s).administered_at is None
    # both: 20 mg from the first, 17 mg drawn up from the second (2 mg stays in the syringe)
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
    assert r.status_code == 302, body(r)[:2000]
    s.refresh_from_db()
    assert s.state == "dosing"
    admin = Administration.objects.get(session=s)
    assert admin.lot_number == "LOT-A1 + LOT-B2" and admin.administered_at == clock.now()
    a, b = (
        LedgerEntry.objects.get(container_id=pk, kind="administration", session=s) for pk in (first, second)
    )
    assert (a.amount, b.amount) == (Decimal(20), Decimal(15))
    assert a.at == b.at == admin.administered_at and a.witness_id == b.witness_id == world.nurse.pk
    assert Container.objects.get(pk=first).balance == 0
    assert Container.objects.get(pk=second).balance == Decimal(485)
    draws = list(SessionDraw.objects.filter(session=s).order_by("pk"))
    assert [(d.container_id, d.drawn, d.given, d.residue) for d in draws] == [
        (first, Decimal(20), Decimal(20), Decimal(0)),
        (second, Decimal(17), Decimal(15), Decimal(2)),
    ]
    # the residue (from the second vial) is wasted with a witness before discharge
    assert services.discharge_stock_problems(s) == [
        "Controlled substances: 2 mg drawn from K-0002 (lot LOT-B2) was not given and is not recorded as "
        "waste; record the waste with a witness before discharge."
    ]
    page = client.get(url(s, "detail")).content.decode()
    assert "Record the waste of 2 mg from K-0002" in page and page.count('name="waste-draw"') == 1
    r = client.post(
        url(s, "stock_waste"),
        {
            "waste-draw": draws[1].pk,
            "waste-amount_mg": "2",
            "waste-witness_email": world.nurse.email,
            "waste-witness_password": PASSWORD,
        },
    )
    assert r.status_code == 302, body(r)[:2000]
    assert services.discharge_stock_problems(s) == []
    verify_ok()


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"drawn_mg": Decimal(25)}, "K-0001 holds 20 mg; 25 mg cannot be drawn from it."),
        ({"second_drawn_mg": Decimal(10)}, "cannot be less than the dose (35 mg)"),
        ({"drawn_mg": Decimal(35)}, "35 mg from K-0001 covers the dose of 35 mg; leave the second"),
        ({"drawn_mg": None}, "Enter the amount drawn up from K-0001, the first container"),
        ({"second_drawn_mg": Decimal(600)}, "holds 500 mg; 600 mg cannot be drawn from it."),
        ({"second": "same"}, "must be a different container from the first"),
        ({"second": "expired"}, "expired on"),
        ({"second": "weaker"}, "is not the strength of K-0001"),
    ],
)
def test_two_vials_refused_with_a_sentence_and_nothing_stored(
    world: Any, client: Any, clock_frozen: Any, change: dict[str, Any], refusal: str
) -> None:
    s = iv_ordered(client, world)
    first = nearly_empty_vial(world, s)
    second = stock_for_session(s, lot="LOT-B2")
    which = change.pop("second", None)
    if which == "same":
        second = first
    elif which == "expired":
        second = stock_for_session(s, lot="LOT-OLD", expiry=clock.today() - dt.timedelta(days=1))
    elif which == "weaker":
        product = make_vial_product(world.clinic, concentration="10", volume="20")
        registration = Container.objects.get(pk=first).registration
        receipt = receive(world.prescriber, world.clinic, registration, product, lot="LOT-W")
        second = receipt.container_set.get().pk
    args: dict[str, Any] = {"drawn_mg": Decimal(20), "second_drawn_mg": Decimal(17), **change}
    lines = LedgerEntry.objects.count()
    with pytest.raises(DomainError, match=None) as exc:
        services.draw_for_session(
            actor_for(world.prescriber, world.clinic),
            s,
            container_id=first,
            form="vial_iv",
            dose_mg=Decimal(35),
            devices=None,
            second_container_id=second,
            **args,
        )
    assert refusal in str(exc.value)
    assert LedgerEntry.objects.count() == lines and not SessionDraw.objects.exists()
    assert Container.objects.get(pk=first).balance == Decimal(20)


def test_what_another_session_drew_is_not_offered_or_drawn_twice(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    """A syringe's residue not yet wasted is still on the vial's balance but no longer in the vial."""
    s = iv_ordered(client, world)
    vial = nearly_empty_vial(world, s, left=40)
    services.draw_for_session(
        actor_for(world.prescriber, world.clinic),
        s,
        container_id=vial,
        form="vial_iv",
        dose_mg=Decimal(30),
        devices=None,
        drawn_mg=Decimal(36),
    )
    c = Container.objects.get(pk=vial)
    assert c.balance == Decimal(10) and services.outstanding([vial]) == {vial: Decimal(6)}
    offered = {x.pk: x.available for x in services.stock_for_form(world.clinic, "vial_iv")}
    assert offered[vial] == Decimal(4)
    other = make_session(world, "ketamine-iv-racemic", ready=False, phq9=False)
    with pytest.raises(DomainError, match="K-0001 holds 4 mg \\(6 mg of its balance were drawn for another"):
        services.draw_for_session(
            actor_for(world.prescriber, world.clinic),
            other,
            container_id=vial,
            form="vial_iv",
            dose_mg=Decimal(10),
            devices=None,
        )


# ---------------------------------------------------------------- esketamine: devices, packs, partial dose


def esketamine_ordered(client: Any, world: Any, mg: str = "84") -> DosingSession:
    s = make_session(world)
    to_predose(client, world, s)
    client.force_login(world.prescriber)
    assert client.post(url(s, "dose"), {"version": v(s), "fixed_mg": mg}).status_code == 302
    client.force_login(world.nurse)
    return s


def start(client: Any, s: DosingSession, first: int, second: int | None = None) -> Any:
    data: dict[str, Any] = {"version": v(s), "container": first}
    if second is not None:
        data["second_container"] = second
    return client.post(url(s, "start_dosing"), data)


def witnessed(client: Any, s: DosingSession, name: str, prefix: str, who: Any, **data: Any) -> Any:
    return client.post(
        url(s, name),
        {
            **{f"{prefix}-{k}": val for k, val in data.items()},
            f"{prefix}-witness_email": who.email,
            f"{prefix}-witness_password": PASSWORD,
        },
    )


def test_each_device_is_a_ledger_line_as_it_is_used_across_two_packs(
    world: Any, client: Any, clock_frozen: Any, capsys: Any
) -> None:
    s = esketamine_ordered(client, world)  # 84 mg = 3 devices
    pack_a = stock_for_session(s)  # a pack of 3
    services.record_entry(
        actor_for(world.nurse, world.clinic), pack_a, kind="administration", amount=2, unit="devices"
    )
    pack_b = stock_for_session(s, lot="LOT-S2")
    page = client.get(url(s, "detail")).content.decode()
    assert "Second pack, only when the first holds fewer devices than the dose" in page
    r = start(client, s, pack_a)
    assert r.status_code == 400 and "S-0001 holds 1 devices; 3 devices cannot be drawn from it." in body(r)
    assert not SessionDraw.objects.exists()
    r = start(client, s, pack_a, pack_b)
    assert r.status_code == 302, body(r)[:2000]
    draws = list(SessionDraw.objects.filter(session=s).order_by("pk"))
    assert [(d.container_id, d.drawn, d.given, d.entry_id is None) for d in draws] == [
        (pack_a, Decimal(1), Decimal(1), False),
        (pack_b, Decimal(2), Decimal(0), True),
    ]
    assert Container.objects.get(pk=pack_a).balance == 0 and Container.objects.get(pk=pack_b).balance == 3
    # the pack's two devices in hand are not offered to another session
    assert services.outstanding([pack_b]) == {pack_b: Decimal(2)}
    offered = {c.pk: c.available for c in services.stock_for_form(world.clinic, "nasal_device")}
    assert offered == {pack_b: Decimal(1)}
    # devices 2 and 3, each written on pack B's ledger as it is used (one audit event a request)
    for _ in (2, 3):
        clock_frozen.advance(dt.timedelta(minutes=5))
        assert device(client, s, clock.now()).status_code == 302
    lines = list(LedgerEntry.objects.filter(session=s, kind="administration").order_by("container_id", "seq"))
    assert [(e.container_id, e.devices, e.amount_mg) for e in lines] == [
        (pack_a, 1, Decimal(28)),
        (pack_b, 1, Decimal(28)),
        (pack_b, 1, Decimal(28)),
    ]
    assert Container.objects.get(pk=pack_b).balance == 1
    assert complete(client, s).status_code == 302
    # the used devices' disposal, one pack at a time
    assert len([p for p in services.discharge_stock_problems(s) if "used esketamine" in p]) == 2
    for d in draws:
        page = client.get(url(s, "detail")).content.decode()
        assert page.count('name="disp-draw"') == 1
        r = witnessed(client, s, "stock_disposal", "disp", world.prescriber, draw=d.pk)
        assert r.status_code == 302, body(r)[:2000]
    assert services.discharge_stock_problems(s) == []
    verify_ok()
    # verify finds a draw that no longer matches its lines
    SessionDraw.objects.filter(pk=draws[1].pk).update(given=Decimal(1))
    err = verify_fails(capsys)
    assert "the draw gave 1 devices but its administration lines add up to 2" in err and "S-0002" in err


def partial(client: Any, world: Any, clock_frozen: Any) -> tuple[DosingSession, SessionDraw]:
    """An 84 mg esketamine session (3 devices taken out of one pack) stopped after device 2."""
    s = esketamine_ordered(client, world)
    assert start(client, s, stock_for_session(s)).status_code == 302
    clock_frozen.advance(dt.timedelta(minutes=5))
    assert device(client, s, clock.now()).status_code == 302
    draw = SessionDraw.objects.get(session=s)
    assert (draw.drawn, draw.given) == (Decimal(3), Decimal(2))
    # while dosing goes on the third device may still be used: neither returned nor disposed of yet
    with pytest.raises(DomainError, match="Dosing is still going on"):
        services.settle_unused_devices(
            actor_for(world.nurse, world.clinic), s, draw_id=draw.pk, how="return", witness=world.prescriber
        )
    assert complete(client, s, reason="Patient declined the third device").status_code == 302
    return s, draw


def test_partial_dose_unused_device_returned_to_stock(world: Any, client: Any, clock_frozen: Any) -> None:
    s, draw = partial(client, world, clock_frozen)
    c = Container.objects.get(pk=draw.container_id)
    assert c.balance == 1 and services.outstanding([c.pk]) == {c.pk: Decimal(1)}
    problems = services.discharge_stock_problems(s)
    assert (
        "Controlled substances: 1 esketamine device(s) taken from S-0001 (lot LOT-A1) were not used; "
        "return them to stock or record their disposal, with a witness, before discharge."
    ) in problems
    page = client.get(url(s, "detail")).content.decode()
    assert "Record what happened to the 1 unused device from S-0001" in page
    # the witness must be someone else, signed in
    r = witnessed(client, s, "stock_unused", "unused", world.nurse, draw=draw.pk, how="return")
    assert r.status_code == 400 and "different person" in body(r)
    r = witnessed(client, s, "stock_unused", "unused", world.prescriber, draw=draw.pk, how="return")
    assert r.status_code == 302, body(r)[:2000]
    draw.refresh_from_db()
    assert draw.returned == 1 and draw.return_witness_id == world.prescriber.pk
    assert draw.returned_by_id == world.nurse.pk
    c.refresh_from_db()
    assert c.balance == 1 and services.outstanding([c.pk]) == {c.pk: Decimal(0)}
    assert not LedgerEntry.objects.filter(session=s, kind="waste").exists()
    assert [c2.pk for c2 in services.stock_for_form(world.clinic, "nasal_device")] == [c.pk]  # back on offer
    # the two used devices' disposal, then nothing is left to account for
    assert witnessed(client, s, "stock_disposal", "disp", world.prescriber, draw=draw.pk).status_code == 302
    assert services.discharge_stock_problems(s) == []
    r = witnessed(client, s, "stock_unused", "unused", world.prescriber, draw=draw.pk, how="return")
    assert r.status_code == 400 and "is accounted for" in body(r)
    verify_ok()


def test_partial_dose_unused_device_disposed_of_as_witnessed_waste(
    world: Any, client: Any, clock_frozen: Any, capsys: Any
) -> None:
    s, draw = partial(client, world, clock_frozen)
    r = witnessed(client, s, "stock_unused", "unused", world.prescriber, draw=draw.pk, how="dispose")
    assert r.status_code == 302, body(r)[:2000]
    waste = LedgerEntry.objects.get(session=s, kind="waste")
    assert (waste.devices, waste.witness_id, waste.by_id) == (1, world.prescriber.pk, world.nurse.pk)
    assert Container.objects.get(pk=draw.container_id).balance == 0
    assert witnessed(client, s, "stock_disposal", "disp", world.prescriber, draw=draw.pk).status_code == 302
    assert services.discharge_stock_problems(s) == []
    verify_ok()
    # a discharged session whose draw is not accounted for is named by verify
    DosingSession.objects.filter(pk=s.pk).update(state="discharged")
    SessionDraw.objects.filter(pk=draw.pk).update(drawn=Decimal(4))
    err = verify_fails(capsys)
    assert "(discharged): 4 devices drawn but 3 given, wasted or returned" in err


def test_session_stopped_during_dosing_its_devices_still_accounted_for(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    """Aborted after the first device: the two devices taken out and not used are disposed of with a
    witness (an aborted session is never discharged, so the page still offers it), and verify adds up."""
    s = esketamine_ordered(client, world)
    assert start(client, s, stock_for_session(s)).status_code == 302
    r = client.post(url(s, "abort"), {"version": v(s), "reason": "Patient unwell"})
    assert r.status_code == 302, body(r)[:2000]
    s.refresh_from_db()
    assert s.state == "aborted"
    draw = SessionDraw.objects.get(session=s)
    page = client.get(url(s, "detail")).content.decode()
    assert "Record what happened to the 2 unused devices from S-0001" in page
    r = witnessed(client, s, "stock_unused", "unused", world.prescriber, draw=draw.pk, how="dispose")
    assert r.status_code == 302, body(r)[:2000]
    assert LedgerEntry.objects.get(session=s, kind="waste").devices == 2
    assert Container.objects.get(pk=draw.container_id).balance == 0
    verify_ok()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_two_sessions_taking_the_same_pack_at_once_never_share_a_device(world: Any) -> None:
    """Both sessions want the pack's 3 devices: the first takes them (1 used, 2 in hand), the second is
    refused with a sentence, whatever the order the row lock lets them in."""
    from kapclinic.inventory.testing import make_device_product

    pack = receive(world.prescriber, world.clinic, product=make_device_product(world.clinic, 3))
    pk = pack.container_set.get().pk
    sessions = [
        DosingSession.objects.create(
            clinic=world.clinic,
            patient=p,
            protocol_id="esketamine-in-trd",
            protocol_version="1.0.0",
            scheduled_for=clock.now(),
            created_by=world.prescriber,
        )
        for p in (world.patient, world.other_patient)
    ]
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def take(s: DosingSession, user: Any) -> None:
        try:
            barrier.wait()
            outcomes.append(
                services.draw_for_session(
                    actor_for(user, world.clinic),
                    s,
                    container_id=pk,
                    form="nasal_device",
                    dose_mg=None,
                    devices=3,
                )
            )
        except Exception as exc:
            outcomes.append(exc)
        finally:
            connection.close()

    users = (world.nurse, world.prescriber)
    threads = [threading.Thread(target=take, args=(s, u)) for s, u in zip(sessions, users, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refused = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(refused) == 1 and len(outcomes) == 2, outcomes
    assert "S-0001 holds 0 devices (2 devices of its balance were drawn for another session" in str(
        refused[0]
    )
    assert SessionDraw.objects.count() == 1 and Container.objects.get(pk=pk).balance == 2
    assert services.outstanding([pk]) == {pk: Decimal(2)}
