from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "kapclinic.inventory"
    label = "inventory"
    verbose_name = "Controlled substances"
