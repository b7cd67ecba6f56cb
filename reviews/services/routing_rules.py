"""The routing rules: where one prediction goes and why, in words a person can read.

Rules, in order (the policy version holds the thresholds; a tier, an RFM segment or a custom
segment, a rule over member data stored in the version, may override the two confidence
thresholds: `override_thresholds`):
1. member value (spend over the last year) above the policy's value quantile of the
   population (`ValueScale`: the latest full scoring run's members, so that a partial run of
   100 re-scored members does not send its own top 5 % to experts) -> expert,
   "member value in top 5 %";
2. confidence below the expert threshold -> expert;
3. confidence at or above the auto-approve threshold -> auto-approved, unless the churn risk
   lies in the band that always needs a person, or the prediction falls in the audit sample
   (a deterministic hash of its id, so routing twice gives the same answer) -> analyst;
4. otherwise -> analyst.
While the calibration monitor has paused auto-approval of the kind, what rule 3 would
auto-approve goes to an analyst instead, saying so. A case (`cases`) is routed on each side by
its own kind's rule and goes where the more demanding side sends it (`case_route`).

Routing, re-routing and the simulation all route by these (`routing`, `rerouting`,
`simulation`).
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from predictions.models import PredictionKind
from predictions.selectors import population_value_points
from reviews.custom_segments import is_custom_segment_key
from reviews.models import Review
from reviews.policy_settings import TIER_KEY_PREFIX, PolicySettings, rfm_override_key
from reviews.selectors.pauses import open_pause


@dataclass(frozen=True)
class RouteChoice:
    route: str
    reason: str


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
        self,
        *,
        prediction_id: int,
        confidence: float,
        risk: float | None,
        value: float,
        tier: str,
        rfm_segment: str = "",
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
            rfm_segment=rfm_segment,
            paused=self.paused,
        )


def is_for_people(route: str) -> bool:
    """Whether a person works items of this route (an analyst or an expert; the audit sample
    is an analyst's): those get their explanation when they are routed."""
    return route != Review.Route.AUTO


def routing_rule(*, kind: str, settings: PolicySettings, scale: "ValueScale") -> RoutingRule:
    """The rule for routing members whose population's values are `scale`, with the pause of
    `kind` that is open now."""
    pause = open_pause(kind)
    return RoutingRule(
        kind=kind,
        settings=settings,
        value_threshold=scale.threshold(settings.expert_value_quantile),
        paused=pause.reason if pause is not None else "",
    )


class RulesByVersion:
    """The rule of each policy version a routing or re-routing run meets, built once per run
    (a rule reads the open pause) on the run's value scale."""

    def __init__(self, scale: "ValueScale") -> None:
        self.scale = scale
        self.built: dict[tuple[str, int], RoutingRule] = {}

    def of(self, kind: str, policy) -> RoutingRule:
        """The rule of `policy` (an EscalationPolicy of `kind`)."""
        key = (kind, policy.version)
        if key not in self.built:
            settings = PolicySettings.of(policy)
            self.built[key] = routing_rule(kind=kind, settings=settings, scale=self.scale)
        return self.built[key]


@dataclass(frozen=True)
class ValueScale:
    """Where member values stand in the population: sorted points of its values (every value,
    or a full scoring run's evenly spaced quantiles of them). The expert value threshold is a
    quantile of the points; a member's value percentile is the share of points at or below
    its value. Routing, re-routing and the simulation read one scale, so that routing a few
    members gives each the route and priority that routing everyone would."""

    points: np.ndarray

    @classmethod
    def of(cls, values) -> "ValueScale":
        return cls(np.sort(np.asarray(values, dtype="float64")))

    def threshold(self, quantile: float) -> float | None:
        """The member value above which an expert decides (None: no population yet)."""
        return float(np.quantile(self.points, quantile)) if len(self.points) else None

    def percentiles(self, values) -> np.ndarray:
        values = np.asarray(values, dtype="float64")
        if not len(self.points):
            return np.zeros(len(values))
        return np.searchsorted(self.points, values, side="right") / len(self.points)


def population_scale(fallback_values: Callable[[], np.ndarray]) -> ValueScale:
    """The population's scale: the latest full scoring run's value points, or, before any
    full run stored them, `fallback_values()` (the values of what is being routed), read
    only then: a million predictions' values are not read to be thrown away."""
    points = population_value_points()
    if points:
        return ValueScale(np.asarray(points, dtype="float64"))
    return ValueScale.of(fallback_values())


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
    rfm_segment: str = "",
) -> RouteChoice:
    """The route of one prediction and why (the rules in the module docstring). `paused`:
    why auto-approval is paused for this kind (empty when it is not): a would-be
    auto-approval then goes to an analyst."""
    auto, expert = override_thresholds(settings, tier=tier, rfm_segment=rfm_segment, value=value)
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


