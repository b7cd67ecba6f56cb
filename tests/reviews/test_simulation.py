"""Simulation: the vectorized rules equal choose_route, counts and expected errors are exact."""

from dataclasses import replace

import numpy as np
import pytest

from reviews.models import Review
from reviews.policy_settings import PolicySettings
from reviews.services.decisions import approve_prediction, override_prediction
from reviews.services.policy import change_policy
from reviews.services.rerouting import reroute_undecided
from reviews.services.routing import route_new_predictions
from reviews.services.routing_rules import RoutingRule
from reviews.services.simulation import (
    CURVE_THRESHOLDS,
    ROUTE_NAMES,
    ReviewColumns,
    audit_sample_of,
    error_chances,
    route_codes,
    simulate_policy,
    workload_curve,
)
from tests.factories import ModelVersionFactory, PredictionFactory

EXACT = PolicySettings(
    auto_approve_confidence=0.9,
    expert_confidence=0.5,
    expert_value_quantile=0.95,
    human_risk_low=None,
    human_risk_high=None,
    audit_sample_rate=0.0,
)
POLICIES = [
    PolicySettings(),
    PolicySettings(
        auto_approve_confidence=0.8,
        expert_confidence=0.6,
        expert_value_quantile=0.9,
        human_risk_low=0.4,
        human_risk_high=0.7,
        audit_sample_rate=0.3,
        segment_overrides={
            "gold": {"auto_approve_confidence": 0.95, "expert_confidence": 0.7},
            "bronze": {"expert_confidence": 0.3},
        },
    ),
    PolicySettings(human_risk_low=0.5, human_risk_high=None, audit_sample_rate=1.0),
    PolicySettings(auto_approve_confidence=0.6, expert_confidence=0.6, human_risk_low=None),
    # RFM segments' overrides beside tiers' (both matching: the more demanding threshold).
    PolicySettings(
        auto_approve_confidence=0.85,
        expert_confidence=0.55,
        audit_sample_rate=0.1,
        segment_overrides={
            "rfm:at_risk": {"auto_approve_confidence": 0.97, "expert_confidence": 0.75},
            "rfm:champions": {"auto_approve_confidence": 0.7},
            "tier:gold": {"auto_approve_confidence": 0.92, "expert_confidence": 0.65},
        },
    ),
]
PAUSES = ["", "calibration error above its limit"]
TIERS = np.array(["bronze", "silver", "gold", "platinum", ""], dtype=object)
RFM_SEGMENTS = np.array(["at_risk", "champions", "loyal", ""], dtype=object)
ROWS = 3000


def _rule(policy: PolicySettings, kind: str, columns: ReviewColumns, paused: str = ""):
    threshold = float(np.quantile(columns.value, policy.expert_value_quantile))
    return RoutingRule(kind=kind, settings=policy, value_threshold=threshold, paused=paused)


def _random_columns(size: int, seed: int) -> ReviewColumns:
    rng = np.random.default_rng(seed)
    # Two decimals, so that many confidences and risks sit exactly on a threshold.
    risk = np.round(rng.random(size), 2)
    risk[rng.random(size) < 0.1] = np.nan
    return ReviewColumns(
        prediction_id=rng.integers(1, 10**9, size),
        confidence=np.round(rng.random(size), 2),
        risk=risk,
        value=np.round(rng.exponential(200, size), 0),
        tier=rng.choice(TIERS, size),
        rfm_segment=rng.choice(RFM_SEGMENTS, size),
        score=risk,
        route=np.zeros(size, dtype="int8"),
        is_override=np.zeros(size, dtype=bool),
        floor=np.zeros(size, dtype="int8"),
    )


def _with_edges(columns: ReviewColumns, rule: RoutingRule, seed: int) -> ReviewColumns:
    """A third of the rows moved onto a threshold of the rule or the next double either side:
    confidences on every tier's thresholds, risks on the band's ends, values on the value
    threshold."""
    settings = rule.settings
    confidences = {settings.auto_approve_confidence, settings.expert_confidence}
    for override in (settings.segment_overrides or {}).values():
        confidences |= set(override.values())
    risks = {settings.human_risk_low or 0.5, settings.human_risk_high or 1.0}

    def around(points) -> np.ndarray:
        points = np.array(sorted(points), dtype="float64")
        return np.concatenate([points, np.nextafter(points, -np.inf), np.nextafter(points, np.inf)])

    rng = np.random.default_rng(seed)
    size = len(columns)
    confidence, risk, value = columns.confidence.copy(), columns.risk.copy(), columns.value.copy()
    for array, points in (
        (confidence, around(confidences)),
        (risk, around(risks)),
        (value, around({rule.value_threshold})),
    ):
        rows = rng.random(size) < 1 / 3
        array[rows] = rng.choice(points, int(rows.sum()))
    return replace(columns, confidence=confidence, risk=risk, value=value)


