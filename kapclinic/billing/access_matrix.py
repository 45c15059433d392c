"""Who may open each billing page: billing staff are admin and front desk (docs/billing.md section 6);
patients reach only their own account through the portal pages."""

from __future__ import annotations

from typing import Any

from kapclinic.testing.matrix import Entry, expect, patient_kwargs, roles

BILLING = ("admin", "front_desk")
# other_clinic_staff is a prescriber: refused by role like a prescriber here.
CLINIC = roles(BILLING, other_clinic_staff=403)
PATIENT = roles(BILLING, other_clinic_staff=403)
PORTAL = expect(403, patient_user=200, other_patient_user=200)


def _fee(world: Any) -> dict[str, Any]:
    from kapclinic.billing.models import FeeItem

    # get_or_create: the fuzz test runs setups again on one world, and a code is unique per clinic.
    item, _ = FeeItem.objects.get_or_create(
        clinic=world.clinic, code="90837", system="CPT", modifiers="", defaults={"price": "200.00"}
    )
    return {"fee_id": item.pk}


def _provider(world: Any) -> dict[str, Any]:
    return {"user_id": world.prescriber.pk}


def _credit(world: Any) -> dict[str, Any]:
    return {"patient_id": world.patient.pk, "op": "credit"}


def _superbill(world: Any) -> dict[str, Any]:
    return {"patient_id": world.patient.pk, "kind": "statement"}


MATRIX = {
    "billing:index": Entry(CLINIC),
    "billing:fees": Entry(CLINIC),
    "billing:fee_edit": Entry(CLINIC, setup=_fee),
    "billing:packages": Entry(CLINIC),
    "billing:settings": Entry(CLINIC),
    "billing:provider": Entry(CLINIC, setup=_provider),
    "billing:ageing": Entry(CLINIC),
    "billing:patient": Entry(PATIENT, kwargs=patient_kwargs),
    # "Apply credit" with nothing to apply: a redirect back to the account for billing staff.
    "billing:patient_action": Entry(
        roles(BILLING, ok=302, other_clinic_staff=403), method="post", setup=_credit
    ),
    "billing:document": Entry(PATIENT, setup=_superbill, query="start=2026-01-01&end=2026-12-31"),
    "billing:portal": Entry(PORTAL),
    "billing:portal_document": Entry(
        PORTAL, kwargs=lambda world: {"kind": "statement"}, query="start=2026-01-01&end=2026-12-31"
    ),
}
