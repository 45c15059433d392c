"""Adapt a protocol from the protocol library (kapclinic.clinical.protocols) to the small
``ProtocolContext`` the eligibility rules scope on (pure; no Django)."""

from __future__ import annotations

from kapclinic.clinical.protocols import Protocol

from .model import ProtocolContext

_ROUTES = {"IV": "iv", "IM": "im", "SL": "sublingual", "IN": "intranasal"}


def product_of(protocol: Protocol) -> str:
    """ "esketamine" or "racemic_ketamine" from the protocol's product text."""
    return "esketamine" if "esketamine" in protocol.product.lower() else "racemic_ketamine"


def protocol_context(protocol: Protocol) -> ProtocolContext:
    """The protocol's own pre-dose BP thresholds (if set) override the rule set's clinic threshold."""
    params: dict[str, float] = {}
    sbp = protocol.thresholds.predose_sbp_above.value
    dbp = protocol.thresholds.predose_dbp_above.value
    if sbp is not None:
        params["bp_systolic_max"] = float(sbp)
    if dbp is not None:
        params["bp_diastolic_max"] = float(dbp)
    return ProtocolContext(
        id=protocol.id,
        version=protocol.version,
        product=product_of(protocol),
        route=_ROUTES.get(protocol.route, protocol.route.lower()),
        dose_basis=protocol.dose.basis,
        parameters=params,
    )
