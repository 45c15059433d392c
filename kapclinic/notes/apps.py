from django.apps import AppConfig


class NotesConfig(AppConfig):
    name = "kapclinic.notes"
    label = "notes"
    verbose_name = "Notes"
