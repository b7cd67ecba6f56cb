"""Housekeeping: superseded predictions nothing points to leave after their retention; the rest
stay (a decision, a label, an escalation, a pending or recent one)."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from learning.models import LabeledExample
from learning.services.housekeeping import prune_predictions
from predictions.models import Prediction
from reviews.models import Review
from reviews.services.decisions import escalate_review
from reviews.services.routing import route_new_predictions
from tests.factories import MemberFactory, ModelVersionFactory, PredictionFactory

pytestmark = pytest.mark.django_db

RETENTION = timedelta(days=settings.LOYALTY_PREDICTION_RETENTION_DAYS)


@pytest.fixture
def history(reason_codes, make_user):
    """Per member an old prediction (scored past the retention) and a newer one that superseded
    it, routed to analysts; one old review escalated, one old prediction labeled."""
    version = ModelVersionFactory()
    now = timezone.now()
    members = {name: MemberFactory(external_id=name) for name in ("PLAIN", "ESCALATED", "LABELED")}
    old = {}
    for name, member in members.items():
        old[name] = PredictionFactory(
            member=member, model_version=version, confidence=0.8, cutoff=now - timedelta(days=200)
        )
    route_new_predictions(kind="churn")
    escalate_review(
        review_id=Review.objects.get(prediction=old["ESCALATED"]).pk,
        actor=make_user("analyst"),
        reason_code="needs-expert",
    )
    LabeledExample.objects.create(
        source=LabeledExample.Source.OUTCOME,
        kind="churn",
        prediction=old["LABELED"],
        member=members["LABELED"],
        model_version=version,
        cutoff=old["LABELED"].cutoff,
        churn_label=True,
        weight=1.0,
        observed_at=now,
    )
    for member in members.values():
        PredictionFactory(member=member, model_version=version, confidence=0.8, cutoff=now)
    route_new_predictions(kind="churn")  # supersedes the old pending reviews
    Prediction.objects.filter(pk__in=[p.pk for p in old.values()]).update(
        scored_at=now - RETENTION - timedelta(days=1)
    )
    return old


def _remaining(old: dict) -> set[str]:
    return {name for name, p in old.items() if Prediction.objects.filter(pk=p.pk).exists()}


def test_a_superseded_prediction_nothing_points_to_is_pruned_with_its_review(history):
    plain_review = Review.objects.get(prediction=history["PLAIN"])
    assert plain_review.state == Review.State.SUPERSEDED

    result = prune_predictions()

    assert (result.predictions, result.reviews) == (1, 1)
    assert _remaining(history) == {"ESCALATED", "LABELED"}
    assert not Review.objects.filter(pk=plain_review.pk).exists()
    # Every member keeps its current prediction and review.
    assert Review.objects.filter(state=Review.State.PENDING).count() == 3


def test_nothing_is_pruned_before_its_retention_and_a_second_run_prunes_nothing(history):
    Prediction.objects.filter(pk=history["PLAIN"].pk).update(scored_at=timezone.now())

    assert prune_predictions().predictions == 0
    assert _remaining(history) == {"PLAIN", "ESCALATED", "LABELED"}


def test_pruning_in_small_batches_prunes_the_same(history):
    assert prune_predictions(batch=1).predictions == 1
    assert prune_predictions(batch=1).predictions == 0


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_daily_task_prunes_through_a_real_worker(history, celery_worker):
    from learning.tasks import prune_predictions_task
    from tests.workers import wait_until

    assert settings.CELERY_BEAT_SCHEDULE["prune-predictions"]["task"] == prune_predictions_task.name

    prune_predictions_task.delay()

    wait_until(lambda: _remaining(history) == {"ESCALATED", "LABELED"}, what="the pruning")


def test_a_next_action_prediction_no_case_carries_is_pruned_and_a_carried_one_stays(
    case_versions,
):
    versions = case_versions
    now = timezone.now()
    member = MemberFactory()

    def next_action(cutoff):
        return PredictionFactory(
            member=member,
            model_version=versions["next_action"],
            kind="next_action",
            cutoff=cutoff,
            probabilities={"win_back_email": 0.7, "no_action": 0.3},
        )

    skipped = next_action(now - timedelta(days=200))  # a newer one came before any churn score
    carried_old = next_action(now - timedelta(days=150))
    PredictionFactory(member=member, model_version=versions["churn"], cutoff=carried_old.cutoff)
    route_new_predictions(kind="churn")
    newest = next_action(now)
    Prediction.objects.filter(pk__in=[skipped.pk, carried_old.pk]).update(
        scored_at=now - RETENTION - timedelta(days=1)
    )
    assert Review.objects.get(action_prediction=carried_old).is_case

    assert prune_predictions().predictions == 1

    remaining = set(Prediction.objects.filter(kind="next_action").values_list("pk", flat=True))
    assert remaining == {carried_old.pk, newest.pk}
