from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "kapclinic.accounts"
    label = "accounts"
    verbose_name = "Accounts, clinics and roles"

    def ready(self) -> None:
        from kapclinic.accounts import signals  # noqa: F401
