from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "kapclinic.notifications"
    label = "notifications"
    verbose_name = "Notifications"
