"""The readout of a policy test (learning.policy_test_readout) on a small planted data set whose
figures are worked out by hand below, and the sample-size plan's arithmetic."""

import math
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from learning.models import LabeledExample
from learning.policy_test_readout import (
    MIN_DETECTABLE_DIFFERENCE,
    outcomes_needed,
    policy_test_readout,
)
from reviews.models import Decision, Review
from reviews.policy_settings import PolicySettings
from reviews.selectors.experiments import CHALLENGER, CHAMPION
from reviews.services.decisions import approve_prediction
from reviews.services.experiments import arm_of, start_policy_test
from reviews.services.policy import change_policy
from reviews.services.routing import route_new_predictions
from tests.factories import MemberFactory, ModelVersionFactory, PredictionFactory

OBSERVED_AT = datetime(2026, 4, 1, tzinfo=UTC)
CHAMPION_SETTINGS = PolicySettings(
    auto_approve_confidence=0.9,
    expert_confidence=0.5,
    expert_value_quantile=0.99,
    human_risk_low=None,
    human_risk_high=None,
    audit_sample_rate=0.0,
    segment_overrides={},
    blind_share=0.0,
)
CHALLENGER_SETTINGS = replace(CHAMPION_SETTINGS, auto_approve_confidence=0.7)

# Per arm, one row per member: (confidence, score, outcome: True churned / None unknown,
# seconds a person spent on it: None = decided without opening it, "auto" = the policy's).
PLAN = {
    CHAMPION: [
        (0.95, 0.1, True, "auto"),  # auto-approved "stays", churned: contradicted
        (0.95, 0.2, False, "auto"),  # auto-approved "stays", stayed
        (0.8, 0.3, True, 120.0),  # analyst, two minutes
        (0.8, 0.3, False, None),  # analyst, approved without opening it
    ],
    CHALLENGER: [
        (0.95, 0.1, False, "auto"),
        (0.8, 0.6, False, "auto"),  # auto-approved "churns", stayed: contradicted
        (0.8, 0.3, None, "auto"),  # no outcome yet
        (0.6, 0.3, True, 60.0),  # analyst, one minute
        (0.6, 0.3, False, 180.0),  # analyst, three minutes
    ],
}


def _outcome(review: Review, churned: bool) -> None:
    prediction = review.prediction
    LabeledExample.objects.create(
        source=LabeledExample.Source.OUTCOME,
        kind="churn",
        prediction=prediction,
        member=prediction.member,
        model_version=prediction.model_version,
        cutoff=prediction.cutoff,
        churn_label=churned,
        agrees_with_model=churned == (prediction.score >= 0.5),
        weight=1.0,
        observed_at=OBSERVED_AT,
    )


@pytest.fixture
def planted(reason_codes, make_user):
    """The test with PLAN's items routed, decided and their outcomes recorded, and an item
    routed before the test started (not one of its items)."""
    admin, analyst = make_user("admin", "boss"), make_user("analyst", "ann")
    change_policy(kind="churn", settings=CHAMPION_SETTINGS, actor=None, reason="plain")
    version = ModelVersionFactory()
    before = PredictionFactory(model_version=version, confidence=0.8, score=0.3)
    route_new_predictions(kind="churn")
    _outcome(Review.objects.get(prediction=before), True)
    test = start_policy_test(
        kind="churn",
        challenger_settings=CHALLENGER_SETTINGS,
        share=0.5,
        hypothesis="Fewer items for people, no more errors.",
        actor=admin,
        max_decisions=1000,
    )
    left = {arm: list(rows) for arm, rows in PLAN.items()}
    while any(left.values()):
        member = MemberFactory()
        arm = arm_of(test, member.pk)
        if not left[arm]:
            continue
        confidence, score, outcome, seconds = left[arm].pop(0)
        prediction = PredictionFactory(
            member=member, model_version=version, confidence=confidence, score=score
        )
        route_new_predictions(kind="churn")
        review = Review.objects.get(prediction=prediction)
        assert review.route == ("auto" if seconds == "auto" else "analyst")
        if seconds != "auto":
            decision = approve_prediction(
                review_id=review.pk, actor=analyst, reason_code="model-correct"
            )
            Decision.objects.filter(pk=decision.pk).update(seconds_on_item=seconds)
        if outcome is not None:
            _outcome(review, outcome)
    return test


