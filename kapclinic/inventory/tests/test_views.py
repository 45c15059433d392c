"""Inventory pages: bad input re-renders with a sentence and stores nothing; reports on screen and CSV."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.urls import reverse

from kapclinic.core import clock
from kapclinic.inventory.models import Container, Count, Discrepancy, LedgerEntry, Receipt
from kapclinic.inventory.testing import dea_number, make_registration, make_vial_product, receive

pytestmark = pytest.mark.django_db


def _receive_data(reg: Any, product: Any, **over: Any) -> dict[str, Any]:
    data = {
        "registration": reg.pk,
        "product": product.pk,
        "location": reg.locations.first().pk,
        "supplier": "Synthetic Wholesale",
        "supplier_dea_number": dea_number("RS"),
        "invoice_number": "INV-9",
        "invoice_date": clock.today().isoformat(),
        "received_on": clock.today().isoformat(),
        "lot": "L-7",
        "expiry": (clock.today() + dt.timedelta(days=300)).isoformat(),
        "containers": "2",
    }
    data.update(over)
    return data


def signs_in(user: Any, prefix: str = "witness", password: str | None = None) -> dict[str, str]:
    """A witness signing in on the form (issue 14): their email address and password."""
    from kapclinic.testing.factories import PASSWORD

    return {f"{prefix}_email": user.email, f"{prefix}_password": password or PASSWORD}


def test_receive_a_box_then_see_labels(client: Any, world: Any, clock_frozen: Any) -> None:
    reg, product = make_registration(world.clinic), make_vial_product(world.clinic)
    client.force_login(world.prescriber)
    response = client.post(reverse("inventory:receive"), _receive_data(reg, product))
    assert response.status_code == 302
    page = client.get(response["Location"])
    assert b"K-0001" in page.content and b"K-0002" in page.content and b"Print labels" in page.content


@pytest.mark.parametrize(
    ("over", "sentence"),
    [
        ({"supplier_dea_number": "RS1234568"}, "check digit should be"),
        ({"received_on": "2099-01-01"}, "cannot be in the future"),
        ({"containers": "0"}, "greater than or equal to 1"),
    ],
)
def test_bad_receipt_re_renders_with_a_sentence(
    client: Any, world: Any, clock_frozen: Any, over: dict[str, str], sentence: str
) -> None:
    reg, product = make_registration(world.clinic), make_vial_product(world.clinic)
    client.force_login(world.prescriber)
    response = client.post(reverse("inventory:receive"), _receive_data(reg, product, **over))
    assert response.status_code == 400 and sentence in response.content.decode()
    assert Receipt.objects.count() == 0 and Container.objects.count() == 0


def test_registration_with_a_wrong_check_digit_is_refused(client: Any, world: Any, clock_frozen: Any) -> None:
    client.force_login(world.prescriber)
    response = client.post(
        reverse("inventory:registration_new"),
        {
            "dea_number": "AP5836728",
            "registrant": "Dr X",
            "expires_on": "2027-01-01",
            "schedules": "3",
            "location": "Cabinet",
        },
    )
    assert response.status_code == 400 and "check digit should be 7" in response.content.decode()


def test_entry_over_the_balance_is_refused_with_its_sentence(
    client: Any, world: Any, clock_frozen: Any
) -> None:
    c = Container.objects.get(receipt=receive(world.prescriber, world.clinic))
    client.force_login(world.nurse)
    url = reverse("inventory:container", args=[c.pk])
    response = client.post(url, {"kind": "administration", "amount": "600", "unit": "mg"})
    assert response.status_code == 400 and "more than the container holds" in response.content.decode()
    response = client.post(url, {"kind": "waste", "amount": "5", "unit": "mg", **signs_in(world.nurse)})
    assert response.status_code == 400 and "different person" in response.content.decode()
    assert LedgerEntry.objects.filter(container=c).count() == 1
    response = client.post(
        url,
        {
            "kind": "administration",
            "amount": "70",
            "unit": "mg",
            "patient_mrn": world.patient.mrn,
            "route": "IM",
        },
    )
    assert response.status_code == 302
    c.refresh_from_db()
    assert c.balance == 430


def test_count_in_the_future_refused_and_close_count_opens_discrepancy(
    client: Any, world: Any, clock_frozen: Any
) -> None:
    c = Container.objects.get(receipt=receive(world.prescriber, world.clinic))
    client.force_login(world.nurse)
    url = reverse("inventory:count_new")
    future = (clock.now() + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    data = {
        "kind": "on_demand",
        "timing": "close",
        "taken_at": future,
        **signs_in(world.prescriber),
        f"counted_{c.pk}": "480",
    }
    response = client.post(url, data)
    assert response.status_code == 400 and "cannot be dated in the future" in response.content.decode()
    assert Count.objects.count() == 0
    data["taken_at"] = (
        (clock.now() - dt.timedelta(hours=1)).astimezone(world.clinic.zone).strftime("%Y-%m-%dT%H:%M")
    )
    assert client.post(url, data).status_code == 302
    d = Discrepancy.objects.get()
    client.force_login(world.prescriber)
    response = client.post(reverse("inventory:discrepancy", args=[d.pk]), {"explanation": ""})
    assert response.status_code == 400
    response = client.post(
        reverse("inventory:discrepancy", args=[d.pk]), {"explanation": "Recounted: 500 mg."}
    )
    assert response.status_code == 302
    d.refresh_from_db()
    assert not d.is_open


def test_administration_log_on_screen_and_csv(client: Any, world: Any, clock_frozen: Any) -> None:
    from kapclinic.inventory import services
    from kapclinic.testing.factories import actor_for

    c = Container.objects.get(receipt=receive(world.prescriber, world.clinic))
    services.record_entry(
        actor_for(world.nurse, world.clinic),
        c.pk,
        kind="administration",
        amount="70",
        patient=world.patient,
        route="IM",
    )
    client.force_login(world.admin)
    q = {
        "registration": c.registration.dea_number,
        "start": clock.today().isoformat(),
        "end": clock.today().isoformat(),
    }
    page = client.get(reverse("inventory:administration_log"), q)
    assert page.status_code == 200 and world.patient.mrn in page.content.decode()
    csv_response = client.get(reverse("inventory:administration_log"), {**q, "format": "csv"})
    lines = b"".join(csv_response.streaming_content).decode().splitlines()
    assert lines[0].startswith("date and time,patient record number,product,lot,container,mg,mL,route")
    assert f"{world.patient.mrn},Ketamine HCl injection,LOT-A1,{c.identifier},70,1.4,IM" in lines[1]
    bad = client.get(reverse("inventory:administration_log"), {**q, "end": "2000-01-01"})
    assert bad.status_code == 400 and "cannot be before" in bad.content.decode()


def test_front_desk_sees_no_nav_link(client: Any, world: Any) -> None:
    client.force_login(world.front_desk)
    assert b"Controlled substances" not in client.get(reverse("core:home")).content
    client.force_login(world.nurse)
    assert b"Controlled substances" in client.get(reverse("core:home")).content


def test_dashboard_shows_loss_deadlines_until_filed(client: Any, world: Any, clock_frozen: Any) -> None:
    from kapclinic.inventory import services
    from kapclinic.testing.factories import actor_for

    report = services.open_loss_report(
        actor_for(world.prescriber, world.clinic),
        make_registration(world.clinic),
        discovered_at=clock.now(),
        description="Synthetic: vial missing",
    )
    client.force_login(world.nurse)
    page = client.get(reverse("core:home")).content.decode()
    assert "written notice due 2026-03-03" in page and "Form 106 due 2026-04-16" in page
    client.force_login(world.prescriber)
    for which in ("notice", "form106"):
        assert (
            client.post(reverse("inventory:loss_filed", args=[report.pk]), {"which": which}).status_code
            == 302
        )
    assert "Form 106 due" not in client.get(reverse("core:home")).content.decode()
    client.force_login(world.front_desk)
    assert "Controlled substances" not in client.get(reverse("core:home")).content.decode()


def test_clinic_setting_lets_nurses_receive(client: Any, world: Any, clock_frozen: Any) -> None:
    reg, product = make_registration(world.clinic), make_vial_product(world.clinic)
    client.force_login(world.nurse)
    assert client.get(reverse("inventory:receive")).status_code == 403
    client.force_login(world.admin)
    bad = client.post(reverse("inventory:settings"), {"roles": [], "estimate_tolerance_mg": "-1"})
    assert bad.status_code == 400 and "This field is required." in bad.content.decode()
    ok = client.post(
        reverse("inventory:settings"), {"roles": ["prescriber", "nurse"], "estimate_tolerance_mg": "2"}
    )
    assert ok.status_code == 302
    client.force_login(world.nurse)
    assert client.post(reverse("inventory:receive"), _receive_data(reg, product)).status_code == 302


def test_biennial_inventory_reminder(client: Any, world: Any, clock_frozen: Any) -> None:
    from kapclinic.inventory import services
    from kapclinic.testing.factories import actor_for

    reg = make_registration(world.clinic)
    client.force_login(world.nurse)
    assert "no initial inventory recorded" in client.get(reverse("inventory:index")).content.decode()
    services.record_count(
        actor_for(world.nurse, world.clinic),
        reg,
        kind="initial",
        timing="opening",
        witness=world.prescriber,
        lines=[],
        taken_at=clock.now() - dt.timedelta(hours=2),
    )
    page = client.get(reverse("core:home")).content.decode()
    assert "next biennial inventory due by 2028-03-02" in page


def test_destroy_page_refuses_one_witness_then_records_form_41(
    client: Any, world: Any, clock_frozen: Any
) -> None:
    from kapclinic.testing.factories import make_staff

    c = Container.objects.get(receipt=receive(world.prescriber, world.clinic))
    client.force_login(world.prescriber)
    url = reverse("inventory:destroy", args=[c.pk])
    data = {
        "method": "on_site",
        "place": "Dosing suite",
        "reason": "Expired",
        **signs_in(world.nurse, "witness_1"),
        **signs_in(world.nurse, "witness_2"),
    }
    response = client.post(url, data)
    assert response.status_code == 400 and "two different people" in response.content.decode()
    data.update(signs_in(make_staff(world.clinic, "nurse"), "witness_2"))
    assert client.post(url, data).status_code == 302
    c.refresh_from_db()
    assert c.balance == 0
    assert "Dosing suite" in client.get(reverse("inventory:destructions")).content.decode()


def test_ledger_and_log_pages_take_a_constant_number_of_queries(
    client: Any, world: Any, clock_frozen: Any, django_assert_max_num_queries: Any
) -> None:
    from kapclinic.inventory import services
    from kapclinic.testing.factories import actor_for

    c = Container.objects.get(receipt=receive(world.prescriber, world.clinic))
    nurse = actor_for(world.nurse, world.clinic)
    for _ in range(30):
        services.record_entry(
            nurse, c.pk, kind="administration", amount="5", patient=world.patient, route="IM"
        )
        services.record_entry(nurse, c.pk, kind="waste", amount="1", witness=world.prescriber)
    client.force_login(world.nurse)
    with django_assert_max_num_queries(25):
        assert client.get(reverse("inventory:container", args=[c.pk])).status_code == 200
    q = {"registration": c.registration.dea_number, "start": "2026-03-01", "end": "2026-03-02"}
    with django_assert_max_num_queries(25):
        page = client.get(reverse("inventory:administration_log"), q)
    assert page.content.decode().count("(waste)") == 25  # the first page: 50 of the 60 rows, alternating
    with django_assert_max_num_queries(25):
        assert client.get(reverse("inventory:index")).status_code == 200
