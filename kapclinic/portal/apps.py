from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "kapclinic.portal"
    label = "portal"
    verbose_name = "Portal"
