from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    name = "kapclinic.documents"
    label = "documents"
    verbose_name = "Chart documents and printable records"

    def ready(self) -> None:
        from kapclinic.core.registry import ChartPanel, register_chart_panel
        from kapclinic.documents import widgets

        register_chart_panel(
            ChartPanel(
                key="documents",
                title="Documents",
                template="documents/_chart_panel.html",
                context=widgets.chart_context,
                action="view_demographics",  # the panel lists only the categories the viewer may see
                order=70,
            )
        )
