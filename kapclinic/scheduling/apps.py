from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "kapclinic.scheduling"
    label = "scheduling"
    verbose_name = "Scheduling"

    def ready(self) -> None:
        from kapclinic.accounts.models import Role
        from kapclinic.core.registry import (
            ChartPanel,
            Widget,
            register_chart_panel,
            register_dashboard_widget,
        )
        from kapclinic.scheduling import widgets

        register_chart_panel(
            ChartPanel(
                key="appointments",
                title="Upcoming appointments",
                template="scheduling/_chart_panel.html",
                context=widgets.chart_context,
                action="schedule",
                order=20,
            )
        )
        register_dashboard_widget(
            Widget(
                key="today_schedule",
                title="Today's appointments",
                template="scheduling/_today_widget.html",
                context=widgets.today_context,
                roles=frozenset({Role.ADMIN, Role.FRONT_DESK, Role.PRESCRIBER, Role.THERAPIST, Role.NURSE}),
                order=20,
            )
        )
