"""Routing: every new prediction gets a review with its route and a reason a person can read.

Rules, in order (the policy version holds the thresholds; a tier may override the two
confidence thresholds):
1. member value (spend over the last year) above the policy's value quantile of the
   predictions being routed -> expert, "member value in top 5 %";
2. confidence below the expert threshold -> expert;
3. confidence at or above the auto-approve threshold -> auto-approved, unless the churn risk
   lies in the band that always needs a person, or the prediction falls in the audit sample
   (a deterministic hash of its id, so routing twice gives the same answer) -> analyst;
4. otherwise -> analyst.
While the calibration monitor has paused auto-approval of the kind, what rule 3 would
auto-approve goes to an analyst instead, saying so.

Priority (higher first in the queues) = churn risk x (1 + value percentile) x (1.1 - confidence):
risky, valuable, uncertain members first. Next-action reviews carry no risk and use 0.5.

Routing needs no SHAP. Once a batch of reviews is committed, the predictions it gives to people
get their explanations (`predictions.services.explanations`), so that the queue's items open
at once; an auto-approved one is explained when someone first opens it.
"""

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from predictions.ml.contracts import MLError
from predictions.models import Prediction, PredictionKind
from predictions.services.explanations import explain_predictions
from reviews.models import EscalationPolicy, Review
from reviews.policy_settings import PolicySettings
from reviews.selectors.pauses import open_pause
from reviews.selectors.policy import current_policy

logger = logging.getLogger(__name__)

ROUTING_BATCH_SIZE = 5000
# The member value scoring stored beside the prediction (spend over the last 365 days).
VALUE_LOOKUP = "member_value"
NO_RISK = 0.5


@dataclass(frozen=True)
class RouteChoice:
    route: str
    reason: str


@dataclass(frozen=True)
class RoutingResult:
    routed: int
    by_route: dict[str, int]


@dataclass(frozen=True)
class RoutingRule:
    """The rule of one kind as it stands: a policy's settings, the member value above which an
    expert decides (over the population being routed) and why auto-approval is paused ('' when
    it is not). Routing and re-routing build it with `routing_rule`, so that neither can leave
    a part out; the simulation routes with it, vectorized."""

    kind: str
    settings: PolicySettings
    value_threshold: float | None
    paused: str

    def route(
        self, *, prediction_id: int, confidence: float, risk: float | None, value: float, tier: str
    ) -> RouteChoice:
        return choose_route(
            settings=self.settings,
            kind=self.kind,
            prediction_id=prediction_id,
            confidence=confidence,
            risk=risk,
            value=value,
            value_threshold=self.value_threshold,
            tier=tier,
            paused=self.paused,
        )


def is_for_people(route: str) -> bool:
    """Whether a person works items of this route (an analyst or an expert; the audit sample
    is an analyst's): those get their explanation when they are routed."""
    return route != Review.Route.AUTO


def routing_rule(*, kind: str, settings: PolicySettings, values: np.ndarray) -> RoutingRule:
    """The rule for routing a population whose member values are `values`, with the pause of
    `kind` that is open now."""
    pause = open_pause(kind)
    return RoutingRule(
        kind=kind,
        settings=settings,
        value_threshold=value_threshold_of(values, settings.expert_value_quantile),
        paused=pause.reason if pause is not None else "",
    )


def value_threshold_of(values: np.ndarray, quantile: float) -> float | None:
    """The member value above which an expert decides: the policy's quantile of `values`."""
    return float(np.quantile(values, quantile)) if len(values) else None


def choose_route(
    *,
    settings: PolicySettings,
    kind: str,
    prediction_id: int,
    confidence: float,
    risk: float | None,
    value: float,
    value_threshold: float | None,
    tier: str,
    paused: str,
) -> RouteChoice:
    """The route of one prediction and why (the rules in the module docstring). `paused`:
    why auto-approval is paused for this kind (empty when it is not): a would-be
    auto-approval then goes to an analyst."""
    auto, expert = tier_thresholds(settings, tier)
    # Strictly above: when many members share one value, none of them is 'the top'.
    if value_threshold is not None and value > value_threshold:
        top = round((1 - settings.expert_value_quantile) * 100)
        return RouteChoice(Review.Route.EXPERT, f"member value in top {top} %")
    if confidence < expert:
        return RouteChoice(
            Review.Route.EXPERT, f"confidence {confidence:.2f} < expert threshold {expert:.2f}"
        )
    if confidence >= auto:
        band = human_risk_band(settings, kind)
        if band is not None and risk is not None and band[0] <= risk <= band[1]:
            return RouteChoice(
                Review.Route.ANALYST,
                f"churn risk {risk:.2f} in the band that needs a person "
                f"({band[0]:.2f}–{band[1]:.2f})",
            )
        if in_audit_sample(prediction_id, settings.audit_sample_rate):
            return RouteChoice(
                Review.Route.ANALYST, f"audit sample ({settings.audit_sample_rate:.0%})"
            )
        if paused:
            return RouteChoice(Review.Route.ANALYST, f"auto-approval paused: {paused}"[:300])
        return RouteChoice(
            Review.Route.AUTO, f"confidence {confidence:.2f} ≥ auto-approve threshold {auto:.2f}"
        )
    return RouteChoice(
        Review.Route.ANALYST,
        f"confidence {confidence:.2f} between expert {expert:.2f} and auto-approve {auto:.2f}",
    )


def tier_thresholds(settings: PolicySettings, tier: str) -> tuple[float, float]:
    """The auto-approve and expert confidence thresholds of a tier (its override, if any)."""
    override = (settings.segment_overrides or {}).get(tier, {})
    return (
        float(override.get("auto_approve_confidence", settings.auto_approve_confidence)),
        float(override.get("expert_confidence", settings.expert_confidence)),
    )


