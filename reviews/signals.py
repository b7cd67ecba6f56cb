"""Reactions of the review workflow to what lower layers announce."""

from django.db import transaction
from django.dispatch import receiver

from predictions.signals import model_version_activated, scoring_run_finished


@receiver(scoring_run_finished, dispatch_uid="reviews.route_finished_run")
def route_finished_run(sender, *, kind: str, model_version_id: int, **kwargs) -> None:
    from reviews.tasks import route_new_predictions_task

    transaction.on_commit(lambda: route_new_predictions_task.delay(kind, model_version_id))


@receiver(model_version_activated, dispatch_uid="reviews.resume_after_promotion")
def resume_after_promotion(sender, *, kind: str, model_version_id: int, **kwargs) -> None:
    """A new active version ends a monitor's pause of auto-approval: it is judged afresh."""
    from reviews.services.monitoring import resume_auto_approval

    resume_auto_approval(
        kind=kind, actor=None, reason=f"model version {model_version_id} became active"
    )
