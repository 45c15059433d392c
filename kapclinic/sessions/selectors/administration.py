"""The dose hand-off (whose part the dose waits for, on the session page and the day's lists) and whether
an IV infusion is running."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kapclinic.accounts.models import Role
from kapclinic.clinical.session_state import State
from kapclinic.core.sentinel import NOT_READ
from kapclinic.sessions.models import (
    Administration,
    DosingSession,
)


def infusion_running(session: DosingSession, *, admin: Administration | None = NOT_READ) -> bool:
    """An IV infusion that started and whose stop is not recorded (the session still dosing): aborting
    the session then records the stop, what was infused (witnessed) and the waste of the rest (issue 14).
    ``admin``: the session's administration when the caller has read it (None: there is none)."""
    if State(session.state) is not State.DOSING:
        return False
    if admin is NOT_READ:
        admin = Administration.objects.filter(session_id=session.pk).first()
    return (
        admin is not None
        and admin.route == "IV"
        and admin.administered_at is not None
        and admin.infusion_stopped_at is None
    )


# ---------------------------------------------------------------- dose hand-off (who does what next)


@dataclass(frozen=True)
class DoseHandoff:
    """After the pre-dose checks: what the session waits for (the chair board's line) and, for the person
    looking, their part before they act."""

    step: str  # "order" | "double_check" | "give"
    waiting: str  # one sentence for the nurse's card and the chair board
    you: str  # this viewer's part ("" when nothing is theirs)


def dose_handoff(
    admin: Any,
    *,
    double_check_required: bool,
    user_id: int | None,
    role: str | None,
    stocked: bool = False,
) -> DoseHandoff:
    """The dose hand-off between prescriber, double-checker and giver, for ``user_id``: the person who
    ordered the dose cannot double-check it, and the person who double-checks cannot also give it.
    ``stocked``: the dose is drawn from a controlled-substance container (issue 14), whose lot and expiry
    go on the record, so the giver chooses the container instead of typing them."""
    if admin is None:
        you = (
            "Your part: order the dose below; a nurse then double-checks it and gives it."
            if role == Role.PRESCRIBER
            else "Nothing to do yet: a prescriber orders the dose here, then you double-check it or give it."
        )
        return DoseHandoff("order", "Waiting for the prescriber's order.", you)
    checked = admin.double_checked_by_id
    if double_check_required and checked is None:
        if admin.ordered_by_id == user_id:
            you = "You ordered this dose, so a second staff member (not you) must double-check it."
        else:
            you = (
                "Your part: double-check the dose independently, or give it. The person who double-checks "
                "cannot also give it: if you will give this dose yourself, leave the double-check to a "
                "colleague."
            )
        return DoseHandoff("double_check", "Dose ordered: waiting for the double-check.", you)
    if checked is not None and checked == user_id:
        you = (
            "You double-checked this dose, so another staff member must give it. If you are the one who "
            "will give it, withdraw your double-check and ask a colleague to double-check."
        )
    elif role in (Role.NURSE, Role.PRESCRIBER):
        you = (
            "Your part: check the patient, choose the container the dose is drawn from, and give the dose."
            if stocked
            else "Your part: check the patient, record the lot number and expiry, and give the dose."
        )
    else:
        you = ""
    waiting = "Dose ordered and double-checked: ready to give." if checked else "Dose ordered: ready to give."
    return DoseHandoff("give", waiting, you)


def dose_handoff_lines(sessions: Iterable[DosingSession]) -> dict[int, str]:
    """{session id: the hand-off sentence} for sessions whose pre-dose checks passed (one query)."""
    return _handoff_waiting([(s.pk, s.state, s.protocol_id, s.protocol_version) for s in sessions])


def _handoff_waiting(sessions: Iterable[tuple[int, str, str, str]]) -> dict[int, str]:
    """dose_handoff_lines on (pk, state, protocol id, protocol version) rows: one query, none when no
    session's pre-dose checks have passed."""
    from kapclinic.clinical.protocols import get_protocol

    waiting = [row for row in sessions if row[1] == State.PREDOSE_PASSED]
    if not waiting:
        return {}
    admins = {a.session_id: a for a in Administration.objects.filter(session__in=[row[0] for row in waiting])}
    out = {}
    for pk, _state, protocol_id, protocol_version in waiting:
        required = get_protocol(protocol_id, protocol_version).dose.double_check_required
        step = dose_handoff(admins.get(pk), double_check_required=required, user_id=None, role=None)
        out[pk] = step.waiting
    return out


def _stock_containers(session: DosingSession) -> list[str]:
    """The stock containers the dose was drawn from ("S-0003, lot L1"), issue 14."""
    from kapclinic.inventory.models import SessionDraw

    rows = SessionDraw.objects.filter(session=session).select_related("container").order_by("at", "pk")
    return [f"{d.container.identifier}, lot {d.container.lot}" for d in rows]
