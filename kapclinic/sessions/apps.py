from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def _chart_context(request: Any, patient: Any) -> dict[str, Any]:
    from kapclinic.core.actor import actor_from_request
    from kapclinic.policy import Action, can
    from kapclinic.sessions.selectors import patient_sessions

    return {
        "sessions": patient_sessions(patient),
        "can_schedule": can(actor_from_request(request), Action.MONITOR_SESSION, patient),
    }


def _widget_context(request: Any) -> dict[str, Any]:
    from kapclinic.core import clock
    from kapclinic.core.actor import actor_from_request
    from kapclinic.sessions.selectors import today_sessions

    return {"sessions": today_sessions(actor_from_request(request), clock.today(), limit=20)}


class SessionsConfig(AppConfig):
    name = "kapclinic.sessions"
    label = "kap_sessions"
    verbose_name = "Sessions"

    def ready(self) -> None:
        from kapclinic.accounts.models import Role
        from kapclinic.core.registry import (
            ChartPanel,
            Widget,
            register_chart_panel,
            register_dashboard_widget,
        )

        register_chart_panel(
            ChartPanel(
                key="sessions",
                title="Dosing sessions",
                template="sessions/_chart_panel.html",
                context=_chart_context,
                action="view_clinical",
                order=40,
            )
        )
        register_dashboard_widget(
            Widget(
                key="sessions_today",
                title="Today's dosing sessions",
                template="sessions/_widget.html",
                context=_widget_context,
                roles=frozenset({Role.PRESCRIBER, Role.NURSE, Role.THERAPIST}),
                order=20,
            )
        )
