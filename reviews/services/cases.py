"""Cases: one review per member and scoring cycle, deciding both the churn call and the action.

While both kinds have an active model version, routing makes cases (`routing.route_new_cases`):

- a case is made of a churn prediction and carries the member's newest next-action prediction
  scored at or before the same cutoff (None when the member has none: the case then decides
  the churn call only). A scoring cycle scores next action first (`predictions` runs them so),
  so a churn prediction waits while a next-action run is unfinished: it is routed once both
  kinds are scored;
- a next-action prediction is never routed alone: a case carries it. A next-action re-score
  on its own reaches the members with the next churn score;
- each side is routed by its own kind's policy; the case goes where the more demanding side
  sends it (`routing.case_route`: auto-approved only when both sides are);
- a new case supersedes the member's pending reviews of either kind that it replaces.

Without both kinds active, a review holds one prediction of the only active kind, as before.
"""

from collections.abc import Sequence
from datetime import datetime

from predictions.models import Prediction, PredictionKind, ScoringRun
from predictions.services.registry import both_kinds_active
from reviews.models import Review


def cases_in_force() -> bool:
    """Whether routing makes cases: both kinds have an active model version."""
    return both_kinds_active()


def next_action_scoring_unfinished() -> bool:
    """Whether a next-action run is still scoring: the cases wait for its predictions."""
    return ScoringRun.objects.filter(
        model_version__kind=PredictionKind.NEXT_ACTION,
        status__in=(ScoringRun.Status.PENDING, ScoringRun.Status.RUNNING),
    ).exists()


def carried_action_predictions(
    *, member_ids: Sequence[int], cutoffs: Sequence[datetime]
) -> list[tuple[int, float, dict | None] | None]:
    """Per churn prediction of a batch (`member_ids` and `cutoffs` in the batch's order): the
    next-action prediction its case carries, as (id, confidence, probabilities), or None."""
    rows = (
        Prediction.objects.filter(kind=PredictionKind.NEXT_ACTION, member_id__in=set(member_ids))
        .order_by("member_id", "-cutoff", "-scored_at", "-pk")
        .values_list("member_id", "cutoff", "pk", "confidence", "probabilities")
    )
    by_member: dict[int, list[tuple]] = {}
    for member_id, cutoff, pk, confidence, probabilities in rows:
        by_member.setdefault(member_id, []).append((cutoff, pk, confidence, probabilities))
    carried = []
    for member_id, cutoff in zip(member_ids, cutoffs, strict=True):
        newest = next(
            (
                (pk, confidence, probabilities)
                for scored_cutoff, pk, confidence, probabilities in by_member.get(member_id, ())
                if scored_cutoff <= cutoff
            ),
            None,
        )
        carried.append(newest)
    return carried


def supersede_replaced_reviews(*, member_ids: Sequence[int]) -> int:
    """The pending next-action reviews of members who got a case: the case decides their
    action now. (Older pending churn reviews and cases go by `routing.supersede_older_reviews`.)"""
    return Review.objects.filter(
        member_id__in=member_ids,
        kind=PredictionKind.NEXT_ACTION,
        state=Review.State.PENDING,
    ).update(state=Review.State.SUPERSEDED)
