from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def _undelivered_widget(request: Any) -> dict[str, Any] | None:
    """Shown only while some of the clinic's emails failed or are being retried (one query)."""
    from kapclinic.messaging import selectors

    clinic = getattr(request, "clinic", None)
    if clinic is None:
        return None
    counts = selectors.undelivered_counts(clinic)
    return {"counts": counts} if counts["failed"] or counts["retrying"] else None


class MessagingConfig(AppConfig):
    name = "kapclinic.messaging"
    label = "messaging"
    verbose_name = "Outbound messages"

    def ready(self) -> None:
        from kapclinic.accounts.models import Role
        from kapclinic.core.registry import Widget, register_dashboard_widget

        register_dashboard_widget(
            Widget(
                key="undelivered_messages",
                title="Undelivered emails",
                template="messaging/widget.html",
                context=_undelivered_widget,
                roles=frozenset({Role.ADMIN, Role.PRESCRIBER}),
                order=5,
            )
        )
