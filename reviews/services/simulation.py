"""What-if for escalation thresholds: what a policy would do to today's reviews that no person
decided.

Read-only. The population is the reviews no person decided or escalated
(`rerouting.routed_population`):
the pending ones, which saving re-routes, and the auto-approved ones, whose policy decisions
stand but which show what the thresholds would do at the next scoring of the same members. It
is read column-wise into numpy arrays in one read and routed by `routing_rules.RoutingRule`
vectorized, for the page to answer while an admin types (a test holds the two equal: routing
the same predictions afresh under the policy gives the simulated counts).

Expected error among auto-approved items, from the calibrated probabilities: a churn call is
wrong with chance min(p, 1 - p); a next action with chance 1 - score (1 - confidence where a
score is missing). Observed: among the most recent decided reviews (DECIDED_SAMPLE_SIZE), those
the thresholds would auto-approve, and the share of them that people overrode.
"""

from dataclasses import dataclass, replace

import numpy as np
from django.db.models import Subquery

from loyalty.query_frames import values_frame
from predictions.ml.segments import RFM_SEGMENT_NAMES
from predictions.models import PredictionKind
from reviews.models import Decision, Review
from reviews.policy_settings import PolicySettings
from reviews.selectors.policy import current_policy
from reviews.services.rerouting import routed_by, routed_population
from reviews.services.routing_rules import (
    RoutingRule,
    audit_digest,
    human_risk_band,
    population_scale,
    threshold_columns,
)

# Enough past decisions for a stable override rate, few enough to read in well under a second.
DECIDED_SAMPLE_SIZE = 50_000
# The auto-approve thresholds of the workload curve: 0.50, 0.51, ... 0.99, each the double
# nearest its decimal, as a form would submit it.
CURVE_THRESHOLDS = np.round(np.arange(50, 100) / 100, 2)

AUTO, ANALYST, EXPERT = 0, 1, 2
ROUTE_CODES = {Review.Route.AUTO: AUTO, Review.Route.ANALYST: ANALYST, Review.Route.EXPERT: EXPERT}
ROUTE_NAMES = {code: route for route, code in ROUTE_CODES.items()}


@dataclass(frozen=True)
class ReviewColumns:
    """One array per field, one row per review."""

    prediction_id: np.ndarray  # int64
    confidence: np.ndarray  # float64
    risk: np.ndarray  # float64, nan where a review has no risk
    value: np.ndarray  # float64
    tier: np.ndarray  # object (str)
    rfm_segment: np.ndarray  # object (str), '' where a review has none
    score: np.ndarray  # float64, nan where the prediction has no score
    route: np.ndarray  # int8 route code now (ROUTE_CODES)
    is_override: np.ndarray  # bool: a person overrode the model (decided reviews only)
    # A case's other side, routed by its own kind's policy as it stands: the simulated side
    # can make the case no less demanding than this (AUTO for the reviews of one prediction).
    floor: np.ndarray  # int8 route code

    def __len__(self) -> int:
        return len(self.confidence)


@dataclass(frozen=True)
class WorkloadCurve:
    """Reviews per route for each auto-approve threshold, the other settings fixed."""

    thresholds: tuple[float, ...]
    auto: tuple[int, ...]
    analyst: tuple[int, ...]
    expert: tuple[int, ...]
    expected_error_rate: tuple[float | None, ...]


@dataclass(frozen=True)
class SegmentRoutes:
    """How many of one RFM segment's (or custom segment's) reviews each route gets now and
    under the thresholds being tried."""

    segment: str  # the RFM code ('' for reviews without one), or the custom segment's key
    name: str
    total: int
    current_counts: dict[str, int]
    counts: dict[str, int]


@dataclass(frozen=True)
class Simulation:
    kind: str
    total: int
    counts: dict[str, int]
    current_counts: dict[str, int]
    held_by_experts: int
    value_threshold: float | None
    expected_error_rate: float | None
    expected_errors: float
    observed_n: int
    observed_override_rate: float | None
    curve: WorkloadCurve
    # Per RFM segment, in the segment map's order (reviews without one last).
    segments: tuple[SegmentRoutes, ...] = ()
    # Per custom segment of the thresholds being tried, by name (a review may be in several).
    custom_segments: tuple[SegmentRoutes, ...] = ()


