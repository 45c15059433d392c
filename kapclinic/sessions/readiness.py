"""Signed plan / current consent / current eligibility for the pre-dose gate.

Reads `kapclinic.treatment.selectors.dosing_readiness(patient)` when the treatment app provides it.
TODO(issue #5): until it exists, the fallback REFUSES all three items (hard stops) with a sentence that
says why, so no session can be dosed without those checks. Tests and the demo may install a provider
with `set_provider()`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
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


_FALLBACK_TEXT = (
    "The treatment module that confirms this is not available, so the check cannot pass "
    "(kapclinic.treatment.selectors.dosing_readiness is missing)."
)

_provider: Callable[[Any], Any] | None = None


def set_provider(provider: Callable[[Any], Any] | None) -> None:
    """Install a readiness provider (tests, demo); None restores the default lookup."""
    global _provider
    _provider = provider


def _default_provider() -> Callable[[Any], Any] | None:
    try:
        module = importlib.import_module("kapclinic.treatment.selectors")
    except ImportError:
        return None
    fn = getattr(module, "dosing_readiness", None)
    return fn if callable(fn) else None


def _item(raw: Any, key: str, ok_text: str) -> GateCheck:
    """Accept a bool, a (bool, detail) pair, an object with .ok/.passed and .detail/.reason, or a dict."""
    value = raw.get(key) if isinstance(raw, dict) else getattr(raw, key, None)
    detail = ""
    if isinstance(value, tuple) and value:
        value, detail = value[0], str(value[1]) if len(value) > 1 else ""
    elif isinstance(value, dict):
        detail = str(value.get("detail") or value.get("reason") or "")
        value = value.get("ok", value.get("passed"))
    elif value is not None and not isinstance(value, bool):
        detail = str(getattr(value, "detail", "") or getattr(value, "reason", ""))
        value = getattr(value, "ok", getattr(value, "passed", None))
    if value is None:
        return GateCheck(key, False, f"The treatment module gave no answer for this item. {_FALLBACK_TEXT}")
    if value:
        return GateCheck(key, True, detail or ok_text)
    return GateCheck(key, False, detail or "Not in place.")


def readiness_for(patient: Any) -> Readiness:
    provider = _provider or _default_provider()
    if provider is None:
        return Readiness(
            GateCheck("signed_plan", False, _FALLBACK_TEXT),
            GateCheck("consent_current", False, _FALLBACK_TEXT),
            GateCheck("eligibility_current", False, _FALLBACK_TEXT),
        )
    raw = provider(patient)
    return Readiness(
        _item(raw, "signed_plan", "A signed treatment plan is in place."),
        _item(raw, "consent_current", "Consent is current."),
        _item(raw, "eligibility_current", "A current eligibility decision is signed."),
    )
