"""Fixtures for the review workflow."""

import pytest

from reviews.services.routing import route_new_predictions
from tests.factories import ActionFactory, ModelVersionFactory, PredictionFactory


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