def simulate_policy(*, kind: str, settings: PolicySettings) -> Simulation:
    """Route today's undecided reviews of `kind` under `settings`, without writing anything.
    What the thresholds do with auto-approval on: an open pause is left out (every page shows
    it in its banner), so that an admin can tune thresholds while one is open."""
    columns = read_columns(routed_population(kind), kind=kind)
    rule = RoutingRule(
        kind=kind,
        settings=settings,
        value_threshold=population_scale(lambda: columns.value).threshold(
            settings.expert_value_quantile
        ),
        paused="",
    )
    sampled = audit_sample_of(columns, rule=rule)
    routes = route_codes(columns, rule=rule, audit_sampled=sampled)
    errors = error_chances(columns, kind=kind)
    is_auto = routes == AUTO
    n_auto = int(is_auto.sum())
    decided = read_columns(_decided_reviews(kind), kind=kind, decided=True)
    would_auto = route_codes(decided, rule=rule) == AUTO
    observed_n = int(would_auto.sum())
    return Simulation(
        kind=kind,
        total=len(columns),
        counts=_counts(routes),
        current_counts=_counts(columns.route),
        held_by_experts=Review.objects.filter(
            routed_by(kind), state=Review.State.PENDING, escalated_at__isnull=False
        ).count(),
        value_threshold=rule.value_threshold,
        expected_error_rate=float(errors[is_auto].mean()) if n_auto else None,
        expected_errors=float(errors[is_auto].sum()),
        observed_n=observed_n,
        observed_override_rate=(
            float(decided.is_override[would_auto].mean()) if observed_n else None
        ),
        curve=workload_curve(columns, rule=rule, errors=errors, audit_sampled=sampled),
        segments=segment_routes(columns, routes),
        custom_segments=custom_segment_routes(columns, routes, settings=settings),
    )


def segment_routes(columns: ReviewColumns, routes: np.ndarray) -> tuple[SegmentRoutes, ...]:
    """Per RFM segment present, its reviews' routes now and under `routes`."""
    present = set(columns.rfm_segment.tolist())
    order = [code for code in RFM_SEGMENT_NAMES if code in present]
    order += sorted(present - set(order) - {""}) + ([""] if "" in present else [])
    return tuple(
        SegmentRoutes(
            segment=code,
            name=RFM_SEGMENT_NAMES.get(code, code) if code else "No RFM segment",
            total=int(rows.sum()),
            current_counts=_counts(columns.route[rows]),
            counts=_counts(routes[rows]),
        )
        for code in order
        for rows in [columns.rfm_segment == code]
    )


def custom_segment_routes(
    columns: ReviewColumns, routes: np.ndarray, *, settings: PolicySettings
) -> tuple[SegmentRoutes, ...]:
    """Per custom segment of `settings`, its reviews' routes now and under `routes` (the
    rule read as a mask over the columns, as the routing of them reads it)."""
    return tuple(
        SegmentRoutes(
            segment=segment.key,
            name=segment.name,
            total=int(rows.sum()),
            current_counts=_counts(columns.route[rows]),
            counts=_counts(routes[rows]),
        )
        for segment in settings.custom_segments
        for rows in [
            segment.mask(tiers=columns.tier, rfm_segments=columns.rfm_segment, values=columns.value)
        ]
    )


