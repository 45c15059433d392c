from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "kapclinic.conversations"
    label = "conversations"
    verbose_name = "Secure messages"