@pytest.mark.django_db
def test_the_readout_of_the_planted_test_is_what_the_hand_computes(planted):
    readout = policy_test_readout(planted)

    champion, challenger = readout.arm(CHAMPION), readout.arm(CHALLENGER)
    assert (champion.version, challenger.version) == (planted.champion, planted.challenger)
    assert (champion.items, champion.members, challenger.items, challenger.members) == (4, 4, 5, 5)
    # Items to people: 2 of 4 and 2 of 5, with their Wilson intervals (0.150–0.850 for 2/4,
    # 0.118–0.769 for 2/5).
    assert (champion.to_people.hits, champion.to_people.n) == (2, 4)
    assert (champion.to_people.low, champion.to_people.high) == pytest.approx(
        (0.1500, 0.8500), abs=1e-4
    )
    assert (challenger.to_people.hits, challenger.to_people.n, challenger.to_people.value) == (
        2,
        5,
        0.4,
    )
    assert (challenger.to_people.low, challenger.to_people.high) == pytest.approx(
        (0.1176, 0.7693), abs=1e-4
    )
    # Person-minutes: the champion's one timed decision (2 min; the other was not opened);
    # the challenger's 1 + 3 = 4 min, 2 per decision, 2 ± 1.96 · sd(1, 3) / √2 = 2 ± 1.96.
    assert (champion.person_decisions, champion.person_minutes) == (2, 2.0)
    assert (champion.minutes_per_decision.value, champion.minutes_per_decision.n) == (2.0, 1)
    assert champion.minutes_per_decision.low is None
    assert (challenger.person_decisions, challenger.person_minutes) == (2, 4.0)
    per_decision = challenger.minutes_per_decision
    assert (per_decision.value, per_decision.n) == (2.0, 2)
    assert (per_decision.low, per_decision.high) == pytest.approx((0.04004, 3.95996), abs=1e-5)
    # Error among auto-approvals: one of two contradicted in each arm (the challenger's
    # third has no outcome yet): 50 %, Wilson 0.0945–0.9055.
    for arm in (champion, challenger):
        assert (arm.auto_error.hits, arm.auto_error.n) == (1, 2)
        assert (arm.auto_error.low, arm.auto_error.high) == pytest.approx(
            (0.0945, 0.9055), abs=1e-4
        )
    # Outcome rate: 2 of 4 members churned under the champion, 1 of 4 (one unknown) under
    # the challenger (Wilson 0.0456–0.6994).
    assert (champion.outcome_rate.hits, champion.outcome_rate.n) == (2, 4)
    assert (challenger.outcome_rate.hits, challenger.outcome_rate.n) == (1, 4)
    assert (challenger.outcome_rate.low, challenger.outcome_rate.high) == pytest.approx(
        (0.0456, 0.6994), abs=1e-4
    )
    assert champion.is_small and challenger.is_small
    # Challenger − champion: −25 points; Newcombe: −0.25 − √((0.25 − 0.0456)² + (0.85 − 0.5)²)
    # and −0.25 + √((0.6994 − 0.25)² + (0.5 − 0.15)²).
    difference = readout.outcome_difference
    assert difference.value == pytest.approx(-0.25)
    assert (difference.low, difference.high) == pytest.approx((-0.6553, 0.3196), abs=1e-3)
    # The plan at the pooled rate 3 / 8: 2 (z.975 + z.8)² · 0.375 · 0.625 / 0.02² per arm.
    z = 1.959963984540054 + 0.8416212335729143
    per_arm = math.ceil(2 * z * z * 0.375 * 0.625 / 0.02**2)
    assert per_arm == 9198
    assert readout.plan.pooled_rate == 0.375
    assert readout.plan.needed == {CHAMPION: per_arm, CHALLENGER: per_arm}
    assert readout.plan.more == {CHAMPION: per_arm - 4, CHALLENGER: per_arm - 4}
    assert readout.state.state == "collecting"
    assert readout.state.decisions == 4


def test_the_plan_splits_the_outcomes_as_the_test_splits_members():
    z = 1.959963984540054 + 0.8416212335729143
    total = z * z * 0.1 * 0.9 * (1 / 0.25 + 1 / 0.75) / 0.02**2

    even = outcomes_needed(rate=0.1, challenger_share=0.5)
    uneven = outcomes_needed(rate=0.1, challenger_share=0.25)

    assert MIN_DETECTABLE_DIFFERENCE == 0.02
    assert even == {CHAMPION: 3532, CHALLENGER: 3532}  # 2 · 7.849 · 0.09 / 0.0004 = 3531.99
    assert uneven == {CHAMPION: math.ceil(0.75 * total), CHALLENGER: math.ceil(0.25 * total)}
    assert uneven[CHALLENGER] < even[CHALLENGER] < uneven[CHAMPION]


@pytest.mark.django_db
def test_without_outcomes_the_readout_says_so_and_plans_nothing(reason_codes, make_user):
    change_policy(kind="churn", settings=CHAMPION_SETTINGS, actor=None, reason="plain")
    test = start_policy_test(
        kind="churn",
        challenger_settings=CHALLENGER_SETTINGS,
        share=0.3,
        hypothesis="h",
        actor=make_user("admin", "boss"),
        max_decisions=10,
    )

    readout = policy_test_readout(test)

    assert [(arm.items, arm.to_people.value, arm.outcome_rate.n) for arm in readout.arms] == [
        (0, None, 0),
        (0, None, 0),
    ]
    assert readout.outcome_difference.value is None
    assert (readout.plan.needed, readout.plan.reason) == (None, "no outcomes are known yet")
