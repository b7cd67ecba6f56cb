from django.apps import AppConfig


class LoyaltyConfig(AppConfig):
    name = "loyalty"
    verbose_name = "Loyalty program"

    def ready(self) -> None:
        from loyalty import signals  # noqa: F401  (role-change audit)
        from loyalty.celery import ensure_broker_folders

        ensure_broker_folders()
