"""Reactions of the review workflow to what lower layers announce."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from loyalty import shared_cache
from loyalty.models import Action
from predictions.signals import model_version_activated, scoring_run_finished
from reviews.models import ReasonCode
from reviews.selectors.catalogs import ACTIONS_KEY, REASON_CODES_KEY


@receiver(scoring_run_finished, dispatch_uid="reviews.route_finished_run")
def route_finished_run(sender, *, kind: str, model_version_id: int, **kwargs) -> None:
    from reviews.tasks import route_new_predictions_task

    transaction.on_commit(lambda: route_new_predictions_task.delay(kind, model_version_id))


@receiver(model_version_activated, dispatch_uid="reviews.resume_after_promotion")
def resume_after_promotion(sender, *, kind: str, model_version_id: int, **kwargs) -> None:
    """A new active version ends a monitor's pause of auto-approval: it is judged afresh."""
    from reviews.services.automation import resume_auto_approval

    resume_auto_approval(
        kind=kind, actor=None, reason=f"model version {model_version_id} became active"
    )


@receiver([post_save, post_delete], sender=ReasonCode, dispatch_uid="reviews.forget_reason_codes")
def forget_reason_codes(sender, **kwargs) -> None:
    shared_cache.forget(REASON_CODES_KEY)


@receiver([post_save, post_delete], sender=Action, dispatch_uid="reviews.forget_actions")
def forget_actions(sender, **kwargs) -> None:
    shared_cache.forget(ACTIONS_KEY)
