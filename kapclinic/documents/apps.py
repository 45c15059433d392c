from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    name = "kapclinic.documents"
    label = "documents"
    verbose_name = "Chart documents and printable records"
