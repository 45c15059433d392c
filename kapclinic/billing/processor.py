"""Where a card processor plugs in later (issue 16: the interface, not an integration).

Recording a payment never calls out today. A deployment that takes cards would implement
`PaymentProcessor`, call `charge()` before `services.record_payment(...)` and store the processor's id
in `Payment.processor_ref`; refunds likewise. Card numbers never reach this application: a processor's
hosted field gives a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ProcessorResult:
    ok: bool
    processor_ref: str = ""
    message: str = ""  # a sentence for staff when not ok


@runtime_checkable
class PaymentProcessor(Protocol):
    def charge(
        self, *, amount: Decimal, currency: str, token: str, idempotency_key: str
    ) -> ProcessorResult: ...

    def refund(self, *, processor_ref: str, amount: Decimal, idempotency_key: str) -> ProcessorResult: ...


class NoProcessor:
    """The default: no card processing; payments are recorded by staff."""

    def charge(self, *, amount: Decimal, currency: str, token: str, idempotency_key: str) -> ProcessorResult:
        return ProcessorResult(False, message="No card processor is set up; record the payment instead.")

    def refund(self, *, processor_ref: str, amount: Decimal, idempotency_key: str) -> ProcessorResult:
        return ProcessorResult(False, message="No card processor is set up; record the refund instead.")
