from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self) -> None:
        # Receivers connect on import: routing after scoring (receivers), undecided reviews
        # leaving the queues when consent to profiling is withdrawn (consent), a member's
        # erasure reaching its reviews (erasure); the export sections are registered below.
        from loyalty.services.export import register_export_section
        from reviews import consent, erasure, export, receivers  # noqa: F401

        register_export_section("reviews", export.export_reviews)
        register_export_section("decisions", export.export_decisions)
        register_export_section("review_audit_records", export.export_review_audit_records)
