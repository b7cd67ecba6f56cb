"""Reactions of the learning loop to what the review workflow announces."""

from django.db import transaction
from django.dispatch import receiver

from reviews.signals import decision_recorded


@receiver(decision_recorded, dispatch_uid="learning.label_recorded_decision")
def label_recorded_decision(sender, *, decision_id: int, **kwargs) -> None:
    """Queue the decision's labeling once the decision is committed. `robust`: a broker that is
    down must not fail a decision already stored; the periodic sweep labels it later."""
    from learning.tasks import label_decision_task

    transaction.on_commit(lambda: label_decision_task.delay(decision_id), robust=True)
