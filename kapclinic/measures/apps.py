from __future__ import annotations

from typing import Any

from django.apps import AppConfig

WIDGET_ALERTS = 10


def _alerts_widget(request: Any) -> dict[str, Any]:
    """The ten first open alerts as printed rows (name, MRN, links and raised time written once here,
    not by per-row ``{% url %}`` and ``|date``), and how many more are open: counted in the same query
    (a window count over the open alerts) instead of a second one."""
    from django.db.models import Count, Window
    from django.urls import reverse
    from django.utils import timezone
    from django.utils.formats import date_format

    from kapclinic.core.actor import actor_from_request
    from kapclinic.measures import selectors

    actor = actor_from_request(request)
    alerts = list(selectors.open_alerts(actor).annotate(open_total=Window(Count("id")))[:WIDGET_ALERTS])
    if not alerts:
        return {"alerts": [], "more": 0, "cutoff": None}
    # The overdue mark is only drawn beside an alert: no settings read when there is none.
    cutoff = selectors.overdue_cutoff(actor.clinic)
    rows = [
        {
            "name": a.patient.display_name,
            "mrn": a.patient.mrn,
            "url": reverse("measures:patient", args=[a.patient_id]),
            "ack_url": reverse("measures:acknowledge", args=[a.patient_id, a.pk]),
            "raised": date_format(timezone.localtime(a.raised_at), "M j, H:i"),
            "overdue": a.raised_at < cutoff,
            "urgent": a.urgent,
            "told": a.told,
            "nobody": a.notified_via == "nobody",
        }
        for a in alerts
    ]
    return {"alerts": rows, "more": alerts[0].open_total - len(alerts), "cutoff": cutoff}


def _chart_panel(request: Any, patient: Any) -> dict[str, Any]:
    from kapclinic.core.actor import actor_from_request
    from kapclinic.measures import selectors
    from kapclinic.policy import Action, can

    alerts = list(selectors.patient_open_alerts(patient)[:20])
    return {
        "latest": selectors.latest_by_instrument(patient),
        "open_alerts": alerts,
        "cutoff": selectors.overdue_cutoff(patient.clinic_id) if alerts else None,
        "can_edit": can(actor_from_request(request), Action.EDIT_CLINICAL, patient),
    }


class MeasuresConfig(AppConfig):
    name = "kapclinic.measures"
    label = "measures"
    verbose_name = "Measures"

    def ready(self) -> None:
        from kapclinic.accounts.models import Role
        from kapclinic.measures.services import alert_notification_failed
        from kapclinic.messaging.models import MessageKind
        from kapclinic.messaging.services import on_final_failure

        on_final_failure(MessageKind.SAFETY_ALERT, alert_notification_failed)
        from kapclinic.core.registry import (
            ChartPanel,
            Widget,
            register_chart_panel,
            register_dashboard_widget,
        )

        register_dashboard_widget(
            Widget(
                key="safety_alerts",
                title="Open safety alerts",
                template="measures/widget_alerts.html",
                context=_alerts_widget,
                roles=frozenset({Role.PRESCRIBER, Role.THERAPIST, Role.NURSE}),
                order=10,
            )
        )
        register_chart_panel(
            ChartPanel(
                key="measures",
                title="Measures and safety",
                template="measures/panel.html",
                context=_chart_panel,
                action="view_clinical",
                order=20,
            )
        )
