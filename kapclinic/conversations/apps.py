from __future__ import annotations

from typing import Any

from django.apps import AppConfig

from kapclinic.core import clock
from kapclinic.core.actor import actor_from_request


def _overdue_widget(request: Any) -> dict[str, Any] | None:
    """Patient messages unanswered for longer than the clinic's reply time (shown only when some are).
    One query: the oldest waiting threads with the clinic's reply time beside them."""
    from kapclinic.conversations import selectors

    actor = actor_from_request(request)
    if actor.clinic is None:
        return None
    threads, hours, more = selectors.overdue_for_widget(actor, clock.now(), limit=10)
    if not threads:
        return None
    return {"threads": threads, "count": f"{len(threads)}+" if more else len(threads), "hours": hours}


class ConversationsConfig(AppConfig):
    name = "kapclinic.conversations"
    label = "conversations"
    verbose_name = "Secure messages"

    def ready(self) -> None:
        from kapclinic.accounts.models import CLINICAL_ROLES
        from kapclinic.core.registry import (
            ChartPanel,
            Widget,
            register_chart_panel,
            register_dashboard_widget,
        )

        register_chart_panel(
            ChartPanel(
                key="messages",
                title="Secure messages",
                template="conversations/_chart_panel.html",
                context=chart_context,
                action="view_clinical",
                order=45,
            )
        )

        register_dashboard_widget(
            Widget(
                key="overdue_messages",
                title="Patient messages waiting",
                template="conversations/widget.html",
                context=_overdue_widget,
                roles=CLINICAL_ROLES,
                order=4,
            )
        )


def chart_context(request: Any, patient: Any) -> dict[str, Any]:
    """The chart's three latest conversations (subject, kind, last message), one query."""
    from kapclinic.conversations.models import Thread

    rows = (
        Thread.objects.filter(patient_id=patient.pk)
        .order_by("-last_message_at", "-id")
        .only("pk", "subject", "kind", "status", "last_message_at", "awaiting_since", "patient_id")[:3]
    )
    return {"threads": list(rows)}
