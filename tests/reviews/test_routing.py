"""Routing rules: exact routes and reasons per rule, bulk routing, idempotence."""

from dataclasses import replace

import pytest

from reviews.models import Review
from reviews.policy_settings import PolicySettings
from reviews.services.policy import change_policy
from reviews.services.routing import route_new_predictions
from reviews.services.routing_rules import choose_route, in_audit_sample
from tests.factories import ModelVersionFactory, PredictionFactory

POLICY = PolicySettings(
    auto_approve_confidence=0.9,
    expert_confidence=0.7,
    expert_value_quantile=0.95,
    human_risk_low=0.6,
    human_risk_high=1.0,
    audit_sample_rate=0.0,
    segment_overrides={"platinum": {"auto_approve_confidence": 0.99}},
)


def _route(
    confidence,
    risk=0.2,
    value=10.0,
    threshold=1000.0,
    tier="silver",
    policy=POLICY,
    prediction_id=1,
    paused="",
):
    choice = choose_route(
        settings=policy,
        kind="churn",
        prediction_id=prediction_id,
        confidence=confidence,
        risk=risk,
        value=value,
        value_threshold=threshold,
        tier=tier,
        paused=paused,
    )
    return choice.route, choice.reason


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"confidence": 0.62}, ("expert", "confidence 0.62 < expert threshold 0.70")),
        ({"confidence": 0.95}, ("auto", "confidence 0.95 ≥ auto-approve threshold 0.90")),
        (
            {"confidence": 0.8},
            ("analyst", "confidence 0.80 between expert 0.70 and auto-approve 0.90"),
        ),
        ({"confidence": 0.95, "value": 1500.0}, ("expert", "member value in top 5 %")),
        (
            {"confidence": 0.95, "risk": 0.72},
            ("analyst", "churn risk 0.72 in the band that needs a person (0.60–1.00)"),
        ),
        (
            {"confidence": 0.95, "paused": "calibration breach"},
            ("analyst", "auto-approval paused: calibration breach"),
        ),
        (
            {"confidence": 0.8, "paused": "calibration breach"},
            ("analyst", "confidence 0.80 between expert 0.70 and auto-approve 0.90"),
        ),
        (
            {"confidence": 0.95, "tier": "platinum"},
            ("analyst", "confidence 0.95 between expert 0.70 and auto-approve 0.99"),
        ),
    ],
)
def test_each_rule_gives_its_route_and_reason(arguments, expected):
    assert _route(**arguments) == expected


def test_audit_sample_sends_a_stable_share_of_auto_approvals_to_analysts():
    policy = replace(POLICY, audit_sample_rate=0.1)
    routes = [_route(0.95, policy=policy, prediction_id=i)[0] for i in range(20_000)]

    share = routes.count("analyst") / len(routes)
    assert 0.09 < share < 0.11
    assert _route(0.95, policy=policy, prediction_id=7) == _route(
        0.95, policy=policy, prediction_id=7
    )
    assert in_audit_sample(7, 0.0) is False and in_audit_sample(7, 1.0) is True


@pytest.mark.django_db
def test_bulk_routing_gives_each_prediction_one_review_and_is_idempotent():
    change_policy(kind="churn", settings=POLICY, actor=None, reason="test thresholds")
    version = ModelVersionFactory()
    confident = PredictionFactory.create_batch(3, model_version=version, confidence=0.97)
    unsure = PredictionFactory(model_version=version, confidence=0.4)

    first = route_new_predictions(kind="churn")
    second = route_new_predictions(kind="churn")

    assert first.routed == 4 and second.routed == 0
    assert Review.objects.count() == 4
    assert Review.objects.get(prediction=unsure).route == "expert"
    states = set(Review.objects.filter(prediction__in=confident).values_list("state", flat=True))
    assert states == {"auto_approved"}
    assert Review.objects.get(prediction=unsure).due_at is not None
    assert set(Review.objects.values_list("policy__version", flat=True)) == {2}


@pytest.mark.django_db
def test_the_most_valuable_members_go_to_an_expert_whatever_the_confidence():
    change_policy(kind="churn", settings=POLICY, actor=None, reason="test thresholds")
    version = ModelVersionFactory()
    for spend in range(1, 101):
        PredictionFactory(model_version=version, confidence=0.97, spend=float(spend))

    route_new_predictions(kind="churn")

    experts = Review.objects.filter(route="expert")
    assert sorted(experts.values_list("member_value", flat=True)) == [96.0, 97.0, 98.0, 99.0, 100.0]
    assert set(experts.values_list("route_reason", flat=True)) == {"member value in top 5 %"}
