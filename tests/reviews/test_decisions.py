"""Decisions: once per review, conflicts are clear, roles are enforced, nothing is lost."""

import threading

import pytest
from django.db import connection

from loyalty.models import AuditRecord
from reviews.exceptions import (
    InvalidDecision,
    ReviewAlreadyDecided,
    ReviewNotFound,
    ReviewNotYours,
)
from reviews.models import Decision, Review
from reviews.services.decisions import approve_prediction, escalate_review, override_prediction
from tests.factories import people_decisions

pytestmark = pytest.mark.django_db


def test_routing_fixture_has_one_review_per_route(routed):
    assert {name: review.route for name, review in routed.items()} == {
        "auto": "auto",
        "analyst": "analyst",
        "expert": "expert",
    }


def test_approving_twice_returns_the_first_decision(routed, make_user):
    analyst = make_user("analyst")
    review = routed["analyst"]

    first = approve_prediction(review_id=review.pk, actor=analyst, reason_code="model-correct")
    again = approve_prediction(review_id=review.pk, actor=analyst, reason_code="model-correct")

    assert first.pk == again.pk
    assert Decision.objects.filter(review=review).count() == 1
    review.refresh_from_db()
    assert (review.state, first.decided_as) == ("decided", "analyst")
    assert AuditRecord.objects.filter(kind="decision", subject=f"review:{review.pk}").count() == 1


def test_a_conflicting_second_decision_is_refused_and_changes_nothing(routed, make_user):
    analyst = make_user("analyst")
    review = routed["analyst"]
    approve_prediction(review_id=review.pk, actor=analyst, reason_code="model-correct")

    with pytest.raises(ReviewAlreadyDecided, match="already decided \\(approve\\) by analyst"):
        override_prediction(
            review_id=review.pk, actor=analyst, reason_code="wrong-churn-call", churn_label=True
        )

    decision = Decision.objects.get(review=review)
    assert (decision.verdict, decision.churn_label) == ("approve", None)


def test_an_analyst_cannot_decide_an_expert_item(routed, make_user):
    review = routed["expert"]

    with pytest.raises(ReviewNotFound):
        approve_prediction(
            review_id=review.pk, actor=make_user("analyst"), reason_code="model-correct"
        )

    review.refresh_from_db()
    assert review.state == "pending"
    assert not people_decisions().exists()


def test_an_auto_approval_is_decided_already_and_an_expert_cannot_reopen_it(routed, make_user):
    review = routed["auto"]

    with pytest.raises(ReviewAlreadyDecided, match=r"already decided \(approve\) by policy"):
        override_prediction(
            review_id=review.pk,
            actor=make_user("expert"),
            reason_code="recent-contact",
            churn_label=True,
            comment="Called us to close the account.",
        )

    review.refresh_from_db()
    assert review.state == "auto_approved"
    assert review.decision.decided_as == "policy"
    assert not people_decisions().exists()


@pytest.mark.parametrize(
    "answer", [{}, {"action_code": "bonus_points"}, {"churn_label": True, "action_code": "x"}]
)
def test_a_churn_override_needs_exactly_the_right_call(routed, make_user, answer):
    review = routed["analyst"]

    with pytest.raises(InvalidDecision):
        override_prediction(
            review_id=review.pk,
            actor=make_user("analyst"),
            reason_code="wrong-churn-call",
            **answer,
        )

    assert not people_decisions().exists()


def test_a_next_action_override_names_the_right_action(next_action_review, make_user):
    decision = override_prediction(
        review_id=next_action_review.pk,
        actor=make_user("analyst"),
        reason_code="better-action",
        action_code="win_back_email",
    )

    assert decision.action.code == "win_back_email"


def test_escalation_moves_the_item_to_experts_with_the_analyst_proposal(routed, make_user):
    analyst = make_user("analyst")
    review = routed["analyst"]

    escalate_review(
        review_id=review.pk,
        actor=analyst,
        reason_code="needs-expert",
        comment="Big family account",
        proposal={"verdict": "override", "churn_label": True},
    )

    review.refresh_from_db()
    assert (review.route, review.escalated_by, review.analyst_proposal) == (
        "expert",
        analyst,
        {"verdict": "override", "churn_label": True},
    )
    assert review.route_reason == "escalated by analyst-user: Needs an expert's judgement"
    with pytest.raises(ReviewNotYours):  # still in sight of who escalated it, not theirs
        approve_prediction(review_id=review.pk, actor=analyst, reason_code="model-correct")
    with pytest.raises(ReviewNotFound):  # another expert item: not in sight at all
        escalate_review(review_id=routed["expert"].pk, actor=analyst, reason_code="high-stakes")


def test_nobody_without_a_review_role_can_decide(routed, make_user):
    with pytest.raises(ReviewNotFound):  # an integrator sees no review at all
        approve_prediction(
            review_id=routed["analyst"].pk,
            actor=make_user("integrator"),
            reason_code="model-correct",
        )
    with pytest.raises(Exception, match="lacks the permission reviews.decide_review"):
        approve_prediction(  # an admin sees it, but deciding is not theirs
            review_id=routed["analyst"].pk, actor=make_user("admin"), reason_code="model-correct"
        )


@pytest.mark.django_db(transaction=True)
def test_two_people_deciding_at_once_get_one_decision_and_one_conflict(routed, make_user):
    review = routed["analyst"]
    first, second = make_user("analyst", "ann"), make_user("analyst", "bob")
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def decide(actor, verdict):
        barrier.wait()
        try:
            if verdict == "approve":
                approve_prediction(review_id=review.pk, actor=actor, reason_code="model-correct")
            else:
                override_prediction(
                    review_id=review.pk,
                    actor=actor,
                    reason_code="wrong-churn-call",
                    churn_label=True,
                )
            outcomes.append("decided")
        except ReviewAlreadyDecided:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=decide, args=(first, "approve")),
        threading.Thread(target=decide, args=(second, "override")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["conflict", "decided"]
    assert Decision.objects.filter(review=review).count() == 1
    assert Review.objects.get(pk=review.pk).state == "decided"


@pytest.mark.parametrize(
    ("verdict", "reason_code"),
    [
        ("approve", "wrong-churn-call"),
        ("override", "model-correct"),
        ("escalate", "model-correct"),
        ("approve", "needs-expert"),
    ],
)
def test_a_reason_that_does_not_fit_the_verdict_is_refused_and_changes_nothing(
    routed, make_user, verdict, reason_code
):
    """Before: only the HTML form checked the fit, so the API and quick decide stored an
    approval with a 'wrong churn call' reason, which trained the wrong label."""
    review = routed["analyst"]
    analyst = make_user("analyst")
    decide = {
        "approve": lambda: approve_prediction(
            review_id=review.pk, actor=analyst, reason_code=reason_code
        ),
        "override": lambda: override_prediction(
            review_id=review.pk, actor=analyst, reason_code=reason_code, churn_label=True
        ),
        "escalate": lambda: escalate_review(
            review_id=review.pk, actor=analyst, reason_code=reason_code
        ),
    }[verdict]

    with pytest.raises(InvalidDecision, match=f"The reason '{reason_code}' .* does not fit"):
        decide()

    review.refresh_from_db()
    assert (review.route, review.state, review.escalated_at) == ("analyst", "pending", None)
    assert not people_decisions().exists()
