from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self) -> None:
        # Receivers connect on import: routing after scoring (signals), undecided reviews
        # leaving the queues when consent to profiling is withdrawn (consent), a member's
        # erasure reaching its reviews (erasure, whose export sections are registered below).
        from loyalty.services.export import register_export_section
        from reviews import consent, erasure, signals  # noqa: F401

        register_export_section("reviews", erasure.export_reviews)
        register_export_section("decisions", erasure.export_decisions)
        register_export_section("labeled_examples", erasure.export_labeled_examples)
        register_export_section("review_audit_records", erasure.export_review_audit_records)
