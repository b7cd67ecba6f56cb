"""Control groups: who is held out is drawn, stable and reproducible, in the shares set; a
held-out decision leaves only as `decision.held_out`, and people learn of it after the
horizon."""

import math
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from loyalty import outbox
from loyalty.control_groups import (
    ACTION_HOLDOUT,
    UNIVERSAL_CONTROL,
    control_settings,
    holdout_for,
    in_universal_control,
    unit_draw,
)
from loyalty.models import Action, ControlGroupSettings, OutboxEvent
from reviews.models import Decision
from reviews.services.decisions import approve_prediction
from tests.tokens import token_header

pytestmark = pytest.mark.django_db
DRAWS = 10_000
# Each database gets a random salt; the share checks use a fixed one, so their draws (and
# their outcome) are the same on every run.
FIXED_SALT = "test-salt-1"


def _within_binomial(count: int, n: int, share: float) -> bool:
    """Within 4 standard deviations of n × share (a false alarm once in about 16,000 salts;
    the tests' salt is fixed, so a run that passes always passes)."""
    return abs(count - n * share) <= 4 * math.sqrt(n * share * (1 - share))


def test_draws_are_stable_and_in_the_unit_interval():
    draws = [unit_draw("salt", "universal", member) for member in range(1000)]
    assert draws == [unit_draw("salt", "universal", member) for member in range(1000)]
    assert all(0 <= draw < 1 for draw in draws)
    assert unit_draw("salt", "universal", 1) != unit_draw("other", "universal", 1)


def test_the_programs_defaults_are_5_and_10_percent():
    from loyalty.settings import base

    assert (base.LOYALTY_UNIVERSAL_CONTROL_SHARE, base.LOYALTY_ACTION_HOLDOUT_SHARE) == (0.05, 0.1)


def test_the_universal_control_group_holds_its_share_of_10k_members():
    settings = control_settings()
    settings.universal_share = 0.05
    settings.salt = FIXED_SALT

    held = sum(in_universal_control(member, settings) for member in range(1, DRAWS + 1))

    assert _within_binomial(held, DRAWS, 0.05)


def test_raising_the_share_only_adds_members():
    settings = control_settings()
    settings.universal_share = 0.05
    before = {m for m in range(1, 2001) if in_universal_control(m, settings)}
    settings.universal_share = 0.2
    after = {m for m in range(1, 2001) if in_universal_control(m, settings)}

    assert before < after


def test_per_action_holdouts_hold_their_share_of_10k_decisions():
    settings = control_settings()
    settings.universal_share = 0.0
    settings.salt = FIXED_SALT
    action = Action(code="bonus_points", name="Bonus", holdout_share=0.10)
    outcomes = [
        holdout_for(
            member_id=member,
            action=action,
            subject=f"prediction:{member * 7}",
            settings=settings,
        )
        for member in range(1, DRAWS + 1)
    ]

    held = [outcome for outcome in outcomes if outcome.held_out]
    assert _within_binomial(len(held), DRAWS, 0.10)
    assert {outcome.reason for outcome in held} == {ACTION_HOLDOUT}
    assert all(outcome.draw < 0.10 for outcome in held)
    again = holdout_for(member_id=1, action=action, subject="prediction:7", settings=settings)
    assert again == outcomes[0]  # reproducible


def test_a_member_in_the_universal_control_is_held_out_whatever_the_action():
    ControlGroupSettings.objects.update(universal_share=0.05)
    settings = control_settings()
    member = next(m for m in range(1, 10_000) if in_universal_control(m, settings))

    outcome = holdout_for(member_id=member, action=None, subject="prediction:1")

    assert (outcome.held_out, outcome.reason) == (True, UNIVERSAL_CONTROL)


def _put_in_control(member_id: int) -> None:
    """A salt that draws this member into the 5 % control group (found by search, fixed by
    the member's pk, so the test does not depend on which pk the database gave)."""
    settings = control_settings()
    ControlGroupSettings.objects.filter(pk=settings.pk).update(universal_share=0.05)
    salt = next(
        f"s{n}" for n in range(100_000) if unit_draw(f"s{n}", "universal", member_id) < 0.05
    )
    ControlGroupSettings.objects.filter(pk=settings.pk).update(salt=salt)


def _token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=token_header(user))
    return client


def test_a_held_out_decision_leaves_only_as_decision_held_out(routed, make_user):
    review = routed["analyst"]
    _put_in_control(review.member_id)

    decision = approve_prediction(
        review_id=review.pk, actor=make_user("analyst"), reason_code="model-correct"
    )

    assert (decision.held_out, decision.holdout_reason) == (True, UNIVERSAL_CONTROL)
    assert decision.holdout_draw < 0.05
    about_member = OutboxEvent.objects.filter(member_id=review.member_id)
    assert not about_member.filter(type=outbox.DECISION_CREATED).exists()
    [event] = about_member.filter(type=outbox.DECISION_HELD_OUT)
    assert event.data["held_out"] is True


def test_people_learn_of_a_holdout_only_after_the_horizon(routed, make_user):
    review = routed["analyst"]
    _put_in_control(review.member_id)
    decision = approve_prediction(
        review_id=review.pk, actor=make_user("analyst"), reason_code="model-correct"
    )
    analyst = _token_client(make_user("analyst", "reader"))
    integrator = _token_client(make_user("integrator"))

    def held_out(client) -> object:
        items = client.get("/api/decisions/").json()["results"]
        [item] = [item for item in items if item["decision_id"] == decision.pk]
        return item["held_out"]

    assert held_out(integrator) is True
    assert held_out(analyst) is None
    Decision.objects.filter(pk=decision.pk).update(decided_at=timezone.now() - timedelta(days=91))
    assert held_out(analyst) is True


def test_an_action_holdout_follows_the_actions_share(next_action_review, make_user):
    control_settings()
    ControlGroupSettings.objects.update(universal_share=0.0, action_holdout_share=0.0)
    action = Action.objects.get(code="bonus_points")
    Action.objects.filter(pk=action.pk).update(holdout_share=0.5)
    from predictions.models import Prediction

    Prediction.objects.filter(pk=next_action_review.prediction_id).update(recommended_action=action)
    action.refresh_from_db()
    expected = holdout_for(
        member_id=next_action_review.member_id,
        action=action,
        subject=f"prediction:{next_action_review.prediction_id}",
    )

    decision = approve_prediction(
        review_id=next_action_review.pk, actor=make_user("analyst"), reason_code="model-correct"
    )

    assert (decision.held_out, decision.holdout_draw) == (expected.held_out, expected.draw)
    assert decision.holdout_reason == (ACTION_HOLDOUT if expected.held_out else "")


def test_an_action_without_a_share_of_its_own_takes_the_programs():
    settings = control_settings()
    settings.universal_share, settings.action_holdout_share = 0.0, 0.10
    settings.salt = FIXED_SALT
    own = Action(code="call", name="Call", holdout_share=0.0)
    default = Action(code="sms", name="SMS", holdout_share=None)

    def held(action) -> int:
        return sum(
            holdout_for(member_id=m, action=action, subject="p", settings=settings).held_out
            for m in range(1, 2001)
        )

    assert held(own) == 0
    assert _within_binomial(held(default), 2000, 0.10)
