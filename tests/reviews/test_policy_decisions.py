"""Auto-approvals are decisions: made by the policy, announced like a person's, never reopened;
a re-score announces nothing new unless the action changes or its cooldown has passed."""

from dataclasses import replace
from datetime import timedelta

import pytest
from django.utils import timezone

from learning.services.labels import unlabeled_decisions
from loyalty import outbox
from loyalty.models import Action, ControlGroupSettings, OutboxEvent
from reviews.exceptions import ReviewAlreadyDecided
from reviews.models import Decision, Review
from reviews.policy_settings import DEFAULT_SETTINGS
from reviews.services.decisions import approve_prediction
from reviews.services.policy import change_policy
from reviews.services.rerouting import reroute_undecided
from reviews.services.routing import route_new_predictions
from tests.factories import MemberFactory, ModelVersionFactory, PredictionFactory


@pytest.fixture
def catalog(lenient_catalog):
    return lenient_catalog


def _score(member, *, action="win_back_email", confidence=0.9, cutoff=None):
    """A next-action prediction of `member` recommending `action`, routed."""
    prediction = PredictionFactory(
        member=member,
        model_version=ModelVersionFactory(kind="next_action"),
        kind="next_action",
        cutoff=cutoff or timezone.now().replace(microsecond=0),
        score=0.7,
        confidence=confidence,
        probabilities={action: 0.7, "no_action": 0.3},
        recommended_action=Action.objects.get(code=action),
    )
    route_new_predictions(kind="next_action")
    return Review.objects.get(prediction=prediction)


def _events(member, type_=outbox.DECISION_CREATED):
    return OutboxEvent.objects.filter(type=type_, member_id=member.pk)


def test_an_auto_approval_is_a_policy_decision_announced_like_a_persons(catalog):
    member = MemberFactory()

    review = _score(member)

    assert review.route == Review.Route.AUTO
    decision = review.decision
    assert decision.decided_as == "policy"
    assert decision.decided_by is None
    assert decision.decider == "policy"
    assert decision.reason.code == "auto-approved"
    assert decision.settled_action.code == "win_back_email"
    assert decision.announced
    [event] = _events(member)
    assert event.data["decision_id"] == decision.pk
    assert event.data["decided_as"] == "policy"
    assert event.data["action_code"] == "win_back_email"


def test_a_stricter_policy_does_not_reopen_an_announced_auto_approval(catalog, make_user):
    member = MemberFactory()
    review = _score(member)

    change_policy(
        kind="next_action",
        settings=replace(catalog, auto_approve_confidence=0.99),
        actor=None,
        reason="stricter",
    )
    result = reroute_undecided(kind="next_action")

    review.refresh_from_db()
    assert result.considered == 0
    assert (review.route, review.state) == (Review.Route.AUTO, Review.State.AUTO_APPROVED)
    with pytest.raises(ReviewAlreadyDecided, match="by policy"):
        approve_prediction(
            review_id=review.pk, actor=make_user("expert"), reason_code="model-correct"
        )
    assert _events(member).count() == 1


def test_a_looser_policy_decides_what_it_now_auto_approves(catalog):
    member = MemberFactory()
    review = _score(member, confidence=0.4)  # below 0.5: an analyst's
    assert review.state == Review.State.PENDING

    change_policy(
        kind="next_action",
        settings=replace(catalog, auto_approve_confidence=0.3),
        actor=None,
        reason="looser",
    )
    reroute_undecided(kind="next_action")

    review.refresh_from_db()
    assert review.route == Review.Route.AUTO
    assert review.decision.decided_as == "policy"
    assert _events(member).count() == 1


def test_a_rescore_announces_again_only_a_changed_action_or_after_the_cooldown(catalog):
    member = MemberFactory()
    first = timezone.now() - timedelta(days=40)
    _score(member, cutoff=first)
    Decision.objects.filter(member=member).update(decided_at=timezone.now() - timedelta(days=5))

    same = _score(member, cutoff=first + timedelta(days=1))
    assert same.decision.announced is False
    assert "cooldown" in same.decision.silenced_because
    assert _events(member).count() == 1

    changed = _score(member, action="bonus_points", cutoff=first + timedelta(days=2))
    assert changed.decision.announced
    assert _events(member).count() == 2

    # Bonus points' cooldown (30 days) has passed since it was announced: it goes out again.
    Decision.objects.filter(pk=changed.decision.pk).update(
        decided_at=timezone.now() - timedelta(days=31)
    )
    again = _score(member, action="bonus_points", cutoff=first + timedelta(days=3))
    assert again.decision.announced
    assert _events(member).count() == 3


def test_a_held_out_auto_approval_is_announced_only_as_held_out(catalog):
    ControlGroupSettings.objects.update_or_create(pk=1, defaults={"universal_share": 0.5})
    member = MemberFactory()

    decision = _score(member).decision

    # With half the members in the universal control group, whether this one is depends on
    # its draw: check both sides against the event the decision got.
    expected = outbox.DECISION_HELD_OUT if decision.held_out else outbox.DECISION_CREATED
    other = outbox.DECISION_CREATED if decision.held_out else outbox.DECISION_HELD_OUT
    assert _events(member, expected).count() == 1
    assert _events(member, other).count() == 0


def test_policy_decisions_are_not_training_labels(catalog, make_user):
    auto = _score(MemberFactory()).decision
    person = _score(MemberFactory(), confidence=0.3)
    decision = approve_prediction(
        review_id=person.pk, actor=make_user("expert"), reason_code="model-correct"
    )

    pending_labels = set(unlabeled_decisions().values_list("pk", flat=True))

    assert auto.pk not in pending_labels
    assert decision.decided_as == "expert"
    assert decision.member_id == person.member_id


def test_a_rescore_with_the_same_churn_call_is_recorded_not_announced_again(catalog):
    change_policy(
        kind="churn",
        settings=replace(DEFAULT_SETTINGS["churn"], audit_sample_rate=0.0),
        actor=None,
        reason="no audit sample",
    )
    member = MemberFactory()
    version = ModelVersionFactory(kind="churn")

    def score(probability, days):
        prediction = PredictionFactory(
            member=member,
            model_version=version,
            score=probability,
            confidence=0.95,
            cutoff=timezone.now().replace(microsecond=0) - timedelta(days=days),
        )
        route_new_predictions(kind="churn")
        return Review.objects.get(prediction=prediction).decision

    first = score(0.2, days=3)
    same_call = score(0.25, days=2)
    changed_call = score(0.55, days=1)  # above the churn call threshold: will churn

    assert [first.announced, same_call.announced, changed_call.announced] == [True, False, True]
    assert "will stay" in same_call.silenced_because
    assert _events(member).count() == 2