def _branch(reason: str) -> str:
    """Which rule of `choose_route` gave a reason."""
    for start, branch in (
        ("member value", "value"),
        ("churn risk", "risk band"),
        ("audit sample", "audit"),
        ("auto-approval paused", "pause"),
    ):
        if reason.startswith(start):
            return branch
    return "low" if "<" in reason else "auto" if "≥" in reason else "between"


@pytest.mark.parametrize("paused", PAUSES, ids=["running", "paused"])
@pytest.mark.parametrize("kind", ["churn", "next_action"])
@pytest.mark.parametrize("policy", POLICIES, ids=range(len(POLICIES)))
def test_vectorized_routes_equal_the_rule_row_by_row(policy, kind, paused):
    columns = _random_columns(ROWS, seed=len(kind))
    rule = _rule(policy, kind, columns, paused)
    columns = _with_edges(columns, rule, seed=len(kind) + len(paused))

    routes = route_codes(columns, rule=rule)

    choices = [
        rule.route(
            prediction_id=int(columns.prediction_id[i]),
            confidence=float(columns.confidence[i]),
            risk=None if np.isnan(columns.risk[i]) else float(columns.risk[i]),
            value=float(columns.value[i]),
            tier=columns.tier[i],
            rfm_segment=columns.rfm_segment[i],
        )
        for i in range(len(columns))
    ]
    assert [ROUTE_NAMES[code] for code in routes] == [choice.route for choice in choices]
    # Every rule that can apply under this policy did, on some row: the comparison covered it.
    expected = {"value", "low"}
    if policy.auto_approve_confidence > policy.expert_confidence:
        expected.add("between")
    if kind == "churn" and policy.human_risk_low is not None:
        expected.add("risk band")
    if policy.audit_sample_rate > 0:
        expected.add("audit")
    if policy.audit_sample_rate < 1:
        expected.add("pause" if paused else "auto")
    assert {_branch(choice.reason) for choice in choices} == expected


@pytest.mark.parametrize("paused", PAUSES, ids=["running", "paused"])
@pytest.mark.parametrize("policy", POLICIES, ids=range(len(POLICIES)))
def test_each_point_of_the_workload_curve_equals_routing_at_that_threshold(policy, paused):
    columns = _random_columns(400, seed=7)
    rule = _rule(policy, "churn", columns, paused)
    errors = error_chances(columns, kind="churn")
    sampled = audit_sample_of(columns, rule=rule)

    curve = workload_curve(columns, rule=rule, errors=np.nan_to_num(errors), audit_sampled=sampled)

    for index, auto_threshold in enumerate(CURVE_THRESHOLDS[::7]):
        at = replace(rule, settings=replace(policy, auto_approve_confidence=float(auto_threshold)))
        routes = route_codes(columns, rule=at)
        point = index * 7
        assert (curve.auto[point], curve.analyst[point], curve.expert[point]) == (
            int((routes == 0).sum()),
            int((routes == 1).sum()),
            int((routes == 2).sum()),
        )
    assert (max(curve.auto) == 0) == bool(paused or policy.audit_sample_rate == 1.0)


@pytest.fixture
def small(reason_codes):
    """Churn reviews under EXACT: auto (0.95, p 0.1), (0.92, p 0.3); analyst 0.8; expert 0.3."""
    change_policy(kind="churn", settings=EXACT, actor=None, reason="exact")
    version = ModelVersionFactory()
    for confidence, score in ((0.95, 0.1), (0.92, 0.3), (0.8, 0.2), (0.3, 0.5)):
        PredictionFactory(model_version=version, confidence=confidence, score=score)
    route_new_predictions(kind="churn")


@pytest.mark.django_db
def test_counts_and_expected_error_are_exact_on_a_small_case(small):
    simulation = simulate_policy(kind="churn", settings=EXACT)

    assert simulation.total == 4
    assert simulation.counts == {"auto": 2, "analyst": 1, "expert": 1}
    assert simulation.current_counts == simulation.counts
    # min(p, 1 - p) of the two auto-approved churn calls: 0.1 and 0.3.
    assert simulation.expected_error_rate == pytest.approx(0.2)
    assert simulation.expected_errors == pytest.approx(0.4)
    assert (simulation.observed_n, simulation.observed_override_rate) == (0, None)

    stricter = simulate_policy(kind="churn", settings=replace(EXACT, auto_approve_confidence=0.93))
    assert stricter.counts == {"auto": 1, "analyst": 2, "expert": 1}
    assert stricter.expected_error_rate == pytest.approx(0.1)
    index = list(stricter.curve.thresholds).index(0.93)
    assert (stricter.curve.auto[index], stricter.curve.analyst[index]) == (1, 2)
    assert stricter.curve.expected_error_rate[index] == pytest.approx(0.1)
    assert stricter.curve.auto[0] == 3 and stricter.curve.auto[-1] == 0


