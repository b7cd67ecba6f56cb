"""Review quality: each person's churn calls scored against what members did, beside the
model's calls on the same items (the evidence page "Review quality").

An item is a person's decision (never the policy's) on a churn review or a case whose churn
prediction has an observed outcome (a `LabeledExample` of source outcome: its horizon has
passed). The person's call is the churn call the decision settled on
(`reviews.services.decision_events.decided_churn_call`: an approval is the model's call, a
correction the person's answer); the model's call is `predictions.calls.model_churn_call` of
the score. The arithmetic is in `learning.quality_stats`.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import OuterRef, Subquery

from learning.models import LabeledExample
from learning.quality_stats import (
    ActionEffect,
    GroupScores,
    ScoredCall,
    action_effect,
    score_group,
)
from loyalty.services.catalog import NO_ACTION
from predictions.calls import model_churn_call
from predictions.models import PredictionKind
from reviews.models import Decision, Review
from reviews.permissions import DECIDE
from reviews.selectors.queue import REASON_PREFIXES
from reviews.services.decision_events import decided_churn_call

# Experts and admins (who watch the learning loop) see everyone's figures; a person who
# decides reviews sees their own.
VIEW_EVERYONE = "learning.view_labeledexample"
EVERYONE, OWN = "everyone", "own"

AUDIT = "audit"
ROUTE_LABELS = {
    Review.Route.ANALYST.value: "Analyst",
    Review.Route.EXPERT.value: "Expert",
    AUDIT: "Audit sample",
    Review.Route.AUTO.value: "Auto-approved",
}
GROUPINGS = {
    "reviewer": "Reviewer",
    "route": "Route",
    "reason": "Reason code",
    "model_version": "Model version",
}
# The disagreements list's orders (`?sort=`): newest first, or by what the member did.
SORTS = {
    "date": "newest first",
    "outcome": "churned first",
    "-outcome": "stayed first",
}
DEFAULT_SORT = "date"
DISAGREEMENTS_SHOWN = 200


def quality_scope(user) -> str | None:
    """Whose figures `user` may see: everyone's, their own, or none (None: 403)."""
    if user.has_perm(VIEW_EVERYONE):
        return EVERYONE
    if user.has_perm(DECIDE):
        return OWN
    return None


@dataclass(frozen=True)
class QualityItem:
    """One scored decision."""

    review_id: int
    member: str
    reviewer: str
    route: str
    reason: str
    model_version: str
    decided_at: datetime
    score: float
    call: ScoredCall
    # The action the decision settled on (None: none, or no action) and whether the member
    # was drawn into the control group and held out of it.
    action: str | None = None
    held_out: bool = False

    @property
    def month(self) -> str:
        return self.decided_at.strftime("%Y-%m")

    @property
    def person_right(self) -> bool:
        return self.call.person == self.call.outcome

    @property
    def model_right(self) -> bool:
        return self.call.model == self.call.outcome


def route_group(review: Review) -> str:
    """The route an item was decided in, the audit sample told apart from the analyst queue
    (routing words an audit-sampled item's reason so)."""
    if review.route_reason.startswith(REASON_PREFIXES[AUDIT]):
        return AUDIT
    return review.route


def observed_churn(prediction_field: str = "review__prediction_id") -> Subquery:
    """The member's observed churn after the prediction in `prediction_field` (the outcome
    example's label), None while its horizon has not passed: an annotation."""
    return Subquery(
        LabeledExample.objects.filter(
            source=LabeledExample.Source.OUTCOME,
            kind=PredictionKind.CHURN,
            prediction_id=OuterRef(prediction_field),
        ).values("churn_label")[:1]
    )


def scored_decisions(user, scope: str):
    """The decisions that can be scored and that `user` may see in `scope`, with `outcome`
    (the member's observed churn) annotated."""
    decisions = (
        Decision.objects.exclude(decided_as=Decision.POLICY)
        # A case's kind is churn: its churn prediction is the review's own.
        .filter(review__kind=PredictionKind.CHURN, review__member__erased_at__isnull=True)
        .annotate(outcome=observed_churn())
        .filter(outcome__isnull=False)
        .select_related("review__prediction", "decided_by", "reason", "member", "settled_action")
    )
    if scope == OWN:
        decisions = decisions.filter(decided_by=user)
    return decisions