AUTO_KEY, EXPERT_KEY = "auto_approve_confidence", "expert_confidence"


def matching_overrides(
    settings: PolicySettings, *, tier: str, rfm_segment: str, value: float | None = None
) -> list[dict]:
    """The overrides of `settings` that apply to a member of this tier, RFM segment and member
    value: its tier's, its RFM segment's and every custom segment whose rule it matches
    (`reviews.custom_segments`; a value of None is within no custom segment's bound)."""
    overrides = settings.segment_overrides or {}
    if not overrides:
        return []
    keys = [tier, f"{TIER_KEY_PREFIX}{tier}"] if tier else []
    if rfm_segment:
        keys.append(rfm_override_key(rfm_segment))
    keys += [
        segment.key
        for segment in settings.custom_segments
        if segment.matches(tier=tier, rfm_segment=rfm_segment, value=value)
    ]
    return [overrides[key] for key in keys if key in overrides]


def override_thresholds(
    settings: PolicySettings, *, tier: str, rfm_segment: str = "", value: float | None = None
) -> tuple[float, float]:
    """The auto-approve and expert confidence thresholds of a member of this tier, RFM segment
    and member value. Precedence: where no override matches, the policy's; where one matches
    (a tier's, an RFM segment's or a custom segment's), what it sets; where several match,
    each threshold takes the most demanding value they set (the highest auto-approve, the
    highest expert threshold), so that no override makes a member less looked at than another
    that matches says."""
    matching = matching_overrides(settings, tier=tier, rfm_segment=rfm_segment, value=value)
    autos = [float(o[AUTO_KEY]) for o in matching if AUTO_KEY in o]
    experts = [float(o[EXPERT_KEY]) for o in matching if EXPERT_KEY in o]
    return (
        max(autos) if autos else float(settings.auto_approve_confidence),
        max(experts) if experts else float(settings.expert_confidence),
    )


@dataclass(frozen=True)
class ThresholdColumns:
    """`override_thresholds` of many rows at once: each row's auto-approve and expert
    threshold, and whether an override sets its auto-approve threshold."""

    auto: np.ndarray
    expert: np.ndarray
    auto_overridden: np.ndarray


def threshold_columns(
    settings: PolicySettings, *, tiers: np.ndarray, rfm_segments: np.ndarray, values: np.ndarray
) -> ThresholdColumns:
    """`override_thresholds` for every row (the simulation's vectorized routing): the tier's
    and RFM segment's overrides once per distinct (tier, RFM segment), each custom segment's
    as a mask over the columns; each threshold the highest that an override sets, else the
    policy's."""
    n = len(tiers)
    # -inf: no override sets the threshold of the row (yet).
    auto = np.full(n, -np.inf)
    expert = np.full(n, -np.inf)
    if settings.segment_overrides and n:
        _fold_segment_overrides(settings, tiers, rfm_segments, auto=auto, expert=expert)
        overrides = settings.segment_overrides
        # Categoricals: each rule's membership tests read small integer codes, not strings.
        tier_categories = pd.Categorical(np.asarray(tiers, dtype=object))
        segment_categories = pd.Categorical(np.asarray(rfm_segments, dtype=object))
        for segment in settings.custom_segments:
            rows = segment.mask(
                tiers=tier_categories, rfm_segments=segment_categories, values=values
            )
            own = overrides[segment.key]
            if AUTO_KEY in own:
                auto[rows] = np.maximum(auto[rows], float(own[AUTO_KEY]))
            if EXPERT_KEY in own:
                expert[rows] = np.maximum(expert[rows], float(own[EXPERT_KEY]))
    overridden = auto > -np.inf
    return ThresholdColumns(
        auto=np.where(overridden, auto, float(settings.auto_approve_confidence)),
        expert=np.where(expert > -np.inf, expert, float(settings.expert_confidence)),
        auto_overridden=overridden,
    )


