"""Which action a next-action review recommends, and what each eligible action is worth.

Routing ranks a batch at once (`rank_batch`), by the routing policy's `ranking`
(`predictions.ml.action_value`): propensity, the model's likeliest action, or expected value,
P(churn) x retention gain x member value - cost with the member's latest churn probability.
The member page ranks one review's actions the same way (`ranked_actions`), with each
formula's numbers, so that a person sees why the recommendation won.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loyalty.models import Action
from loyalty.services.catalog import NO_ACTION
from predictions.ml import action_value
from predictions.models import Prediction, PredictionKind
from predictions.services.scoring.predict import action_eligibility
from reviews.models import Review


@dataclass(frozen=True)
class Catalog:
    """The active actions, in code order, as the ranking's arrays."""

    codes: tuple[str, ...]
    ids: tuple[int, ...]
    names: tuple[str, ...]
    gains: np.ndarray
    costs: np.ndarray

    @classmethod
    def load(cls) -> "Catalog":
        rows = list(
            Action.objects.filter(is_active=True)
            .order_by("code")
            .values_list("code", "pk", "name", "retention_gain", "cost")
        )
        codes, ids, names, gains, costs = zip(*rows, strict=True) if rows else ((),) * 5
        return cls(
            codes=tuple(codes),
            ids=tuple(ids),
            names=tuple(names),
            gains=np.array(gains, dtype="float64"),
            costs=np.array([float(cost) for cost in costs], dtype="float64"),
        )

    @property
    def baseline(self) -> int | None:
        return self.codes.index(NO_ACTION) if NO_ACTION in self.codes else None


@dataclass(frozen=True)
class BatchRanking:
    """Per member of a batch: the recommended action's id (None: none), its expected value
    (None: no churn score to weigh it with) and the churn probability used (None: none)."""

    action_ids: list[int | None]
    expected_values: list[float | None]
    churn_probabilities: list[float | None]


def latest_churn_probabilities(member_ids: Sequence[int]) -> dict[int, float]:
    """Each member's newest churn probability (the members without one are left out)."""
    rows = (
        Prediction.objects.filter(
            kind=PredictionKind.CHURN, member_id__in=member_ids, score__isnull=False
        )
        .order_by("member_id", "-scored_at", "-pk")
        .values_list("member_id", "score")
    )
    newest: dict[int, float] = {}
    for member_id, score in rows:
        newest.setdefault(member_id, score)
    return newest


def rank_batch(
    *,
    ranking: str,
    member_ids: Sequence[int],
    probabilities: Sequence[dict | None],
    values: Sequence[float],
    catalog: Catalog | None = None,
    churn_probabilities: Sequence[float | None] | None = None,
) -> BatchRanking:
    """The recommendation of each next-action prediction of a batch (`probabilities`: each
    prediction's {action code: probability}; `values`: the members' values). The churn
    probability weighed: `churn_probabilities` per row where given (a case's own), else the
    member's latest."""
    catalog = catalog or Catalog.load()
    member_ids = list(member_ids)
    if churn_probabilities is None:
        risks = latest_churn_probabilities(member_ids)
        churn_probabilities = [risks.get(pk) for pk in member_ids]
    churn = np.array(
        [np.nan if risk is None else risk for risk in churn_probabilities], dtype="float64"
    )
    propensities = np.array(
        [[float((row or {}).get(code) or 0.0) for code in catalog.codes] for row in probabilities],
        dtype="float64",
    ).reshape(len(member_ids), len(catalog.codes))
    eligible = (
        action_eligibility(member_ids=member_ids, codes=catalog.codes)
        .to_numpy(dtype=bool)
        .reshape(len(member_ids), len(catalog.codes))
    )
    worth = action_value.expected_values(
        churn_probability=churn,
        value=np.asarray(values, dtype="float64"),
        gains=catalog.gains,
        costs=catalog.costs,
    )
    result = action_value.recommend(
        ranking=ranking,
        propensities=propensities,
        eligible=eligible,
        values=worth,
        baseline=catalog.baseline,
    )
    return BatchRanking(
        action_ids=[catalog.ids[column] if column >= 0 else None for column in result.choice],
        expected_values=[
            None if np.isnan(value) else float(value) for value in result.expected_value
        ],
        churn_probabilities=[None if np.isnan(risk) else float(risk) for risk in churn],
    )


@dataclass(frozen=True)
class RankedAction:
    """One eligible action of a review as the member page shows it."""

    code: str
    name: str
    propensity: float
    gain: float
    cost: float
    expected_value: float | None
    is_recommended: bool


def ranked_actions(review: Review, catalog: Sequence[Action]) -> tuple[RankedAction, ...]:
    """The actions of `catalog` (the page's one read of it) the member is eligible for, in the
    order the review's policy ranks them, with the numbers of each one's expected value (None
    throughout when the member has no churn score: the review's `risk` is the probability
    routing weighed with)."""
    prediction = review.action_source
    if prediction is None or not prediction.probabilities:
        return ()
    value = review.member_value or 0.0
    rows = []
    for action in sorted(catalog, key=lambda action: action.code):
        if not action.is_eligible(review.member):
            continue
        gain, cost = float(action.retention_gain), float(action.cost)
        worth = (
            None
            if review.risk is None
            else action_value.expected_value(
                churn_probability=review.risk, gain=gain, value=value, cost=cost
            )
        )
        rows.append(
            RankedAction(
                code=action.code,
                name=action.name,
                propensity=float(prediction.probabilities.get(action.code) or 0.0),
                gain=gain,
                cost=cost,
                expected_value=worth,
                is_recommended=action.pk == review.recommended_action_id,
            )
        )
    by_value = (
        review.ranking_policy.ranking == action_value.EXPECTED_VALUE and review.risk is not None
    )

    def order(row: RankedAction) -> tuple:
        score = row.expected_value if by_value else row.propensity
        return (not row.is_recommended, -score, row.code)

    return tuple(sorted(rows, key=order))
