from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "kapclinic.consent"
    label = "consent"
    verbose_name = "Consent"
