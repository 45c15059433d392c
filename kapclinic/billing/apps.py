from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "kapclinic.billing"
    label = "billing"
    verbose_name = "Fees, charges and payments"
