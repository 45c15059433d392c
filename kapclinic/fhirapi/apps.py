from django.apps import AppConfig


class FhirapiConfig(AppConfig):
    name = "kapclinic.fhirapi"
    label = "fhirapi"
    verbose_name = "FHIR API"
