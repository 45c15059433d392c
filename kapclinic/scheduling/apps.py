from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "kapclinic.scheduling"
    label = "scheduling"
    verbose_name = "Scheduling"
