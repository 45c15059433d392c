from django.apps import AppConfig


class NotesConfig(AppConfig):
    name = "kapclinic.notes"
    label = "notes"
    verbose_name = "Notes"

    def ready(self) -> None:
        from kapclinic.accounts.models import Role
        from kapclinic.core.registry import (
            ChartPanel,
            Widget,
            register_chart_panel,
            register_dashboard_widget,
        )
        from kapclinic.notes import checks, widgets  # noqa: F401  (checks registers the key check)

        register_chart_panel(
            ChartPanel(
                key="notes",
                title="Clinical notes",
                template="notes/_chart_panel.html",
                context=widgets.chart_context,
                action="view_clinical",
                order=40,
            )
        )
        register_dashboard_widget(
            Widget(
                key="note_drafts",
                title="Unsigned notes",
                template="notes/_drafts_widget.html",
                context=widgets.drafts_context,
                roles=frozenset({Role.PRESCRIBER, Role.THERAPIST, Role.NURSE}),
                order=40,
            )
        )