def _fold_segment_overrides(
    settings: PolicySettings,
    tiers: np.ndarray,
    rfm_segments: np.ndarray,
    *,
    auto: np.ndarray,
    expert: np.ndarray,
) -> None:
    """Raise `auto` and `expert` (in place) to what each row's tier and RFM segment
    overrides set, computed once per distinct (tier, RFM segment)."""
    plain = replace(settings, segment_overrides=_without_custom(settings.segment_overrides))
    if not plain.segment_overrides:
        return
    # One string per row (tiers and segments hold no control characters), factorized once.
    pairs = pd.Series(tiers, dtype=str) + "\x1f" + pd.Series(rfm_segments, dtype=str)
    codes, uniques = pd.factorize(pairs)
    for code, pair in enumerate(uniques):
        tier, rfm_segment = pair.split("\x1f")
        matching = matching_overrides(plain, tier=tier, rfm_segment=rfm_segment)
        autos = [float(o[AUTO_KEY]) for o in matching if AUTO_KEY in o]
        experts = [float(o[EXPERT_KEY]) for o in matching if EXPERT_KEY in o]
        rows = codes == code
        if autos:
            auto[rows] = np.maximum(auto[rows], max(autos))
        if experts:
            expert[rows] = np.maximum(expert[rows], max(experts))


def _without_custom(overrides: dict) -> dict:
    return {key: o for key, o in overrides.items() if not is_custom_segment_key(key)}


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


# How demanding each route is: a case takes its more demanding side's.
ROUTE_DEMAND = {Review.Route.AUTO: 0, Review.Route.ANALYST: 1, Review.Route.EXPERT: 2}


def case_route(churn: RouteChoice, action: RouteChoice) -> RouteChoice:
    """The route of a case from its two sides' choices: the more demanding one (the churn side
    on a tie), its reason naming the side after it (the queue filters reasons by how they
    begin); auto-approved only when both sides are."""
    if churn.route == action.route == Review.Route.AUTO:
        return RouteChoice(
            Review.Route.AUTO, f"{churn.reason} (churn call); {action.reason} (next action)"[:300]
        )
    if ROUTE_DEMAND[action.route] > ROUTE_DEMAND[churn.route]:
        return RouteChoice(action.route, f"{action.reason} (next action)"[:300])
    return RouteChoice(churn.route, f"{churn.reason} (churn call)"[:300])


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


@dataclass(frozen=True)
class ReviewRules:
    """The rule of the reviews' kind, and for cases the next-action rule of their action side
    (`cases.case_route` combines the two)."""

    main: RoutingRule
    action: RoutingRule | None = None

    def route(
        self,
        *,
        prediction_id: int,
        confidence: float,
        risk: float | None,
        value: float,
        tier: str,
        rfm_segment: str = "",
        action_prediction_id: int | None = None,
        action_confidence: float | None = None,
    ) -> RouteChoice:
        choice = self.main.route(
            prediction_id=prediction_id,
            confidence=confidence,
            risk=risk,
            value=value,
            tier=tier,
            rfm_segment=rfm_segment,
        )
        if self.action is None or action_prediction_id is None:
            return choice
        action_choice = self.action.route(
            prediction_id=action_prediction_id,
            confidence=action_confidence,
            risk=risk,
            value=value,
            tier=tier,
            rfm_segment=rfm_segment,
        )
        return case_route(choice, action_choice)
