"""Routing's bulk write path: what one INSERT per batch stores, and superseding by member."""

from datetime import UTC, datetime, timedelta

import pytest

from predictions.models import Prediction
from reviews.models import Review
from reviews.policy_settings import PolicySettings
from reviews.selectors.policy import current_policy
from reviews.services.policy import change_policy
from reviews.services.routing import (
    REVIEW_COLUMNS,
    insert_reviews,
    route_new_predictions,
)
from tests.factories import MemberFactory, ModelVersionFactory, PredictionFactory

POLICY = PolicySettings(
    auto_approve_confidence=0.9,
    expert_confidence=0.5,
    expert_value_quantile=0.95,
    human_risk_low=0.6,
    human_risk_high=1.0,
    audit_sample_rate=0.0,
    sla_hours=48,
)


def _stored(prediction):
    return Review.objects.get(prediction=prediction)


@pytest.mark.django_db
def test_a_routed_review_holds_the_route_priority_and_defaults_of_every_other_column():
    change_policy(kind="churn", settings=POLICY, actor=None, reason="test thresholds")
    version = ModelVersionFactory()
    # Equal member values: none lies above the top-5 % value, every percentile is 3 / 3.
    auto = PredictionFactory(model_version=version, confidence=0.97, score=0.3)
    analyst = PredictionFactory(model_version=version, confidence=0.8, score=0.25)
    expert = PredictionFactory(model_version=version, confidence=0.4, score=0.45)

    result = route_new_predictions(kind="churn")

    assert result.by_route == {"auto": 1, "analyst": 1, "expert": 1}
    policy = current_policy("churn")
    expected = {
        auto: ("auto", "auto_approved", "confidence 0.97 ≥ auto-approve threshold 0.90"),
        analyst: (
            "analyst",
            "pending",
            "confidence 0.80 between expert 0.50 and auto-approve 0.90",
        ),
        expert: ("expert", "pending", "confidence 0.40 < expert threshold 0.50"),
    }
    for prediction, (route, state, reason) in expected.items():
        review = _stored(prediction)
        assert (review.route, review.state, review.route_reason) == (route, state, reason)
        assert (review.kind, review.policy_id, review.member_id) == (
            "churn",
            policy.pk,
            prediction.member_id,
        )
        assert (review.tier, review.member_value, review.risk, review.confidence) == (
            "silver",
            100.0,
            prediction.score,
            prediction.confidence,
        )
        assert review.priority == prediction.score * (1 + 1.0) * (1.1 - prediction.confidence)
        assert review.routed_at <= review.created_at
        if route == "auto":
            assert review.due_at is None
        else:
            assert review.due_at == review.routed_at + timedelta(hours=48)
        assert (review.escalated_at, review.escalated_by_id, review.escalation_reason_id) == (
            None,
            None,
            None,
        )
        assert (review.escalation_comment, review.analyst_proposal) == ("", None)
        assert (review.recommended_action_id, review.expected_value, review.contact_flags) == (
            None,
            None,
            [],
        )
        # An auto-approval is decided by the policy as it is routed.
        assert (review.decided_at is not None) == (route == "auto")


@pytest.mark.django_db
def test_a_next_action_review_weighs_its_members_churn_risk_or_the_no_risk_priority():
    version = ModelVersionFactory(kind="next_action")
    unscored = PredictionFactory(
        model_version=version, kind="next_action", score=0.7, confidence=0.95, label_set=["a"]
    )
    scored = PredictionFactory(
        model_version=version, kind="next_action", score=0.7, confidence=0.95, label_set=["a"]
    )
    PredictionFactory(member=scored.member, kind="churn", score=0.8)

    route_new_predictions(kind="next_action")

    assert _stored(unscored).risk is None
    assert _stored(unscored).priority == 0.5 * (1 + 1.0) * (1.1 - 0.95)
    assert _stored(scored).risk == 0.8
    assert _stored(scored).priority == pytest.approx(0.8 * (1 + 1.0) * (1.1 - 0.95))


@pytest.mark.django_db
def test_a_prediction_reviewed_already_keeps_its_review_when_inserted_again():
    change_policy(kind="churn", settings=POLICY, actor=None, reason="test thresholds")
    prediction = PredictionFactory(confidence=0.97)
    route_new_predictions(kind="churn")
    before = Review.objects.values().get(prediction=prediction)
    now = datetime(2026, 2, 1, tzinfo=UTC)
    row = dict.fromkeys(REVIEW_COLUMNS)
    row.update(
        prediction_id=prediction.pk,
        member_id=prediction.member_id,
        kind="churn",
        policy_id=current_policy("churn").pk,
        priority=9.0,
        tier="",
        rfm_segment="",
        member_value=0.0,
        risk=0.9,
        confidence=0.1,
        created_at=now,
        route="expert",
        state="pending",
        route_reason="again",
        routed_at=now,
        due_at=now,
        contact_flags=[],
        is_blind=False,
    )

    insert_reviews(columns=REVIEW_COLUMNS, rows=[tuple(row[name] for name in REVIEW_COLUMNS)])

    assert Review.objects.count() == 1
    assert Review.objects.values().get(prediction=prediction) == before


def _scored(prediction, at):
    Prediction.objects.filter(pk=prediction.pk).update(scored_at=at)


@pytest.mark.django_db
def test_a_newer_prediction_supersedes_only_the_undecided_older_reviews_of_its_member():
    change_policy(kind="churn", settings=POLICY, actor=None, reason="test thresholds")
    version = ModelVersionFactory()
    rescored, automatic, late = MemberFactory(), MemberFactory(), MemberFactory()
    day = datetime(2026, 1, 1, tzinfo=UTC)
    old_pending = PredictionFactory(member=rescored, model_version=version, confidence=0.8)
    old_auto = PredictionFactory(member=automatic, model_version=version, confidence=0.97)
    newest_of_late = PredictionFactory(member=late, model_version=version, confidence=0.8)
    _scored(old_pending, day)
    _scored(old_auto, day)
    _scored(newest_of_late, day + timedelta(days=2))
    route_new_predictions(kind="churn")
    later = {"model_version": version, "confidence": 0.8, "cutoff": day + timedelta(days=1)}
    new_pending = PredictionFactory(member=rescored, **later)
    new_auto = PredictionFactory(member=automatic, **later)
    # Routed after the newer one: it is stale the moment it is routed.
    older_of_late = PredictionFactory(member=late, **later)
    _scored(new_pending, day + timedelta(days=1))
    _scored(new_auto, day + timedelta(days=1))
    _scored(older_of_late, day + timedelta(days=1))

    route_new_predictions(kind="churn")

    states = {
        prediction: _stored(prediction).state
        for prediction in (
            old_pending,
            new_pending,
            old_auto,
            new_auto,
            newest_of_late,
            older_of_late,
        )
    }
    assert states == {
        old_pending: "superseded",
        new_pending: "pending",
        old_auto: "auto_approved",
        new_auto: "pending",
        newest_of_late: "pending",
        older_of_late: "superseded",
    }
