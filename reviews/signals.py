"""Reactions of the review workflow to what lower layers announce."""

from django.db import transaction
from django.dispatch import receiver

from predictions.signals import scoring_run_finished


@receiver(scoring_run_finished, dispatch_uid="reviews.route_finished_run")
def route_finished_run(sender, *, kind: str, model_version_id: int, **kwargs) -> None:
    from reviews.tasks import route_new_predictions_task

    transaction.on_commit(lambda: route_new_predictions_task.delay(kind, model_version_id))
