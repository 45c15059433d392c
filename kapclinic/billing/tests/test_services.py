"""Billing services: fee schedule, proposals from visits and sessions, posting, payments, refunds,
adjustments, packages, ledger and ageing (docs/billing.md)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from kapclinic.audit.models import AuditEvent
from kapclinic.billing import selectors, services
from kapclinic.billing.models import AdjustmentKind, ChargeLine, ChargeStatus, Method
from kapclinic.billing.testing import add_diagnosis, completed_visit, discharged_session, starter_fee_schedule
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.testing.factories import actor_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def desk(world: Any) -> Any:
    actor = actor_for(world.front_desk, world.clinic)
    starter_fee_schedule(actor)
    add_diagnosis(world.patient, world.prescriber)
    return actor


def _post_session(world: Any, desk: Any, dose: str = "84") -> list[ChargeLine]:
    s = discharged_session(world.patient, world.prescriber, dose_mg=dose)
    lines = services.propose_for_session(desk, s)
    return services.post_charges(desk, world.patient, line_ids=[x.pk for x in lines])


def test_only_billing_roles_write(world: Any) -> None:
    for who in (world.prescriber, world.nurse, world.therapist):
        with pytest.raises(DomainError, match="role"):
            services.add_fee_item(actor_for(who, world.clinic), code="90837", price="200")
    services.add_fee_item(actor_for(world.admin, world.clinic), code="90837", price="200")


def test_fee_item_from_data_and_clinic_codes(world: Any, desk: Any) -> None:
    g = services.add_fee_item(desk, code="g2082", price="400", modifiers="95", appointment_kinds=["dosing"])
    assert (g.code, g.system, g.code_version, g.modifiers) == ("G2082", "HCPCS", "1.0.0", "95")
    with pytest.raises(DomainError, match="not in the code data"):
        services.add_fee_item(desk, code="KAPINT", price="100")
    own = services.add_fee_item(desk, code="KAPINT", price="100", description="Integration circle (clinic)")
    assert own.system == "LOCAL"
    with pytest.raises(DomainError, match="already on the fee schedule"):
        services.add_fee_item(desk, code="KAPINT", price="1", description="again")
    with pytest.raises(DomainError, match="modifier"):
        services.add_fee_item(desk, code="90834", price="1", modifiers="9")
    with pytest.raises(DomainError, match=r"float|amount"):
        services.add_fee_item(desk, code="90791", price="abc")
    with pytest.raises(ConflictError):
        services.update_fee_item(
            desk, own, expected_version=99, price="1", appointment_kinds=[], protocols=[], active=True
        )


def test_esketamine_session_proposes_the_code_for_its_dose(world: Any, desk: Any) -> None:
    s = discharged_session(world.patient, world.prescriber, dose_mg="84")
    lines = services.propose_for_session(desk, s)
    assert [(x.code, x.units, x.pos, x.diagnosis_codes) for x in lines] == [("G2083", 1, "11", ["F33.2"])]
    assert lines[0].amount == Decimal("450.00") and lines[0].status == ChargeStatus.DRAFT
    with pytest.raises(DomainError, match="already has charge lines"):
        services.propose_for_session(desk, s)
    s56 = discharged_session(world.patient, world.prescriber, dose_mg="56")
    assert [x.code for x in services.propose_for_session(desk, s56)] == ["G2082"]


def test_iv_session_units_from_infusion_minutes(world: Any, desk: Any) -> None:
    s = discharged_session(
        world.patient, world.prescriber, protocol_id="ketamine-iv-racemic", dose_mg="35", infusion_minutes=100
    )
    lines = services.propose_for_session(desk, s)
    assert sorted((x.code, x.units) for x in lines) == [("96365", 1), ("96366", 1)]
    assert "100 minutes" in lines[0].review_note


def test_unconfirmed_counting_rule_needs_the_biller(world: Any, desk: Any) -> None:
    s = discharged_session(world.patient, world.prescriber, protocol_id="ketamine-im-racemic", dose_mg="50")
    (line,) = services.propose_for_session(desk, s)
    assert line.code == "0820T" and "counting rule" in line.review_note
    with pytest.raises(DomainError, match="confirm its units"):
        services.post_charges(desk, world.patient, line_ids=[line.pk])
    services.edit_draft(
        desk,
        line,
        expected_version=line.version,
        units=2,
        modifiers="",
        diagnosis_codes="F33.2",
        pos="11",
        unit_price="150",
    )
    (posted,) = services.post_charges(desk, world.patient, line_ids=[line.pk])
    assert posted.status == ChargeStatus.POSTED
    line.refresh_from_db()
    assert line.amount == Decimal("300.00")


def test_visit_units_from_minutes_and_telehealth(world: Any, desk: Any) -> None:
    v = completed_visit(world.patient, world.therapist, minutes=45, video=True)
    lines = services.propose_for_appointment(desk, v)
    assert [(x.code, x.pos) for x in lines] == [("90834", "02")]  # 38-52 min band; 90837 not proposed


def test_visit_needs_completion_and_fee_items(world: Any, desk: Any) -> None:
    v = completed_visit(world.patient, world.therapist, kind="assessment")
    with pytest.raises(DomainError, match="No fee schedule item"):
        services.propose_for_appointment(desk, v)


def test_posted_charge_is_never_edited(world: Any, desk: Any) -> None:
    (line,) = _post_session(world, desk)
    with pytest.raises(DomainError, match="adjustment"):
        services.edit_draft(
            desk,
            line,
            expected_version=line.version,
            units=2,
            modifiers="",
            diagnosis_codes=[],
            pos="11",
            unit_price="1",
        )
    with pytest.raises(DomainError, match="adjustment"):
        services.discard_draft(desk, line, expected_version=line.version)


def test_diagnosis_pointer_must_be_on_the_chart(world: Any, desk: Any) -> None:
    s = discharged_session(world.patient, world.prescriber)
    (line,) = services.propose_for_session(desk, s)
    with pytest.raises(DomainError, match="not a diagnosis"):
        services.edit_draft(
            desk,
            line,
            expected_version=line.version,
            units=1,
            modifiers="",
            diagnosis_codes="F99.9",
            pos="11",
            unit_price="1",
        )


def test_payment_allocation_refund_and_ledger(world: Any, desk: Any) -> None:
    (charge,) = _post_session(world, desk)  # 450.00
    with pytest.raises(DomainError, match="reference"):
        services.record_payment(desk, world.patient, method=Method.CHEQUE, amount="100")
    p = services.record_payment(desk, world.patient, method=Method.CARD, amount="500.00", reference="auth 1")
    assert selectors.summary(world.patient).balance == Decimal("-50.00")
    assert services.unapplied_credit(world.patient) == Decimal("50.00")
    assert services.open_charges(world.patient) == []
    services.refund(desk, p, amount="80.00", method=Method.CARD, reason="overpaid")
    assert services.unapplied_credit(world.patient) == Decimal("0.00")
    (still,) = services.open_charges(world.patient)
    assert still.open_amount_db == Decimal("30.00")
    with pytest.raises(DomainError, match=r"At most 420\.00"):
        services.refund(desk, p, amount="500", method=Method.CARD)
    opening, rows = selectors.ledger(world.patient)
    assert opening == 0
    assert [r.balance for r in rows] == [Decimal("450.00"), Decimal("-50.00"), Decimal("30.00")]
    assert selectors.summary(world.patient).balance == Decimal("30.00")
    services.adjust(desk, charge, kind=AdjustmentKind.WRITE_OFF, amount="30.00", reason="small balance")
    assert selectors.summary(world.patient).balance == Decimal("0.00")
    with pytest.raises(DomainError, match=r"Only 0\.00 is open"):
        services.adjust(desk, charge, kind=AdjustmentKind.WRITE_OFF, amount="1", reason="x")
    services.adjust(desk, charge, kind=AdjustmentKind.CORRECTION, amount="-10.00", reason="fee was 460")
    assert selectors.summary(world.patient).balance == Decimal("10.00")


def test_credit_applies_to_later_charges(world: Any, desk: Any) -> None:
    services.record_payment(desk, world.patient, method=Method.CASH, amount="100")
    _post_session(world, desk, dose="28")  # 400.00
    assert services.apply_credit(desk, world.patient) == 1
    (c,) = services.open_charges(world.patient)
    assert c.open_amount_db == Decimal("300.00")


def test_package_draw_down(world: Any, desk: Any) -> None:
    pkg = services.add_package(
        desk, name="Six esketamine visits", sessions=2, price="700", appointment_kinds=[]
    )
    purchase = services.sell_package(desk, world.patient, package=pkg)
    services.record_payment(desk, world.patient, method=Method.BANK_TRANSFER, amount="700", reference="TX-1")
    for _ in range(2):
        lines = _post_session(world, desk, dose="28")
        purchase = services.draw_package(desk, purchase, charges=lines)
    assert purchase.remaining == 0
    lines = _post_session(world, desk, dose="28")
    with pytest.raises(DomainError, match="0 session"):
        services.draw_package(desk, purchase, charges=lines)
    purchase.refresh_from_db()
    assert purchase.sessions_used == 2
    # the package price was paid; two sessions covered; the third is owed
    assert selectors.summary(world.patient).balance == Decimal("400.00")


def test_other_clinic_is_refused(world: Any, desk: Any) -> None:
    other = actor_for(world.other_clinic_staff, world.other_clinic)
    with pytest.raises(DomainError):
        services.record_payment(other, world.patient, method=Method.CASH, amount="1")


def test_every_write_is_audited(world: Any, desk: Any) -> None:
    before = AuditEvent.objects.filter(patient=world.patient).count()
    _post_session(world, desk)
    services.record_payment(desk, world.patient, method=Method.CASH, amount="5")
    details = list(
        AuditEvent.objects.filter(patient=world.patient)
        .order_by("seq")
        .values_list("detail", flat=True)[before:]
    )
    assert details == ["billing.propose:1", "billing.post:1", "billing.payment:cash"]


def test_ageing_and_unbilled(world: Any, desk: Any) -> None:
    old = discharged_session(world.patient, world.prescriber, at=dt.datetime(2026, 1, 5, 15, tzinfo=dt.UTC))
    services.post_charges(
        desk, world.patient, line_ids=[x.pk for x in services.propose_for_session(desk, old)]
    )
    visit = completed_visit(world.patient, world.therapist)
    visits, sessions = selectors.unbilled(world.clinic)
    assert visit in visits and old not in sessions
    rows, totals = selectors.ageing(world.clinic, dt.date(2026, 3, 20))
    assert totals["61-90"] == Decimal("450.00") and rows[0].patient == world.patient


def test_superbill_data(world: Any, desk: Any) -> None:
    (line,) = _post_session(world, desk)
    services.record_payment(desk, world.patient, method=Method.CARD, amount="450")
    bill = selectors.superbill(world.patient, line.service_date, line.service_date)
    assert bill.total == bill.paid == Decimal("450.00") and bill.balance == 0 and bill.paid_in_full
    assert bill.diagnoses[0][:2] == ("A", "F33.2") and bill.lines[0].pointers == "A"
    assert bill.providers[0].name == world.prescriber.full_name


def test_npi_check_digit(world: Any) -> None:
    admin = actor_for(world.admin, world.clinic)
    with pytest.raises(DomainError, match="check digit"):
        services.save_profile(admin, expected_version=None, organisation_npi="1234567890")
    p = services.save_profile(
        admin, expected_version=None, organisation_npi="1234567893", tax_id="12-3456789"
    )
    assert p.organisation_npi == "1234567893"