@pytest.mark.django_db
def test_next_action_expected_error_is_one_minus_the_recommended_probability(reason_codes):
    change_policy(kind="next_action", settings=EXACT, actor=None, reason="exact")
    version = ModelVersionFactory(kind="next_action")
    for score in (0.6, 0.9):
        PredictionFactory(model_version=version, kind="next_action", confidence=0.95, score=score)
    route_new_predictions(kind="next_action")

    simulation = simulate_policy(kind="next_action", settings=EXACT)

    assert simulation.counts["auto"] == 2
    assert simulation.expected_error_rate == pytest.approx((0.4 + 0.1) / 2)


@pytest.mark.django_db
def test_past_decisions_give_the_observed_override_rate_of_would_be_auto_approvals(
    small, make_user
):
    expert = make_user("expert")
    analyst_review = Review.objects.get(confidence=0.8)
    expert_review = Review.objects.get(confidence=0.3)
    override_prediction(
        review_id=analyst_review.pk, actor=expert, reason_code="wrong-churn-call", churn_label=True
    )
    approve_prediction(review_id=expert_review.pk, actor=expert, reason_code="model-correct")

    # At 0.75 the decided 0.8 review would have been auto-approved: one of one was overridden.
    simulation = simulate_policy(
        kind="churn", settings=replace(EXACT, auto_approve_confidence=0.75)
    )
    assert simulation.total == 2
    assert (simulation.observed_n, simulation.observed_override_rate) == (1, 1.0)

    lenient = replace(EXACT, auto_approve_confidence=0.25, expert_confidence=0.2)
    simulation = simulate_policy(kind="churn", settings=lenient)
    assert (simulation.observed_n, simulation.observed_override_rate) == (2, 0.5)


@pytest.mark.django_db
def test_the_simulation_predicts_what_saving_reroutes(reason_codes):
    policy = POLICIES[1]
    change_policy(kind="churn", settings=PolicySettings(), actor=None, reason="start")
    version = ModelVersionFactory()
    rng = np.random.default_rng(3)
    for _ in range(200):
        PredictionFactory(
            model_version=version,
            confidence=float(np.round(rng.random(), 2)),
            score=float(np.round(rng.random(), 2)),
            spend=float(np.round(rng.exponential(200), 0)),
            member__tier=str(rng.choice(["bronze", "silver", "gold", "platinum"])),
        )
    route_new_predictions(kind="churn")

    simulation = simulate_policy(kind="churn", settings=policy)
    pending = Review.objects.filter(state="pending").count()
    change_policy(kind="churn", settings=policy, actor=None, reason="as simulated")
    result = reroute_undecided(kind="churn")
    # Saving re-routes what is pending; the auto-approvals are decided and stay.
    assert result.considered == pending
    # Routing the same predictions afresh under the policy gives the simulated counts.
    Review.objects.all().delete()
    route_new_predictions(kind="churn")

    assert simulation.counts == {
        route: Review.objects.filter(route=route).count() for route in ("auto", "analyst", "expert")
    }


@pytest.mark.parametrize("kind", ["churn", "next_action"])
def test_the_simulation_of_either_side_predicts_what_routing_cases_gives(lenient_catalog, kind):
    """Cases: the side whose policy is simulated moves, the other side's route as it stands
    bounds each case from below, and the counts equal routing the cases afresh."""
    from loyalty.models import Action
    from predictions.models import ModelVersion

    lenient = PolicySettings(
        auto_approve_confidence=0.6, expert_confidence=0.3, human_risk_low=None
    )
    change_policy(kind="churn", settings=lenient, actor=None, reason="start")
    versions = {
        name: ModelVersionFactory(kind=name, status=ModelVersion.Status.ACTIVE)
        for name in ("churn", "next_action")
    }
    email = Action.objects.get(code="win_back_email")
    rng = np.random.default_rng(5)
    for _ in range(200):
        member = PredictionFactory(
            model_version=versions["next_action"],
            kind="next_action",
            confidence=float(np.round(rng.random(), 2)),
            score=0.6,
            probabilities={"win_back_email": 0.6, "no_action": 0.4},
            recommended_action=email,
            member__tier=str(rng.choice(["bronze", "silver", "gold", "platinum"])),
        ).member
        PredictionFactory(
            member=member,
            model_version=versions["churn"],
            confidence=float(np.round(rng.random(), 2)),
            score=float(np.round(rng.random(), 2)),
            spend=float(np.round(rng.exponential(200), 0)),
        )
    route_new_predictions(kind="churn")
    assert Review.objects.filter(action_prediction__isnull=False).count() == 200

    simulation = simulate_policy(kind=kind, settings=POLICIES[1])
    change_policy(kind=kind, settings=POLICIES[1], actor=None, reason="as simulated")
    Review.objects.all().delete()
    route_new_predictions(kind="churn")

    counts = {
        route: Review.objects.filter(route=route).count() for route in ("auto", "analyst", "expert")
    }
    assert simulation.counts == counts
    assert sum(counts.values()) == 200
    assert 0 < counts["auto"] < 200 and counts["expert"] > 0
