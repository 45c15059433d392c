"""Dosing draws from stock (issue 14): the container is chosen when dosing starts and its ledger line
(the dose given) is written with the administration, linked to the session and patient; what was drawn
but not given is wasted with a witness who signs in on the form, and discharge waits for it; the
esketamine devices' disposal is recorded; a failed witness sign-in changes nothing and is audited."""

from __future__ import annotations

import html
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from kapclinic.audit.models import AuditEvent
from kapclinic.core.errors import DomainError
from kapclinic.inventory import services
from kapclinic.inventory.models import Container, LedgerEntry, SessionDraw
from kapclinic.inventory.testing import stock_for_session
from kapclinic.sessions.models import Administration, DosingSession
from kapclinic.sessions.tests.test_sessions import make_session, to_predose, url, v
from kapclinic.testing.factories import PASSWORD, make_clinic, make_staff

pytestmark = pytest.mark.django_db


def iv_ordered(client: Any, world: Any) -> DosingSession:
    """An IV session with its dose (35 mg) ordered by the prescriber and double-checked by the nurse."""
    s = make_session(world, "ketamine-iv-racemic")
    to_predose(client, world, s)
    client.force_login(world.prescriber)
    r = client.post(
        url(s, "dose"), {"version": v(s), "mg_per_kg": "0.5", "concentration": "10", "diluent_ml": "100"}
    )
    assert r.status_code == 302
    client.force_login(world.nurse)
    client.post(url(s, "double_check"))
    client.force_login(world.prescriber)
    return s


def waste(
    client: Any, s: DosingSession, amount: str, who: Any, password: str = PASSWORD, **extra: Any
) -> Any:
    draw = SessionDraw.objects.get(session=s)
    return client.post(
        url(s, "stock_waste"),
        {
            "waste-draw": draw.pk,
            "waste-amount_mg": amount,
            "waste-witness_email": who.email,
            "waste-witness_password": password,
            **extra,
        },
    )


def test_no_stock_is_a_clear_refusal_linking_to_inventory(world: Any, client: Any, clock_frozen: Any) -> None:
    s = iv_ordered(client, world)
    page = client.get(url(s, "detail")).content.decode()
    assert "no ketamine vials on hand" in page and f'href="{reverse("inventory:index")}"' in page
    r = client.post(url(s, "start_dosing"), {"version": v(s)})
    assert (
        r.status_code == 400 and "has no vial (mg/ml)s on hand" in html.unescape(r.content.decode()).lower()
    )
    s.refresh_from_db()
    assert s.state == "predose_passed" and not LedgerEntry.objects.filter(kind="administration").exists()