def read_columns(reviews, *, kind: str, decided: bool = False) -> ReviewColumns:
    """The routing inputs of `reviews` for the `kind` side of each, in one read
    (`loyalty.query_frames`: COPY on PostgreSQL). A case is read twice over: its `kind` side's
    prediction and confidence, and its other side routed as it stands (`floor`)."""
    types = {
        "prediction_id": "int64",
        "confidence": "float64",
        "risk": "float64",
        "member_value": "float64",
        "tier": "string",
        "rfm_segment": "string",
        "prediction__score": "float64",
        "route": "string",
        "action_prediction_id": "float64",  # NULL is nan: not a case
        "prediction__confidence": "float64",
        "action_prediction__confidence": "float64",
        "action_prediction__score": "float64",
    }
    if decided:
        types["decision__verdict"] = "string"
    frame = values_frame(reviews.order_by("pk"), types)
    is_case = frame["action_prediction_id"].notna().to_numpy(dtype=bool)
    sides = {
        PredictionKind.CHURN: (
            frame["prediction_id"].to_numpy(dtype="float64"),
            frame["prediction__confidence"].to_numpy(dtype="float64"),
        ),
        PredictionKind.NEXT_ACTION: (
            frame["action_prediction_id"].to_numpy(dtype="float64"),
            frame["action_prediction__confidence"].to_numpy(dtype="float64"),
        ),
    }
    prediction_id = frame["prediction_id"].to_numpy(dtype="int64")
    confidence = frame["confidence"].to_numpy(dtype="float64")
    own_ids, own_confidence = sides[kind]
    prediction_id = np.where(is_case, np.nan_to_num(own_ids), prediction_id).astype("int64")
    confidence = np.where(is_case, own_confidence, confidence)
    score = frame["prediction__score"].to_numpy(dtype="float64")
    if kind == PredictionKind.NEXT_ACTION:
        score = np.where(is_case, frame["action_prediction__score"].to_numpy("float64"), score)
    columns = ReviewColumns(
        prediction_id=prediction_id,
        confidence=confidence,
        risk=frame["risk"].to_numpy(dtype="float64"),  # NULL is nan
        value=frame["member_value"].to_numpy(dtype="float64"),
        tier=frame["tier"].fillna("").to_numpy(dtype=object),
        rfm_segment=frame["rfm_segment"].fillna("").to_numpy(dtype=object),
        score=score,
        route=frame["route"].map(ROUTE_CODES).fillna(ANALYST).to_numpy(dtype="int8"),
        is_override=(
            (frame["decision__verdict"] == Decision.Verdict.OVERRIDE).to_numpy(dtype=bool)
            if decided
            else np.zeros(len(frame), dtype=bool)
        ),
        floor=np.full(len(frame), AUTO, dtype="int8"),
    )
    if not is_case.any():
        return columns
    other = OTHER_KIND[kind]
    other_ids, other_confidence = sides[other]
    other_side = replace(
        columns,
        prediction_id=np.nan_to_num(other_ids).astype("int64"),
        confidence=other_confidence,
    )
    other_settings = PolicySettings.of(current_policy(other))
    other_rule = RoutingRule(
        kind=other,
        settings=other_settings,
        value_threshold=population_scale(lambda: columns.value).threshold(
            other_settings.expert_value_quantile
        ),
        paused="",
    )
    floor = np.where(is_case, route_codes(other_side, rule=other_rule), AUTO).astype("int8")
    return replace(columns, floor=floor)


OTHER_KIND = {
    PredictionKind.CHURN: PredictionKind.NEXT_ACTION,
    PredictionKind.NEXT_ACTION: PredictionKind.CHURN,
}


def _decided_reviews(kind: str):
    """The most recent reviews people decided (the policy's own approvals tell nothing about
    how often people disagree)."""
    recent = (
        Review.objects.filter(routed_by(kind), decision__isnull=False)
        .exclude(decision__decided_as=Decision.POLICY)
        .order_by("-decided_at", "-pk")
        .values("pk")[:DECIDED_SAMPLE_SIZE]
    )
    return Review.objects.filter(pk__in=Subquery(recent))


def route_codes(
    columns: ReviewColumns, *, rule: RoutingRule, audit_sampled: np.ndarray | None = None
) -> np.ndarray:
    """`rule.route` for every row at once: an int8 route code per review. `audit_sampled`
    may carry the audit-sample membership computed already for at least the auto candidates."""
    is_expert, may_be_auto, auto_threshold = _route_parts(columns, rule)
    is_auto = may_be_auto & (columns.confidence >= auto_threshold)
    if audit_sampled is None:
        audit_sampled = _in_audit_sample(
            columns, rule.settings.audit_sample_rate, candidates=is_auto
        )
    is_auto &= ~audit_sampled
    routes = np.full(len(columns), ANALYST, dtype="int8")
    routes[is_expert] = EXPERT
    routes[is_auto] = AUTO
    return np.maximum(routes, columns.floor)


