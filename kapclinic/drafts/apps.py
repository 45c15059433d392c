from django.apps import AppConfig


class DraftsConfig(AppConfig):
    name = "kapclinic.drafts"
    label = "drafts"
    verbose_name = "Form drafts"
