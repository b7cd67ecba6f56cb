"""Cases: while both kinds are active, one review per member and cycle holds the churn
prediction and the next-action prediction, and one decision settles the churn call and what
to do (reviews.services.cases)."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from learning.models import LabeledExample
from learning.services.labels import label_decision
from loyalty import outbox
from loyalty.models import Action, OutboxEvent
from predictions.models import ModelVersion, Prediction, ScoringRun
from reviews.exceptions import InvalidDecision
from reviews.models import Decision, Review
from reviews.selectors.queue import QueueFilters, pending_reviews_for
from reviews.services.decisions import approve_prediction, decide_review, override_prediction
from reviews.services.policy import change_policy
from reviews.services.rerouting import awaiting_rerouting, reroute_undecided
from reviews.services.routing import route_new_predictions
from tests.factories import MemberFactory, ModelVersionFactory, PredictionFactory
from tests.tokens import token_header

pytestmark = pytest.mark.django_db

CYCLE = datetime(2026, 3, 1, tzinfo=UTC)
LATER = datetime(2026, 4, 1, tzinfo=UTC)


@pytest.fixture
def versions(case_versions):
    return case_versions


def _next_action(member, versions, *, action="win_back_email", confidence=0.9, cutoff=CYCLE):
    return PredictionFactory(
        member=member,
        model_version=versions["next_action"],
        kind="next_action",
        cutoff=cutoff,
        score=0.7,
        confidence=confidence,
        probabilities={action: 0.7, "no_action": 0.3},
        recommended_action=Action.objects.get(code=action),
    )


def _churn(member, versions, *, score=0.2, confidence=0.95, cutoff=CYCLE):
    return PredictionFactory(
        member=member,
        model_version=versions["churn"],
        cutoff=cutoff,
        score=score,
        interval_low=max(score - 0.05, 0),
        interval_high=min(score + 0.05, 1),
        confidence=confidence,
    )


def _cycle(member, versions, *, churn=None, action=None, cutoff=CYCLE) -> Review:
    """Score the member with both kinds (next action first, as a cycle does) and route."""
    carried = _next_action(member, versions, cutoff=cutoff, **(action or {}))
    scored = _churn(member, versions, cutoff=cutoff, **(churn or {}))
    route_new_predictions(kind="churn")
    case = Review.objects.get(prediction=scored)
    assert case.action_prediction_id == carried.pk
    return case


def _analyst_case(versions, **churn) -> Review:
    """A case an analyst decides: its next-action side is between the thresholds."""
    case = _cycle(MemberFactory(), versions, churn=churn, action={"confidence": 0.3})
    assert case.route == Review.Route.ANALYST
    return case


def test_routing_makes_one_case_per_member_and_cycle(versions):
    members = [MemberFactory(), MemberFactory()]
    carried = [_next_action(member, versions) for member in members]
    scored = [_churn(member, versions) for member in members]

    route_new_predictions(kind="next_action")  # either kind's routing routes the cases

    cases = Review.objects.filter(member__in=members)
    assert cases.count() == 2
    for member, churn, action in zip(members, scored, carried, strict=True):
        case = cases.get(member=member)
        assert (case.prediction_id, case.action_prediction_id) == (churn.pk, action.pk)
        assert case.is_case and case.decision_kind == "case"
        assert case.action_policy.kind == "next_action"
        assert case.recommended_action.code == "win_back_email"
    # The next-action predictions are the cases' own: no review of their own.
    assert not Review.objects.filter(prediction__in=carried).exists()
    assert route_new_predictions(kind="churn").routed == 0


def test_a_case_carries_the_newest_next_action_prediction_scored_by_its_cutoff(versions):
    member = MemberFactory()
    _next_action(member, versions, cutoff=datetime(2026, 1, 1, tzinfo=UTC))
    newest = _next_action(member, versions, action="bonus_points", cutoff=CYCLE)
    _next_action(member, versions, cutoff=LATER)  # after the churn cutoff: not this cycle
    scored = _churn(member, versions)

    route_new_predictions(kind="churn")

    case = Review.objects.get(prediction=scored)
    assert case.action_prediction_id == newest.pk
    assert case.recommended_action.code == "bonus_points"


def test_cases_wait_while_next_action_is_still_scoring(versions):
    member = MemberFactory()
    run = ScoringRun.objects.create(
        model_version=versions["next_action"],
        cutoff=CYCLE,
        chunk_size=10,
        status=ScoringRun.Status.RUNNING,
    )
    scored = _churn(member, versions)

    assert route_new_predictions(kind="churn").routed == 0
    assert not Review.objects.filter(prediction=scored).exists()

    carried = _next_action(member, versions)
    run.status = ScoringRun.Status.DONE
    run.save(update_fields=["status"])
    assert route_new_predictions(kind="next_action").routed == 1
    assert Review.objects.get(prediction=scored).action_prediction_id == carried.pk


def test_without_both_kinds_active_a_review_holds_one_prediction(lenient_catalog):
    member = MemberFactory()
    scored = PredictionFactory(member=member, model_version=ModelVersionFactory())

    route_new_predictions(kind="churn")

    review = Review.objects.get(prediction=scored)
    assert not review.is_case and review.decision_kind == "churn"


def test_a_case_goes_where_its_more_demanding_side_sends_it(versions):
    # The churn call alone would be auto-approved; its next action is too uncertain.
    case = _cycle(MemberFactory(), versions, action={"confidence": 0.05})

    assert case.route == Review.Route.EXPERT
    assert case.route_reason.startswith("confidence 0.05 < expert threshold")
    assert case.route_reason.endswith("(next action)")
    assert case.confidence == pytest.approx(0.05)

    churn_side = _cycle(MemberFactory(), versions, churn={"confidence": 0.6})
    assert churn_side.route == Review.Route.ANALYST
    assert churn_side.route_reason.endswith("(churn call)")


def test_a_case_both_sides_auto_approve_is_one_policy_decision_of_both(versions):
    case = _cycle(MemberFactory(), versions, churn={"score": 0.2})

    assert case.route == Review.Route.AUTO
    decision = case.decision
    assert decision.decided_as == Decision.POLICY
    assert decision.churn_label is False  # the model's call: 20 % is "will stay"
    assert decision.settled_action.code == "win_back_email"
    [event] = OutboxEvent.objects.filter(member_id=case.member_id, type=outbox.DECISION_CREATED)
    assert event.data["kind"] == "case"
    assert event.data["churn_call"] is False
    assert event.data["action_code"] == "win_back_email"
    assert event.data["action_prediction_id"] == case.action_prediction_id


def test_deciding_a_case_settles_the_action_and_corrects_the_churn_call(versions, make_user):
    case = _analyst_case(versions, score=0.2)
    analyst = make_user("analyst")

    decision = override_prediction(
        review_id=case.pk,
        actor=analyst,
        reason_code="better-action",
        action_code="bonus_points",
        churn_label=True,
    )

    assert decision.verdict == Decision.Verdict.OVERRIDE
    assert decision.settled_action.code == "bonus_points"
    assert decision.churn_label is True
    case.refresh_from_db()
    assert case.state == Review.State.DECIDED
    event = OutboxEvent.objects.get(member_id=case.member_id, type=outbox.DECISION_CREATED)
    assert (event.data["kind"], event.data["action_code"], event.data["churn_call"]) == (
        "case",
        "bonus_points",
        True,
    )


def test_a_case_decision_teaches_both_kinds(versions, make_user):
    case = _analyst_case(versions, score=0.2)
    decision = override_prediction(
        review_id=case.pk,
        actor=make_user("analyst"),
        reason_code="better-action",
        action_code="bonus_points",
        churn_label=True,
    )

    returned = label_decision(decision_id=decision.pk)
    label_decision(decision_id=decision.pk)  # a redelivery adds nothing

    examples = LabeledExample.objects.filter(decision=decision)
    assert examples.count() == 2
    churn = examples.get(kind="churn")
    action = examples.get(kind="next_action")
    assert returned.pk == churn.pk
    assert (churn.prediction_id, churn.churn_label, churn.agrees_with_model) == (
        case.prediction_id,
        True,
        False,
    )
    assert action.prediction_id == case.action_prediction_id
    assert action.action.code == "bonus_points"
    assert action.agrees_with_model is False


def test_correcting_only_the_churn_call_keeps_the_recommended_action(versions, make_user):
    case = _analyst_case(versions, score=0.2)

    decision = override_prediction(
        review_id=case.pk,
        actor=make_user("analyst"),
        reason_code="wrong-churn-call",
        churn_label=True,
    )

    assert decision.settled_action.code == "win_back_email"
    assert decision.churn_label is True
    example = label_decision(decision_id=decision.pk)
    action_example = LabeledExample.objects.get(decision=decision, kind="next_action")
    assert example.churn_label is True
    assert action_example.action.code == "win_back_email"
    assert action_example.agrees_with_model is True


def test_approving_a_case_confirms_both_and_a_repeat_returns_the_same_decision(versions, make_user):
    case = _analyst_case(versions, score=0.7)
    analyst = make_user("analyst")

    first = approve_prediction(review_id=case.pk, actor=analyst, reason_code="model-correct")
    again, created = decide_review(
        review_id=case.pk, actor=analyst, verdict="approve", reason_code="model-correct"
    )

    assert first.churn_label is True  # 70 %: the model calls churn
    assert first.settled_action.code == "win_back_email"
    assert (again.pk, created) == (first.pk, False)


def test_a_case_override_that_changes_nothing_is_refused(versions, make_user):
    case = _analyst_case(versions, score=0.2)

    with pytest.raises(InvalidDecision, match="approve it instead"):
        override_prediction(
            review_id=case.pk,
            actor=make_user("analyst"),
            reason_code="better-action",
            action_code="win_back_email",
            churn_label=False,
        )
    with pytest.raises(InvalidDecision, match="another action, the corrected churn call"):
        override_prediction(
            review_id=case.pk, actor=make_user("analyst", "second"), reason_code="better-action"
        )
    assert not Decision.objects.filter(review=case).exists()


def test_a_new_cycle_supersedes_the_pending_case_and_next_action_review(versions, lenient_catalog):
    member = MemberFactory()
    # A next-action review from before cases (its version was not active then).
    old = PredictionFactory(
        member=member,
        model_version=ModelVersionFactory(kind="next_action"),
        kind="next_action",
        cutoff=datetime(2026, 1, 1, tzinfo=UTC),
        confidence=0.3,
        probabilities={"win_back_email": 0.7, "no_action": 0.3},
    )
    ModelVersion.objects.filter(pk=versions["next_action"].pk).update(status="candidate")
    route_new_predictions(kind="next_action")
    ModelVersion.objects.filter(pk=versions["next_action"].pk).update(status="active")
    old_review = Review.objects.get(prediction=old)
    assert old_review.state == Review.State.PENDING and not old_review.is_case

    first = _cycle(member, versions, action={"confidence": 0.3})
    old_review.refresh_from_db()
    assert old_review.state == Review.State.SUPERSEDED

    second = _cycle(member, versions, action={"confidence": 0.3}, cutoff=LATER)
    first.refresh_from_db()
    assert first.state == Review.State.SUPERSEDED
    assert second.state == Review.State.PENDING


def test_a_next_action_policy_change_reroutes_the_cases(versions, lenient_catalog):
    case = _analyst_case(versions, score=0.2)
    assert awaiting_rerouting("next_action") == 0

    change_policy(
        kind="next_action",
        settings=replace(lenient_catalog, auto_approve_confidence=0.25),
        actor=None,
        reason="trust the next action more",
    )
    assert awaiting_rerouting("next_action") == 1
    result = reroute_undecided(kind="next_action")

    case.refresh_from_db()
    assert result.considered == 1
    assert case.route == Review.Route.AUTO
    assert case.action_policy.auto_approve_confidence == 0.25
    assert case.decision.decided_as == Decision.POLICY
    assert case.decision.settled_action.code == "win_back_email"
    assert awaiting_rerouting("next_action") == 0


def test_the_queue_row_of_a_case_shows_its_risk_and_recommended_action(versions):
    case = _analyst_case(versions, score=0.2)
    _cycle(MemberFactory(), versions, action={"confidence": 0.05})  # an expert's case

    page = pending_reviews_for(route=Review.Route.ANALYST)
    [row] = page.rows
    assert row.review_id == case.pk
    assert (row.kind, row.kind_label) == ("case", "Case")
    assert row.call == "20 %"
    assert row.call_detail  # the interval
    assert row.action == "Win-back email"
    assert row.action_detail.startswith("EV ")
    filtered = pending_reviews_for(
        route=Review.Route.ANALYST, filters=QueueFilters.from_params({"kind": "case"})
    )
    assert [row.review_id for row in filtered.rows] == [case.pk]
    churn_only = pending_reviews_for(
        route=Review.Route.ANALYST, filters=QueueFilters.from_params({"kind": "churn"})
    )
    assert churn_only.rows == ()


def test_the_api_decides_a_case_with_an_action_and_a_churn_call(versions, make_user):
    case = _analyst_case(versions, score=0.2)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=token_header(make_user("analyst")))

    detail = client.get(f"/api/reviews/{case.pk}/").json()
    assert detail["kind"] == "case"
    assert detail["action_prediction"]["id"] == case.action_prediction_id
    assert detail["recommended_action_code"] == "win_back_email"

    empty = client.post(
        f"/api/reviews/{case.pk}/override/", {"reason_code": "better-action"}, format="json"
    )
    assert empty.status_code == 400
    assert "action_code, churn_label, or both" in str(empty.json())

    response = client.post(
        f"/api/reviews/{case.pk}/override/",
        {"reason_code": "better-action", "action_code": "no_action", "churn_label": True},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["kind"], body["churn_label"], body["settled_action_code"]) == (
        "case",
        True,
        "no_action",
    )


def test_override_rates_count_each_side_of_a_case_by_what_it_changed(versions, make_user):
    from learning.selectors import override_rates

    analyst = make_user("analyst")
    action_changed = _analyst_case(versions, score=0.2)
    override_prediction(
        review_id=action_changed.pk,
        actor=analyst,
        reason_code="better-action",
        action_code="bonus_points",
    )
    approved = _analyst_case(versions, score=0.2)
    approve_prediction(review_id=approved.pk, actor=analyst, reason_code="model-correct")

    churn = override_rates("churn")
    action = override_rates("next_action")

    assert churn["per_version"] == [{"version": versions["churn"].pk, "n": 2, "rate": 0.0}]
    assert action["per_version"] == [{"version": versions["next_action"].pk, "n": 2, "rate": 0.5}]
    assert action["per_reason"] == [
        {"reason": "better-action", "n": 1},
        {"reason": "model-correct", "n": 1},
    ]


def test_the_decision_feed_filters_cases(versions, make_user):
    from integrations.services.feed import decision_feed

    case = _cycle(MemberFactory(), versions)  # auto-approved: the policy's decision
    admin = make_user("admin")

    cases = decision_feed(admin, since=0, limit=10, kind="case").results
    churn_reviews = decision_feed(admin, since=0, limit=10, kind="churn").results

    assert [item["review_id"] for item in cases] == [case.pk]
    assert churn_reviews == []


def test_erasing_a_member_keeps_the_case_whole_and_blanks_both_predictions(versions, make_user):
    from loyalty.services.erasure import erase_member

    member = MemberFactory()
    waiting = _next_action(member, versions, cutoff=LATER)  # not routed yet: deleted
    case = _cycle(member, versions)

    erase_member(member_id=member.pk, actor=make_user("admin"))

    case.refresh_from_db()
    assert case.is_case
    carried = Prediction.objects.get(pk=case.action_prediction_id)
    assert (carried.feature_values, carried.explanation, carried.member_value) == ([], {}, None)
    assert not Prediction.objects.filter(pk=waiting.pk).exists()


def test_bulk_approval_of_cases_settles_each_ones_recommendation_and_churn_call(
    versions, make_user
):
    from reviews.services.verdicts import bulk_approve

    risky = _analyst_case(versions, score=0.7)
    safe = _analyst_case(versions, score=0.2)

    approval = bulk_approve(review_ids=[risky.pk, safe.pk], actor=make_user("analyst"))

    assert approval.problems == ()
    decisions = {d.review_id: d for d in Decision.objects.filter(review__in=[risky, safe])}
    assert (decisions[risky.pk].churn_label, decisions[safe.pk].churn_label) == (True, False)
    assert {d.settled_action.code for d in decisions.values()} == {"win_back_email"}
