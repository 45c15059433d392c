from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "kapclinic.audit"
    label = "audit"
    verbose_name = "Audit trail"
