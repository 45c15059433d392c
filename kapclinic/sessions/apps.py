from django.apps import AppConfig


class SessionsConfig(AppConfig):
    name = "kapclinic.sessions"
    label = "kap_sessions"
    verbose_name = "Sessions"