def test_dose_drawn_from_the_chosen_vial_then_residue_wasted_before_discharge(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    s = iv_ordered(client, world)
    first = stock_for_session(s)
    second = stock_for_session(s, containers=1, expiry=clock_frozen.now().date().replace(year=2099))
    page = client.get(url(s, "detail")).content.decode()
    # both containers offered with lot and expiry, the earliest expiry first
    assert page.index("K-0001: lot LOT-A1") < page.index("K-0002: lot LOT-A1")
    # less drawn than the dose: refused, nothing stored
    r = client.post(url(s, "start_dosing"), {"version": v(s), "container": second, "drawn_mg": "30"})
    assert r.status_code == 400 and "cannot be less than the dose" in r.content.decode()
    assert not SessionDraw.objects.exists() and Administration.objects.get(session=s).administered_at is None
    r = client.post(url(s, "start_dosing"), {"version": v(s), "container": second, "drawn_mg": "40"})
    assert r.status_code == 302, html.unescape(r.content.decode())[:2000]
    s.refresh_from_db()
    admin = Administration.objects.get(session=s)
    c = Container.objects.get(pk=second)
    assert admin.lot_number == c.lot and admin.expiry_date == c.expiry
    line = LedgerEntry.objects.get(container=c, kind="administration")
    assert line.session_id == s.pk and line.patient_id == world.patient.pk and line.amount == Decimal(35)
    assert line.by_id == world.prescriber.pk and line.witness_id == world.nurse.pk  # the double-checker
    assert c.balance == Decimal(465) and Container.objects.get(pk=first).balance == Decimal(500)
    draw = SessionDraw.objects.get(session=s)
    assert draw.entry_id == line.pk and draw.residue == Decimal(5)
    # 5 mg drawn, not given: discharge is refused with a sentence until it is wasted
    assert services.discharge_stock_problems(s) == [
        "Controlled substances: 5 mg drawn from K-0002 (lot LOT-A1) was not given and is not recorded as "
        "waste; record the waste with a witness before discharge."
    ]
    page = client.get(url(s, "detail")).content.decode()
    assert 'id="stock-h"' in page and "Record the waste of 5 mg from K-0002" in page
    # a wrong password: refused, nothing stored, audited
    denied = AuditEvent.objects.filter(action="denied", detail__startswith="witness_auth_failed").count()
    r = waste(client, s, "5", world.nurse, password="not-the-password")
    assert r.status_code == 400 and "sign-in was not accepted" in html.unescape(r.content.decode())
    assert not LedgerEntry.objects.filter(kind="waste").exists()
    assert (
        AuditEvent.objects.filter(action="denied", detail="witness_auth_failed:credentials").count()
        == denied + 1
    )
    # the signed-in user cannot witness themselves
    r = waste(client, s, "5", world.prescriber)
    assert r.status_code == 400 and "different person" in r.content.decode()
    # more than was drawn and not given: refused
    r = waste(client, s, "6", world.nurse)
    assert r.status_code == 400 and "Only 5 mg drawn from K-0002" in r.content.decode()
    r = waste(client, s, "5", world.nurse)
    assert r.status_code == 302, html.unescape(r.content.decode())[:2000]
    w = LedgerEntry.objects.get(kind="waste")
    assert (w.session_id, w.witness_id, w.amount, w.container_id) == (
        s.pk,
        world.nurse.pk,
        Decimal(5),
        second,
    )
    c.refresh_from_db()
    assert c.balance == Decimal(460)
    assert services.discharge_stock_problems(s) == []
    # the ledger still adds up
    from django.core.management import call_command

    call_command("controlled_substances", "verify")


def test_expired_or_foreign_container_refused(world: Any, client: Any, clock_frozen: Any) -> None:
    s = iv_ordered(client, world)
    stock_for_session(s)
    other = make_clinic("Elsewhere")
    make_staff(other, "prescriber")
    foreign = DosingSession(
        clinic=other, patient=world.patient, protocol_id=s.protocol_id, protocol_version=s.protocol_version
    )
    foreign_pk = stock_for_session(foreign)
    r = client.post(url(s, "start_dosing"), {"version": v(s), "container": foreign_pk})
    assert r.status_code == 400 and "Select a valid choice" in r.content.decode()
    # a container that expired is not offered; straight to the service it is refused by name
    from kapclinic.testing.factories import actor_for

    expired = Container.objects.get(pk=stock_for_session(s))
    Container.objects.filter(pk=expired.pk).update(expiry=clock_frozen.now().date().replace(year=2020))
    with pytest.raises(DomainError, match="expired on 2020"):
        services.draw_for_session(
            actor_for(world.prescriber, world.clinic),
            s,
            container_id=expired.pk,
            form="vial_iv",
            dose_mg=Decimal(35),
            devices=None,
        )
    assert not LedgerEntry.objects.filter(kind="administration").exists()


def test_witness_with_an_authenticator_must_give_its_code(world: Any, client: Any, clock_frozen: Any) -> None:
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    s = iv_ordered(client, world)
    r = client.post(
        url(s, "start_dosing"), {"version": v(s), "container": stock_for_session(s), "drawn_mg": "36"}
    )
    assert r.status_code == 302
    device = TOTPDevice.objects.create(user=world.nurse, name="phone", confirmed=True)
    r = waste(client, s, "1", world.nurse)
    assert r.status_code == 400 and "sign-in was not accepted" in html.unescape(r.content.decode())
    assert AuditEvent.objects.filter(action="denied", detail="witness_auth_failed:code").exists()
    assert not LedgerEntry.objects.filter(kind="waste").exists()
    code = f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"
    r = waste(client, s, "1", world.nurse, **{"waste-witness_code": code})
    assert r.status_code == 302, html.unescape(r.content.decode())[:2000]
    assert LedgerEntry.objects.get(kind="waste").witness_id == world.nurse.pk
