from django.apps import AppConfig
from django.db.models.signals import post_migrate


class LoyaltyConfig(AppConfig):
    name = "loyalty"
    verbose_name = "Loyalty program"

    def ready(self) -> None:
        from loyalty import receivers  # noqa: F401  (role-change audit, access cache)
        from loyalty.celery import ensure_broker_folders

        ensure_broker_folders()
        post_migrate.connect(_sync_role_groups, dispatch_uid="loyalty.sync_role_groups")


def _sync_role_groups(sender, using="default", **kwargs) -> None:
    from loyalty.services.users import sync_role_groups

    sync_role_groups(using=using)
