from django.apps import AppConfig


class TreatmentConfig(AppConfig):
    name = "kapclinic.treatment"
    label = "treatment"
    verbose_name = "Treatment"
