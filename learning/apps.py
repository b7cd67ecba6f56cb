from django.apps import AppConfig


class LearningConfig(AppConfig):
    name = "learning"
    verbose_name = "Learning loop"

    def ready(self) -> None:
        # Receivers connect on import: a recorded decision queues its labeling (receivers), a
        # member's erasure deletes their labeled examples (erasure); their export section
        # is registered here.
        from learning import erasure, export, receivers  # noqa: F401
        from loyalty.services.export import register_export_section

        register_export_section("labeled_examples", export.export_labeled_examples)
