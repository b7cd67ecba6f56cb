"""A partial run (the daily refresh's few members) is routed on the population's figures, so
each member gets the route, reason and priority that routing everyone at once gives them."""

import pytest

from predictions.models import Prediction, ScoringRun
from predictions.services.scoring.freshness import refresh_scores
from predictions.services.scoring.runs import score_chunk
from reviews.models import Review
from reviews.services.routing import route_new_predictions
from reviews.services.routing_rules import ValueScale
from tests.predictions.conftest import (  # noqa: F401  (fixtures that train a real model)
    active_churn_version,
    generated_members,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("active_churn_version"),
]
EXPERT_BY_VALUE = "member value in top 5 %"


def _full_run() -> ScoringRun:
    (run,) = refresh_scores(enqueue=False).runs
    for chunk_id in run.chunks.values_list("pk", flat=True):
        score_chunk(chunk_id=chunk_id)
    run.refresh_from_db()
    assert run.scope == "full"
    return run


def _routed(member_ids) -> dict[int, tuple]:
    return {
        member_id: (route, reason, round(priority, 12))
        for member_id, route, reason, priority in Review.objects.filter(
            member_id__in=member_ids
        ).values_list("member_id", "route", "route_reason", "priority")
    }


@pytest.mark.usefixtures("without_blind_review")  # which items open blind is a count, not a rule
def test_routing_a_few_members_gives_them_what_routing_everyone_gives():
    _full_run()
    route_new_predictions(kind="churn")
    pending = Review.objects.filter(state="pending")
    by_value = list(pending.order_by("member_value", "member__external_id"))
    # A partial batch: the 20 least valuable members waiting for a person and two the
    # population's value sends to experts. On its own values, this batch's "top 5 %" and
    # percentiles are nothing like the population's.
    experts = [review for review in by_value if review.route_reason == EXPERT_BY_VALUE]
    chosen = [*by_value[:20], *experts[-2:]]
    assert len(experts) >= 2 and len(chosen) == 22
    member_ids = [review.member_id for review in chosen]
    everyone = _routed(member_ids)
    Review.objects.filter(pk__in=[review.pk for review in chosen]).delete()

    result = route_new_predictions(kind="churn")

    assert result.routed == 22
    assert _routed(member_ids) == everyone


def test_a_batch_s_own_values_would_route_it_differently():
    """The check above can fail: the batch's own scale gives another threshold and other
    percentiles than the population's."""
    run = _full_run()
    population = ValueScale.of(
        Prediction.objects.filter(cutoff=run.cutoff).values_list("member_value", flat=True)
    )
    stored = ValueScale(run.value_points)
    lowest = sorted(
        Prediction.objects.filter(cutoff=run.cutoff).values_list("member_value", flat=True)
    )[:22]
    batch = ValueScale.of(lowest)

    assert stored.threshold(0.95) == pytest.approx(population.threshold(0.95))
    assert batch.threshold(0.95) < population.threshold(0.95)
    assert list(batch.percentiles(lowest[-3:])) != list(stored.percentiles(lowest[-3:]))
