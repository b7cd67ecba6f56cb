"""Migrations 0013 to 0016 keep what was decided before them: a next-action review recommends
what its prediction did, and each earlier decision gets its member and the action it settled
on (the person's on an override, the recommendation on an approval, none on a churn call)."""

from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [
    ("reviews", "0012_decision_holdout"),
    ("loyalty", "0013_hash_drf_tokens_into_knox"),
    ("predictions", "0004_prediction_served_model_and_input"),
]
AFTER = [("reviews", "0016_decision_member_required")]


def test_earlier_decisions_keep_their_member_and_what_they_settled_on(migrator):
    old = migrator(BEFORE)
    Member = old.get_model("loyalty", "Member")
    Action = old.get_model("loyalty", "Action")
    User = old.get_model("auth", "User")
    expert = User.objects.create(username="migrated-expert")
    discount = Action.objects.create(code="personal_discount", name="Personal discount")
    email = Action.objects.create(code="win_back_email", name="Win-back email")
    policy = {
        kind: old.get_model("reviews", "EscalationPolicy").objects.create(kind=kind, version=99)
        for kind in ("churn", "next_action")
    }
    reason = old.get_model("reviews", "ReasonCode").objects.create(
        code="migrated", label="Migrated", treatment="confirm"
    )
    now = datetime(2026, 1, 2, tzinfo=UTC)

    def decided(external_id: str, kind: str, verdict: str, action=None):
        member = Member.objects.create(external_id=external_id)
        version = old.get_model("predictions", "ModelVersion").objects.create(
            kind=kind,
            algorithm="xgboost",
            evaluation_cutoff=now,
            data_fingerprint="0" * 64,
            artifact_path="/nonexistent",
        )
        prediction = old.get_model("predictions", "Prediction").objects.create(
            member=member,
            model_version=version,
            kind=kind,
            cutoff=now,
            score=0.4,
            confidence=0.8,
            recommended_action=discount if kind == "next_action" else None,
        )
        review = old.get_model("reviews", "Review").objects.create(
            prediction=prediction,
            member=member,
            kind=kind,
            route="analyst",
            state="decided",
            route_reason="migrated",
            policy=policy[kind],
            priority=1.0,
            confidence=0.8,
            routed_at=now,
        )
        sequence = old.get_model("reviews", "Decision").objects.count() + 1
        old.get_model("reviews", "Decision").objects.create(
            review=review,
            verdict=verdict,
            decided_by=expert,
            decided_as="expert",
            reason=reason,
            action=action,
            sequence=sequence,
        )

    decided("APPROVED", "next_action", "approve")
    decided("OVERRIDDEN", "next_action", "override", action=email)
    decided("CHURN", "churn", "override")

    new = migrator(AFTER)

    decisions = new.get_model("reviews", "Decision").objects.select_related(
        "member", "settled_action", "review"
    )
    assert {
        d.member.external_id: (
            d.review.member_id == d.member_id,
            d.settled_action.code if d.settled_action else None,
            d.announced,
        )
        for d in decisions
    } == {
        "APPROVED": (True, "personal_discount", True),
        "OVERRIDDEN": (True, "win_back_email", True),
        "CHURN": (True, None, True),
    }
    reviews = new.get_model("reviews", "Review").objects.filter(kind="next_action")
    assert set(reviews.values_list("recommended_action__code", flat=True)) == {"personal_discount"}


CASES_BEFORE = [("reviews", "0017_cases")]
CASES_AFTER = [("reviews", "0018_pending_reviews_become_cases")]


def test_pending_reviews_of_one_cycle_become_one_case_and_the_rest_stay(migrator):
    old = migrator(CASES_BEFORE)
    Member = old.get_model("loyalty", "Member")
    Prediction = old.get_model("predictions", "Prediction")
    Review = old.get_model("reviews", "Review")
    email = old.get_model("loyalty", "Action").objects.create(code="win_back_email", name="Email")
    policy = {
        kind: old.get_model("reviews", "EscalationPolicy").objects.create(kind=kind, version=99)
        for kind in ("churn", "next_action")
    }
    cycle = datetime(2026, 1, 2, tzinfo=UTC)
    earlier = datetime(2025, 12, 1, tzinfo=UTC)
    versions = {
        kind: old.get_model("predictions", "ModelVersion").objects.create(
            kind=kind,
            algorithm="xgboost",
            evaluation_cutoff=cycle,
            data_fingerprint="0" * 64,
            artifact_path="/nonexistent",
        )
        for kind in ("churn", "next_action")
    }

    def review(member, kind, *, cutoff=cycle, state="pending", route="analyst", confidence=0.8):
        prediction = Prediction.objects.create(
            member=member,
            model_version=versions[kind],
            kind=kind,
            cutoff=cutoff,
            score=0.4,
            confidence=confidence,
        )
        return Review.objects.create(
            prediction=prediction,
            member=member,
            kind=kind,
            route=route,
            state=state,
            route_reason=f"{kind} reason",
            policy=policy[kind],
            priority=1.0 if kind == "churn" else 2.0,
            confidence=confidence,
            routed_at=cycle,
            recommended_action=email if kind == "next_action" else None,
            expected_value=3.5 if kind == "next_action" else None,
        )

    paired = Member.objects.create(external_id="PAIRED")
    churn = review(paired, "churn", confidence=0.8)
    action = review(paired, "next_action", route="expert", confidence=0.3)
    other_cycle = Member.objects.create(external_id="OTHER-CYCLE")
    lone_churn = review(other_cycle, "churn")
    lone_action = review(other_cycle, "next_action", cutoff=earlier)
    decided = Member.objects.create(external_id="DECIDED")
    decided_churn = review(decided, "churn", state="decided")
    decided_action = review(decided, "next_action")

    new = migrator(CASES_AFTER)

    reviews = new.get_model("reviews", "Review").objects
    case = reviews.get(pk=churn.pk)
    assert case.action_prediction_id == action.prediction_id
    assert case.action_policy_id == policy["next_action"].pk
    assert (case.recommended_action_id, case.expected_value) == (email.pk, 3.5)
    # The more demanding side's route, with its reason; the lower confidence.
    assert (case.route, case.route_reason) == ("expert", "next_action reason (next action)")
    assert (case.confidence, case.priority) == (0.3, 2.0)
    assert reviews.get(pk=action.pk).state == "superseded"
    # Different cycles, or one side decided: nothing is paired.
    for unchanged in (lone_churn, lone_action, decided_churn, decided_action):
        after = reviews.get(pk=unchanged.pk)
        assert (after.state, after.action_prediction_id) == (unchanged.state, None)
