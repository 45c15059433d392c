from django.apps import AppConfig


class PatientsConfig(AppConfig):
    name = "kapclinic.patients"
    label = "patients"
    verbose_name = "Patients and charts"

    def ready(self) -> None:
        from kapclinic.accounts.models import Role
        from kapclinic.core.registry import Widget, register_dashboard_widget
        from kapclinic.patients.widgets import caseload_context

        register_dashboard_widget(
            Widget(
                key="caseload",
                title="My caseload",
                template="patients/_caseload_widget.html",
                context=caseload_context,
                roles=frozenset({Role.PRESCRIBER, Role.THERAPIST, Role.NURSE}),
                order=50,
            )
        )