def _route_parts(
    columns: ReviewColumns, rule: RoutingRule
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expert (by value or low confidence); auto-approved once confident enough (not held by the
    risk band or a pause); each row's auto-approve threshold."""
    settings = rule.settings
    thresholds = threshold_columns(
        settings, tiers=columns.tier, rfm_segments=columns.rfm_segment, values=columns.value
    )
    auto_threshold, expert_threshold = thresholds.auto, thresholds.expert
    is_expert = columns.confidence < expert_threshold
    if rule.value_threshold is not None:
        is_expert |= columns.value > rule.value_threshold
    may_be_auto = ~is_expert
    band = human_risk_band(settings, rule.kind)
    if band is not None:
        with np.errstate(invalid="ignore"):  # nan risk is in no band
            may_be_auto &= ~((columns.risk >= band[0]) & (columns.risk <= band[1]))
    if rule.paused:
        may_be_auto[:] = False
    return is_expert, may_be_auto, auto_threshold


def audit_sample_of(columns: ReviewColumns, *, rule: RoutingRule) -> np.ndarray:
    """Audit-sample membership of every row that some auto-approve threshold could approve.
    The sample is fixed by prediction id whatever the threshold, so one hashing pass serves the
    routes and the whole workload curve."""
    _, may_be_auto, _ = _route_parts(columns, rule)
    return _in_audit_sample(columns, rule.settings.audit_sample_rate, candidates=may_be_auto)


def _in_audit_sample(columns: ReviewColumns, rate: float, *, candidates: np.ndarray) -> np.ndarray:
    """`routing_rules.in_audit_sample` for the candidate rows (hashing is the costly part)."""
    sampled = np.zeros(len(columns), dtype=bool)
    if rate <= 0 or not candidates.any():
        return sampled
    digests = b"".join(audit_digest(int(i)) for i in columns.prediction_id[candidates])
    # A uint64 divided by 2**64 in float64 equals Python's int / 2**64 (both round the same).
    share = np.frombuffer(digests, dtype=">u8").astype("float64") / 2.0**64
    sampled[candidates] = share < rate
    return sampled


def error_chances(columns: ReviewColumns, *, kind: str) -> np.ndarray:
    """The calibrated chance that each row's model call is wrong (module docstring)."""
    if kind == PredictionKind.CHURN:
        p = np.where(np.isnan(columns.score), columns.risk, columns.score)
        return np.minimum(p, 1 - p)
    return 1 - np.where(np.isnan(columns.score), columns.confidence, columns.score)


def workload_curve(
    columns: ReviewColumns,
    *,
    rule: RoutingRule,
    errors: np.ndarray,
    audit_sampled: np.ndarray | None = None,
) -> WorkloadCurve:
    """Route counts for every auto-approve threshold in CURVE_THRESHOLDS, in one sort.

    Only rows without an override of the auto threshold (of their tier, RFM segment or a
    custom segment) move
    with it: they are auto-approved when their confidence reaches it, unless a rule
    independent of it holds them back.
    """
    is_expert, may_be_auto, _ = _route_parts(columns, rule)
    sampled = audit_sampled
    if sampled is None:
        sampled = _in_audit_sample(columns, rule.settings.audit_sample_rate, candidates=may_be_auto)
    follows_default = ~threshold_columns(
        rule.settings, tiers=columns.tier, rfm_segments=columns.rfm_segment, values=columns.value
    ).auto_overridden
    fixed = route_codes(columns, rule=rule, audit_sampled=sampled)
    fixed_auto = (fixed == AUTO) & ~follows_default
    # A case whose other side needs a person is never auto-approved, whatever this threshold.
    candidates = follows_default & may_be_auto & ~sampled & (columns.floor == AUTO)
    is_expert = is_expert | (columns.floor == EXPERT)
    order = np.argsort(columns.confidence[candidates], kind="stable")
    confidence = columns.confidence[candidates][order]
    suffix_errors = np.concatenate([np.cumsum(errors[candidates][order][::-1])[::-1], [0.0]])
    start = np.searchsorted(confidence, CURVE_THRESHOLDS, side="left")
    auto = (len(confidence) - start) + int(fixed_auto.sum())
    total_errors = suffix_errors[start] + float(errors[fixed_auto].sum())
    expert = int(is_expert.sum())
    analyst = len(columns) - expert - auto
    return WorkloadCurve(
        thresholds=tuple(float(t) for t in CURVE_THRESHOLDS),
        auto=tuple(int(n) for n in auto),
        analyst=tuple(int(n) for n in analyst),
        expert=tuple(expert for _ in CURVE_THRESHOLDS),
        expected_error_rate=tuple(
            float(e / n) if n else None for e, n in zip(total_errors, auto, strict=True)
        ),
    )


def _counts(routes: np.ndarray) -> dict[str, int]:
    return {route: int((routes == code).sum()) for route, code in ROUTE_CODES.items()}


def simulated_backlog(simulation: Simulation, *, route: str, capacity: int | None) -> int:
    """How many of the items the simulation sends to `route` would wait in its backlog under
    `capacity` (`capacity`): those beyond it, counting the experts' escalated items, which
    sit in their queue whatever the thresholds."""
    if capacity is None or route == Review.Route.AUTO:
        return 0
    held = simulation.held_by_experts if route == Review.Route.EXPERT else 0
    return max(simulation.counts[route] + held - capacity, 0)