def human_risk_band(settings: PolicySettings, kind: str) -> tuple[float, float] | None:
    """The churn risks (both ends included) that always need a person; None when no band
    applies (another kind, or no lower bound set)."""
    low, high = settings.human_risk_low, settings.human_risk_high
    if kind != PredictionKind.CHURN or low is None:
        return None
    return low, high if high is not None else 1.0


def audit_digest(prediction_id: int) -> bytes:
    """Eight bytes fixed by the prediction id: its place in (or out of) the audit sample."""
    return hashlib.blake2b(str(prediction_id).encode(), digest_size=8).digest()


def in_audit_sample(prediction_id: int, rate: float) -> bool:
    """Deterministic: the same prediction is in or out of the sample every time."""
    return int.from_bytes(audit_digest(prediction_id), "big") / 2**64 < rate


def routed_fields(choice: RouteChoice, *, routed_at: datetime, sla_hours: int) -> dict:
    """The review fields that follow from a route: an auto-approval has no deadline, a
    person's item is pending and due `sla_hours` after it was routed."""
    is_auto = choice.route == Review.Route.AUTO
    return {
        "route": choice.route,
        "state": Review.State.AUTO_APPROVED if is_auto else Review.State.PENDING,
        "route_reason": choice.reason,
        "routed_at": routed_at,
        "due_at": None if is_auto else routed_at + timedelta(hours=sla_hours),
    }


def priority(*, risk: float | None, value_percentile: float, confidence: float) -> float:
    return (NO_RISK if risk is None else risk) * (1 + value_percentile) * (1.1 - confidence)


def route_new_predictions(*, kind: str, model_version_id: int | None = None) -> RoutingResult:
    """Give every prediction of `kind` that has no review yet its review. Idempotent: a
    prediction routed already is skipped; reruns route nothing twice (unique prediction)."""
    policy = current_policy(kind)
    unrouted = Prediction.objects.filter(kind=kind, review__isnull=True)
    if model_version_id is not None:
        unrouted = unrouted.filter(model_version_id=model_version_id)
    values = _member_values(unrouted)
    rule = routing_rule(kind=kind, settings=PolicySettings.of(policy), values=values)
    sorted_values = np.sort(values)
    counts: dict[str, int] = {}
    last_id = 0
    while True:
        batch = list(
            unrouted.filter(pk__gt=last_id)
            .order_by("pk")
            .values_list("pk", "member_id", "score", "confidence", VALUE_LOOKUP, "member__tier")[
                :ROUTING_BATCH_SIZE
            ]
        )
        if not batch:
            break
        last_id = batch[-1][0]
        reviews = [_review(policy, rule, row, sorted_values) for row in batch]
        with transaction.atomic():
            Review.objects.bulk_create(reviews, ignore_conflicts=True)
            supersede_older_reviews(kind=kind, member_ids=[row[1] for row in batch])
        for review in reviews:
            counts[review.route] = counts.get(review.route, 0) + 1
        _explain_for_people(reviews)
    return RoutingResult(routed=sum(counts.values()), by_route=counts)


def _explain_for_people(reviews: list[Review]) -> None:
    """The explanations of the batch's predictions that people will work, after the batch
    committed. An engine error (a corrupted artifact) leaves them to be explained when opened:
    the routing itself stands."""
    ids = [review.prediction_id for review in reviews if is_for_people(review.route)]
    try:
        explain_predictions(prediction_ids=ids)
    except MLError:
        logger.exception("explaining %d routed predictions failed", len(ids))


def supersede_older_reviews(*, kind: str, member_ids: list[int]) -> int:
    """Undecided reviews of these members that a newer prediction of the same kind replaced
    (a re-score, a new model version) leave the queues: nobody should decide on stale
    numbers. Decided and auto-approved reviews stay as the history they are."""
    newer = Review.objects.filter(
        kind=kind,
        member_id=OuterRef("member_id"),
        prediction__scored_at__gt=OuterRef("prediction__scored_at"),
    )
    return (
        Review.objects.filter(kind=kind, state=Review.State.PENDING, member_id__in=member_ids)
        .filter(Exists(newer))
        .update(state=Review.State.SUPERSEDED)
    )


def _member_values(predictions) -> np.ndarray:
    values = predictions.values_list(VALUE_LOOKUP, flat=True).iterator(chunk_size=5000)
    return np.array([_value(value) for value in values], dtype="float64")


def _value(value: float | str | None) -> float:
    return float(value) if value is not None else 0.0


def _review(
    policy: EscalationPolicy, rule: RoutingRule, row: tuple, sorted_values: np.ndarray
) -> Review:
    prediction_id, member_id, score, confidence, raw_value, tier = row
    value = _value(raw_value)
    risk = score if rule.kind == PredictionKind.CHURN else None
    choice = rule.route(
        prediction_id=prediction_id, confidence=confidence, risk=risk, value=value, tier=tier or ""
    )
    percentile = (
        float(np.searchsorted(sorted_values, value, side="right")) / len(sorted_values)
        if len(sorted_values)
        else 0.0
    )
    return Review(
        prediction_id=prediction_id,
        member_id=member_id,
        kind=rule.kind,
        policy=policy,
        priority=priority(risk=risk, value_percentile=percentile, confidence=confidence),
        tier=tier or "",
        member_value=value,
        risk=risk,
        confidence=confidence,
        **routed_fields(choice, routed_at=timezone.now(), sla_hours=policy.sla_hours),
    )
