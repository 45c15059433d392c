from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "kapclinic.inventory"
    label = "inventory"
    verbose_name = "Controlled substances"

    def ready(self) -> None:
        from kapclinic.accounts.models import Role
        from kapclinic.core.registry import Widget, register_dashboard_widget
        from kapclinic.inventory import widgets

        register_dashboard_widget(
            Widget(
                key="controlled_substances",
                title="Controlled substances",
                template="inventory/_dashboard_widget.html",
                context=widgets.dashboard_context,
                roles=frozenset({Role.ADMIN, Role.PRESCRIBER, Role.NURSE}),
                order=60,
            )
        )
