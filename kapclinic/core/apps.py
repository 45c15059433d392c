from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "kapclinic.core"
    label = "core"
    verbose_name = "KAP Clinic core"

    def ready(self) -> None:
        from django.core.signals import got_request_exception

        from kapclinic.core.middleware import log_server_error

        got_request_exception.connect(log_server_error, dispatch_uid="kapclinic.core.log_server_error")
