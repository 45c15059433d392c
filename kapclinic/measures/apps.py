from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def _alerts_widget(request: Any) -> dict[str, Any]:
    from kapclinic.core.actor import actor_from_request
    from kapclinic.measures import selectors

    actor = actor_from_request(request)
    qs = selectors.open_alerts(actor)
    alerts = list(qs[:10])
    return {
        "alerts": alerts,
        "more": max(0, qs.count() - len(alerts)) if len(alerts) == 10 else 0,
        # The overdue mark is only drawn beside an alert: no settings read when there is none.
        "cutoff": selectors.overdue_cutoff(actor.clinic) if alerts else None,
    }


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
                roles=frozenset({"prescriber", "therapist", "nurse"}),
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
