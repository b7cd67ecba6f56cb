"""Simulation: the vectorized rules equal choose_route, counts and expected errors are exact."""

from dataclasses import replace

import numpy as np
import pytest

from reviews.models import Review
from reviews.services.decisions import approve_prediction, override_prediction
from reviews.services.policy import PolicySettings, change_policy
from reviews.services.rerouting import reroute_undecided
from reviews.services.routing import choose_route, route_new_predictions
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
]


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
        tier=rng.choice(np.array(["bronze", "silver", "gold", "platinum", ""], dtype=object), size),
        score=risk,
        route=np.zeros(size, dtype="int8"),
        is_override=np.zeros(size, dtype=bool),
    )


@pytest.mark.parametrize("kind", ["churn", "next_action"])
@pytest.mark.parametrize("policy", POLICIES, ids=range(len(POLICIES)))
def test_vectorized_routes_equal_choose_route_row_by_row(policy, kind):
    columns = _random_columns(400, seed=len(kind))
    threshold = float(np.quantile(columns.value, policy.expert_value_quantile))

    routes = route_codes(columns, settings=policy, kind=kind, value_threshold=threshold)

    expected = [
        choose_route(
            settings=policy,
            kind=kind,
            prediction_id=int(columns.prediction_id[i]),
            confidence=float(columns.confidence[i]),
            risk=None if np.isnan(columns.risk[i]) else float(columns.risk[i]),
            value=float(columns.value[i]),
            value_threshold=threshold,
            tier=columns.tier[i],
        ).route
        for i in range(len(columns))
    ]
    assert [ROUTE_NAMES[code] for code in routes] == expected
    assert len(set(expected)) == (2 if policy.audit_sample_rate == 1.0 else 3)


@pytest.mark.parametrize("policy", POLICIES, ids=range(len(POLICIES)))
def test_each_point_of_the_workload_curve_equals_routing_at_that_threshold(policy):
    columns = _random_columns(400, seed=7)
    threshold = float(np.quantile(columns.value, policy.expert_value_quantile))
    errors = error_chances(columns, kind="churn")
    sampled = audit_sample_of(columns, settings=policy, kind="churn", value_threshold=threshold)

    curve = workload_curve(
        columns,
        settings=policy,
        kind="churn",
        value_threshold=threshold,
        errors=np.nan_to_num(errors),
        audit_sampled=sampled,
    )

    for index, auto_threshold in enumerate(CURVE_THRESHOLDS[::7]):
        at = replace(policy, auto_approve_confidence=float(auto_threshold))
        routes = route_codes(columns, settings=at, kind="churn", value_threshold=threshold)
        point = index * 7
        assert (curve.auto[point], curve.analyst[point], curve.expert[point]) == (
            int((routes == 0).sum()),
            int((routes == 1).sum()),
            int((routes == 2).sum()),
        )


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
    change_policy(kind="churn", settings=policy, actor=None, reason="as simulated")
    result = reroute_undecided(kind="churn")

    assert simulation.counts == {
        route: result.by_route.get(route, 0) for route in ("auto", "analyst", "expert")
    }
    assert simulation.counts == {
        route: Review.objects.filter(route=route).count() for route in ("auto", "analyst", "expert")
    }