def quality_items(user, scope: str) -> list[QualityItem]:
    items = []
    for decision in scored_decisions(user, scope):
        review = decision.review
        score = review.prediction.score
        items.append(
            QualityItem(
                review_id=review.pk,
                member=decision.member.external_id,
                reviewer=decision.decided_by.get_username(),
                route=route_group(review),
                reason=decision.reason.code,
                model_version=f"v{review.prediction.model_version_id}",
                decided_at=decision.decided_at,
                score=score,
                call=ScoredCall(
                    person=bool(decided_churn_call(decision)),
                    model=bool(model_churn_call(score)),
                    outcome=bool(decision.outcome),
                ),
                action=_contacting_action(decision),
                held_out=decision.held_out,
            )
        )
    return items


def _contacting_action(decision: Decision) -> str | None:
    action = decision.settled_action
    return None if action is None or action.code == NO_ACTION else action.code


@dataclass(frozen=True)
class ActionRow:
    reviewer: str
    effect: ActionEffect


def action_rows(items: Iterable[QualityItem]) -> list[ActionRow]:
    """Per reviewer, the churn of the members their actions reached against the members the
    control group held out of them (`quality_stats.action_effect`): a case's action choice
    judged by randomization, never by whether the member redeemed."""
    by_reviewer: dict[str, list[tuple[bool, bool]]] = {}
    for item in items:
        if item.action is not None:
            by_reviewer.setdefault(item.reviewer, []).append((item.held_out, item.call.outcome))
    return [
        ActionRow(reviewer, action_effect(outcomes))
        for reviewer, outcomes in sorted(by_reviewer.items())
    ]


@dataclass(frozen=True)
class GroupRow:
    key: str
    label: str
    scores: GroupScores


def group_rows(
    items: Iterable[QualityItem],
    key: Callable[[QualityItem], str],
    labels: dict[str, str] | None = None,
) -> list[GroupRow]:
    """One row per value of `key`, in the order of the values, named by `labels`."""
    groups: dict[str, list[ScoredCall]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item.call)
    return [
        GroupRow(value, (labels or {}).get(value, value), score_group(calls))
        for value, calls in sorted(groups.items())
    ]


GROUP_KEYS: dict[str, Callable[[QualityItem], str]] = {
    "reviewer": lambda item: item.reviewer,
    "route": lambda item: item.route,
    "reason": lambda item: item.reason,
    "model_version": lambda item: item.model_version,
}


def disagreements(items: Iterable[QualityItem], *, sort: str = DEFAULT_SORT) -> list[QualityItem]:
    """The items where the person's call differed from the model's, in the `sort` order
    (ties: newest first, then by member)."""
    rows = sorted(
        (item for item in items if item.call.disagrees),
        key=lambda item: (item.decided_at, item.member),
        reverse=True,
    )
    if sort == "outcome":
        rows.sort(key=lambda item: not item.call.outcome)  # stable: churned first
    elif sort == "-outcome":
        rows.sort(key=lambda item: item.call.outcome)
    return rows


@dataclass(frozen=True)
class ReviewQuality:
    scope: str
    overall: GroupScores
    groups: dict[str, list[GroupRow]]
    by_month: list[GroupRow]
    disagreements: list[QualityItem]
    disagreement_count: int
    sort: str
    actions: list[ActionRow]


def review_quality(user, scope: str, *, sort: str = DEFAULT_SORT) -> ReviewQuality:
    """Everything the page shows, for what `user` may see in `scope`."""
    sort = sort if sort in SORTS else DEFAULT_SORT
    items = quality_items(user, scope)
    disagreeing = disagreements(items, sort=sort)
    return ReviewQuality(
        scope=scope,
        overall=score_group(item.call for item in items),
        groups={
            name: group_rows(items, GROUP_KEYS[name], ROUTE_LABELS if name == "route" else None)
            for name in GROUPINGS
        },
        by_month=group_rows(items, lambda item: item.month),
        disagreements=disagreeing[:DISAGREEMENTS_SHOWN],
        disagreement_count=len(disagreeing),
        sort=sort,
        actions=action_rows(items),
    )
