from django.apps import AppConfig


class PublicConfig(AppConfig):
    name = "kapclinic.public"
    label = "public"
    verbose_name = "Public"
