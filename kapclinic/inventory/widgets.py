"""Dashboard widget: loss-report deadlines until marked filed, and open discrepancies (issue 14)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from kapclinic.inventory import selectors


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    clinic = getattr(request, "clinic", None)
    return {
        "losses": selectors.loss_reports(clinic, open_only=True),
        "open_discrepancies": selectors.discrepancies(clinic, open_only=True).count(),
        "inventories": selectors.inventories_due(clinic),
    }
