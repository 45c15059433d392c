from django.apps import AppConfig


class FhirapiConfig(AppConfig):
    name = "kapclinic.fhirapi"
    label = "fhirapi"
    verbose_name = "FHIR API"

    def ready(self) -> None:
        from kapclinic.fhirapi import checks  # noqa: F401  (registers the id_token key deploy check)
