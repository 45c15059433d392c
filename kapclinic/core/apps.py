from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "kapclinic.core"
    label = "core"
    verbose_name = "KAP Clinic core"
