"""The dose and its administration: order, co-signature, double check, dosing start (from stock), the
stock's waste, disposal and unused returns, devices, infusion stop, lozenge."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

from kapclinic.core.actor import Actor
from kapclinic.policy import Action, open_patient
from kapclinic.sessions import forms as f
from kapclinic.sessions import services
from kapclinic.sessions.models import DosingSession
from kapclinic.sessions.views.page import _run, _session


@login_required
@require_POST
def dose(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    patient = open_patient(request, patient_id, Action.PRESCRIBE, audit=None)
    session = _session(patient, session_id)
    form = f.DoseForm(request.POST, protocol=services.protocol_for(session))

    def do(actor: Actor, s: DosingSession, data: dict[str, Any]) -> None:
        services.dose_order(actor, s, expected_version=data["version"], inputs=data)

    return _run(request, patient_id, session_id, Action.PRESCRIBE, form, do, "dose_form")


@login_required
@require_POST
def cosign(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """A second prescriber co-signs an order above the protocol maximum."""

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.dose_cosign(actor, session)

    return _run(request, patient_id, session_id, Action.PRESCRIBE, None, do)


@login_required
@require_POST
def double_check(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.dose_double_check(actor, session)

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, None, do)


@login_required
@require_POST
def double_check_withdraw(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """The person who double-checked withdraws it before the dose is given (audited)."""

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.dose_double_check_withdraw(actor, session)

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, None, do)


@login_required
@require_POST
def start_dosing(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    if _stocked(request, patient_id, session_id):
        return _start_dosing_from_stock(request, patient_id, session_id)
    form = f.StartDosingForm(request.POST)

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.dosing_start(
            actor,
            session,
            expected_version=data["version"],
            lot_number=data["lot_number"] or "",
            expiry_date=data["expiry_date"],
        )

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "start_form")


def _stocked(request: HttpRequest, patient_id: int, session_id: int) -> bool:
    """Whether the session's dose is drawn from stock (read without auditing; _run checks access)."""
    session = DosingSession.objects.filter(pk=session_id, patient_id=patient_id).first()
    return session is not None and services.stock_form(session)


def _start_dosing_from_stock(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """Dosing starts from the chosen container (issue 14); its ledger line is written with it."""
    from kapclinic.inventory import services as inventory

    session = DosingSession.objects.get(pk=session_id)
    form_name = services.protocol_for(session).dose.form
    containers = inventory.stock_for_form(session.clinic, form_name)
    form: f.VersionForm = f.StockStartDosingForm(
        request.POST, containers=containers, vial=form_name != "nasal_device"
    )

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.dosing_start_from_stock(
            actor,
            session,
            expected_version=data["version"],
            container_id=data.get("container") or None,
            drawn_mg=data.get("drawn_mg"),
            second_container_id=data.get("second_container") or None,
            second_drawn_mg=data.get("second_drawn_mg"),
        )

    if not containers:
        # no choice to make: the service's refusal says so (and the page links to the stock)
        form = f.VersionForm(request.POST)
    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "start_form")


def _witnessed(
    request: HttpRequest, form: Any, write: Callable[[Actor, DosingSession, Any, Any], Any]
) -> Callable[[Actor, DosingSession, dict[str, Any]], None]:
    """The witness signs in (inventory.witness.confirm, audited when refused), then ``write`` runs."""
    from kapclinic.inventory.witness import confirm

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        witness = confirm(request, actor, data)  # a refusal is a DomainError on the witness's email field
        write(actor, session, data, witness)

    return do


@login_required
@require_POST
def stock_waste(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """What was drawn but not given (syringe residue), wasted with a signed-in witness."""
    from kapclinic.inventory import services as inventory

    form = f.SessionWasteForm(request.POST, prefix="waste")

    def write(actor: Actor, session: DosingSession, data: dict[str, Any], witness: Any) -> None:
        inventory.waste_for_session(
            actor,
            session,
            draw_id=data["draw"],
            amount_mg=data["amount_mg"],
            witness=witness,
            reason=data.get("reason") or "",
        )

    do = _witnessed(request, form, write)
    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "waste_form")


@login_required
@require_POST
def stock_disposal(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """The used esketamine devices' disposal, with a signed-in witness."""
    from kapclinic.inventory import services as inventory

    form = f.DeviceDisposalForm(request.POST, prefix="disp")

    def write(actor: Actor, session: DosingSession, data: dict[str, Any], witness: Any) -> None:
        inventory.dispose_devices(actor, session, draw_id=data["draw"], witness=witness)

    do = _witnessed(request, form, write)
    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "disposal_form")


@login_required
@require_POST
def stock_unused(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """Esketamine devices taken out and not used (a partial dose): returned to stock or disposed of,
    with a signed-in witness."""
    from kapclinic.inventory import services as inventory

    form = f.UnusedDevicesForm(request.POST, prefix="unused")

    def write(actor: Actor, session: DosingSession, data: dict[str, Any], witness: Any) -> None:
        inventory.settle_unused_devices(
            actor, session, draw_id=data["draw"], how=data["how"], witness=witness
        )

    do = _witnessed(request, form, write)
    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "unused_form")


@login_required
@require_POST
def device(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """Esketamine: the next nasal device used (5 minutes after the previous one, [S7] ref §1.3)."""
    form = f.DeviceForm(request.POST, prefix="dev")

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.device_record(actor, session, expected_version=data["version"], at=data["at"])

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "device_form")


@login_required
@require_POST
def infusion_stop(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """IV: when the infusion stopped and the actual pump rate if it was changed."""
    form = f.InfusionStopForm(request.POST, prefix="inf")

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        from kapclinic.inventory.witness import confirm

        # a witness signs in only when less than the dose was infused (the service says when one is needed)
        signing = data.get("witness_email") or data.get("witness_password")
        services.infusion_stop_record(
            actor,
            session,
            expected_version=data["version"],
            stopped_at=data["stopped_at"],
            actual_rate_ml_per_h=data["actual_rate_ml_per_h"],
            early_stop_reason=data.get("early_stop_reason") or "",
            infused_amount=data.get("infused_amount"),
            infused_unit=data.get("infused_unit") or "mg",
            witness=confirm(request, actor, data) if signing else None,
        )

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "infusion_form")


@login_required
@require_POST
def lozenge(request: HttpRequest, patient_id: int, session_id: int) -> HttpResponse:
    """SL: how long the lozenge was held and whether it was spat out or swallowed."""
    form = f.LozengeForm(request.POST, prefix="loz")

    def do(actor: Actor, session: DosingSession, data: dict[str, Any]) -> None:
        services.lozenge_record(
            actor,
            session,
            expected_version=data["version"],
            hold_minutes=data["hold_minutes"],
            outcome=data["outcome"],
        )

    return _run(request, patient_id, session_id, Action.MONITOR_SESSION, form, do, "lozenge_form")
