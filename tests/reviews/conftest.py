"""Fixtures for the review workflow."""

from dataclasses import replace

import pytest

from reviews.services.policy import PolicySettings, change_policy, current_policy
from reviews.services.reason_codes import seed_reason_codes
from reviews.services.routing import route_new_predictions
from tests.factories import ActionFactory, ModelVersionFactory, PredictionFactory


@pytest.fixture
def reason_codes(db):
    seed_reason_codes()


@pytest.fixture
def routed(reason_codes):
    """Three churn reviews: one per route (auto, analyst, expert). No audit sample: with the
    default 2 % one, whether the 'auto' prediction is sampled depends on its database id."""
    from reviews.models import Review

    defaults = PolicySettings.of(current_policy("churn"))
    change_policy(
        kind="churn",
        settings=replace(defaults, audit_sample_rate=0.0),
        actor=None,
        reason="no audit sample in tests",
    )
    version = ModelVersionFactory()
    auto = PredictionFactory(model_version=version, confidence=0.99, score=0.1)
    analyst = PredictionFactory(model_version=version, confidence=0.8, score=0.3)
    expert = PredictionFactory(model_version=version, confidence=0.2, score=0.5)
    route_new_predictions(kind="churn")
    return {
        name: Review.objects.get(prediction=prediction)
        for name, prediction in (("auto", auto), ("analyst", analyst), ("expert", expert))
    }


@pytest.fixture
def next_action_review(reason_codes):
    from reviews.models import Review

    ActionFactory(code="bonus_points")
    ActionFactory(code="win_back_email")
    prediction = PredictionFactory(
        model_version=ModelVersionFactory(kind="next_action"),
        kind="next_action",
        score=0.6,
        confidence=0.8,
        probabilities={"bonus_points": 0.6, "win_back_email": 0.4},
    )
    route_new_predictions(kind="next_action")
    return Review.objects.get(prediction=prediction)
