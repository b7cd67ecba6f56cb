from django.apps import AppConfig
from django.apps import apps as global_apps
from django.db import DEFAULT_DB_ALIAS
from django.db.models.signals import post_migrate


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
        register_export_section("blind_answers", export.export_blind_answers)
        register_export_section("review_audit_records", export.export_review_audit_records)
        post_migrate.connect(
            _seed_first_policy_versions, sender=self, dispatch_uid="reviews.seed_first_policies"
        )


def _seed_first_policy_versions(sender, apps=global_apps, using=DEFAULT_DB_ALIAS, **kwargs) -> None:
    from reviews.services.policy import seed_first_versions

    try:
        model = apps.get_model("reviews", "EscalationPolicy")
    except LookupError:  # this app is not migrated yet
        return
    seed_first_versions(model=model, using=using)
