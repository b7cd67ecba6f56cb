from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    name = "predictions"
    verbose_name = "Predictions"

    def ready(self) -> None:
        from loyalty.services.export import register_export_section
        from predictions import erasure  # (blanks what the model saw when a member is erased)

        register_export_section("predictions", erasure.export_predictions)
