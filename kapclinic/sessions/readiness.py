"""Signed plan / current consent / current eligibility for the pre-dose gate.

Reads `kapclinic.treatment.selectors.readiness_detail(patient)` (the same answer scheduling gets from
`dosing_readiness`), item by item, so every gate item carries the treatment app's own sentence. On top of
that the gate checks that the session's protocol is the protocol of the signed plan: dosing a protocol
nobody signed is a hard stop like a missing plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kapclinic.clinical.session_state import GateCheck


@dataclass(frozen=True)
class Readiness:
    signed_plan: GateCheck
    consent_current: GateCheck
    eligibility_current: GateCheck

    def checks(self) -> list[GateCheck]:
        return [self.signed_plan, self.consent_current, self.eligibility_current]


def readiness_for(
    patient: Any, protocol_id: str | None = None, *, eligibility: Any = None, consent: Any = None
) -> Readiness:
    """``eligibility`` / ``consent``: the patient's ``EligibilityState`` / ``ConsentState`` when the caller
    has already read them for this request (the session page reads the eligibility decision with the
    assessment, ``intake.selectors.eligibility_summary``, and ``consent.selectors.consent_summary``);
    else they are read here."""
    from kapclinic.treatment.selectors import readiness_detail

    r = readiness_detail(patient, eligibility=eligibility, consent=consent)
    plan_check = GateCheck("signed_plan", r.signed_plan.ok, r.signed_plan.detail)
    if r.plan is not None and protocol_id and r.plan.protocol_id != protocol_id:
        plan_check = GateCheck(
            "signed_plan",
            False,
            f"The signed treatment plan is for {r.plan.protocol_title} ({r.plan.protocol_id}), but this "
            f"session uses {protocol_id}; dose only a protocol the prescriber signed.",
        )
    return Readiness(
        plan_check,
        GateCheck("consent_current", r.consent_current.ok, r.consent_current.detail),
        GateCheck("eligibility_current", r.eligibility_current.ok, r.eligibility_current.detail),
    )
