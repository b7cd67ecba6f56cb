from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        # A committed outbox event queues its delivery (receivers).
        from integrations import receivers  # noqa: F401
