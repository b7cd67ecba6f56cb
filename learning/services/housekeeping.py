"""Housekeeping: predictions that nothing needs any more leave the database.

A prediction is pruned when its review was superseded (a newer score of the member replaced it
before anyone decided: no decision, so no decision event), nobody escalated it (an escalation
has an audit record and a `review.escalated` event that name the review), no labeled example
was made of it, and it was scored more than LOYALTY_PREDICTION_RETENTION_DAYS ago. Its review
goes with it. Nothing a decision, a label, an audit record or an outbox event points to is ever
pruned; predictions never routed are left to routing.

While cases are in force a next-action prediction has no review of its own: a case carries it
(`reviews.services.cases`). One that no case carries once a newer next-action prediction of the
member exists will never be carried (a case takes the newest): it is pruned after the same
retention. A prediction a case carries is never pruned.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from learning.models import LabeledExample
from predictions.models import Prediction, PredictionKind
from reviews.models import Review

logger = logging.getLogger(__name__)

PRUNE_BATCH = 1000


@dataclass(frozen=True)
class PruneResult:
    predictions: int
    reviews: int
    older_than: datetime


def prunable_predictions(*, older_than: datetime):
    """The predictions the retention rule lets go (the module docstring)."""
    labeled = LabeledExample.objects.filter(prediction_id=OuterRef("pk"))
    carried = Review.objects.filter(action_prediction_id=OuterRef("pk"))
    newer = Prediction.objects.filter(
        member_id=OuterRef("member_id"), kind=OuterRef("kind"), scored_at__gt=OuterRef("scored_at")
    )
    superseded = Q(
        review__state=Review.State.SUPERSEDED,
        review__escalated_at__isnull=True,
        review__decision__isnull=True,
    )
    never_carried = Q(kind=PredictionKind.NEXT_ACTION, review__isnull=True) & Exists(newer)
    return (
        Prediction.objects.filter(scored_at__lt=older_than)
        .filter(superseded | never_carried)
        .exclude(Exists(labeled))
        .exclude(Exists(carried))
    )


def prune_predictions(*, now: datetime | None = None, batch: int = PRUNE_BATCH) -> PruneResult:
    """Delete the prunable predictions with their reviews, a batch per transaction (each batch
    checked again as it is deleted), and log the counts."""
    now = now or timezone.now()
    older_than = now - timedelta(days=settings.LOYALTY_PREDICTION_RETENTION_DAYS)
    predictions = reviews = 0
    while True:
        with transaction.atomic():
            ids = list(
                prunable_predictions(older_than=older_than)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch]
            )
            if not ids:
                break
            _, deleted = prunable_predictions(older_than=older_than).filter(pk__in=ids).delete()
        predictions += deleted.get(Prediction._meta.label, 0)
        reviews += deleted.get(Review._meta.label, 0)
    logger.info(
        "pruned %d superseded predictions (and %d reviews) scored before %s",
        predictions,
        reviews,
        older_than.isoformat(),
    )
    return PruneResult(predictions=predictions, reviews=reviews, older_than=older_than)
