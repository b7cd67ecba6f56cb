"""Contact rules: a frequency cap per member, a budget per action, marketing consent as it
stands at the decision. A decision that breaks one is flagged, never auto-approved, and goes
out only when a person overrides the rules and says why."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from loyalty.models import Action, ContactRules, OutboxEvent
from reviews.exceptions import InvalidDecision
from reviews.models import Review
from reviews.services.decisions import approve_prediction
from reviews.services.routing import route_new_predictions
from tests.factories import MemberFactory, ModelVersionFactory, PredictionFactory


@pytest.fixture
def catalog(lenient_catalog):
    ContactRules.objects.update_or_create(
        pk=1,
        defaults={"frequency_cap_actions": 2, "frequency_cap_days": 30, "budget_period_days": 30},
    )


def _predict(member, *, action="win_back_email", confidence=0.9, spend=100.0, days_ago=0):
    return PredictionFactory(
        member=member,
        model_version=ModelVersionFactory(kind="next_action"),
        kind="next_action",
        cutoff=timezone.now().replace(microsecond=0) - timedelta(days=days_ago),
        score=0.7,
        confidence=confidence,
        probabilities={action: 0.7, "no_action": 0.3},
        recommended_action=Action.objects.get(code=action),
        spend=spend,
    )


def _review(prediction) -> Review:
    return Review.objects.get(prediction=prediction)


def test_a_member_at_the_frequency_cap_goes_to_an_analyst_flagged(catalog):
    member = MemberFactory()
    for days_ago, action in ((3, "bonus_points"), (2, "free_delivery")):
        _predict(member, action=action, days_ago=days_ago)
        route_new_predictions(kind="next_action")  # two auto-approved, executed actions
    third = _predict(member, action="win_back_email")

    route_new_predictions(kind="next_action")

    review = _review(third)
    assert review.route == Review.Route.ANALYST
    assert review.contact_flags == ["frequency_cap"]
    assert review.route_reason.startswith("contact rules: the member had 2 actions in the last 30")


def test_no_action_breaks_no_rule(catalog):
    member = MemberFactory(consent_marketing=False)

    prediction = _predict(member, action="no_action")
    route_new_predictions(kind="next_action")
    review = _review(prediction)

    assert review.route == Review.Route.AUTO
    assert review.contact_flags == []


def test_an_action_budget_auto_approves_the_highest_priorities_first(catalog):
    Action.objects.filter(code="bonus_points").update(budget_count=2)
    # Priority grows with churn risk: the members likeliest to leave come first.
    predictions = {}
    for risk in (0.1, 0.3, 0.2):
        member = MemberFactory()
        PredictionFactory(member=member, kind="churn", score=risk)
        predictions[risk] = _predict(member, action="bonus_points")

    route_new_predictions(kind="next_action")

    routes = {risk: _review(prediction).route for risk, prediction in predictions.items()}
    assert routes == {0.3: "auto", 0.2: "auto", 0.1: "analyst"}
    assert _review(predictions[0.1]).contact_flags == ["budget_count"]


def test_a_money_budget_counts_cost_times_decisions(catalog):
    # Bonus points cost 3.00: a budget of 5.00 pays for one.
    Action.objects.filter(code="bonus_points").update(budget_amount=Decimal("5.00"))
    first_member, second_member = MemberFactory(), MemberFactory()
    PredictionFactory(member=first_member, kind="churn", score=0.4)
    PredictionFactory(member=second_member, kind="churn", score=0.2)
    first = _predict(first_member, action="bonus_points")
    second = _predict(second_member, action="bonus_points")

    route_new_predictions(kind="next_action")

    assert _review(first).route == Review.Route.AUTO
    assert _review(second).route == Review.Route.ANALYST
    assert _review(second).contact_flags == ["budget_amount"]


def test_without_marketing_consent_a_person_must_override_with_a_reason(catalog, make_user):
    member = MemberFactory(consent_marketing=False)
    prediction = _predict(member)
    route_new_predictions(kind="next_action")
    review = _review(prediction)
    assert (review.route, review.contact_flags) == ("analyst", ["no_marketing_consent"])
    analyst = make_user("analyst")

    with pytest.raises(InvalidDecision, match="has not consented to marketing"):
        approve_prediction(review_id=review.pk, actor=analyst, reason_code="model-correct")
    with pytest.raises(InvalidDecision, match="say why in the comment"):
        approve_prediction(
            review_id=review.pk,
            actor=analyst,
            reason_code="model-correct",
            override_contact_rules=True,
        )
    assert not OutboxEvent.objects.filter(member_id=member.pk).exists()

    decision = approve_prediction(
        review_id=review.pk,
        actor=analyst,
        reason_code="model-correct",
        comment="Service message about their expiring points, not marketing.",
        override_contact_rules=True,
    )

    assert decision.contact_flags == ["no_marketing_consent"]
    [event] = OutboxEvent.objects.filter(member_id=member.pk, type="decision.created")
    assert event.data["contact_rules_overridden"] == ["no_marketing_consent"]


def test_consent_is_checked_as_it_stands_when_the_decision_is_made(catalog, make_user):
    member = MemberFactory(consent_marketing=True)
    prediction = _predict(member, confidence=0.3)  # an analyst's, no rule broken
    route_new_predictions(kind="next_action")
    review = _review(prediction)
    assert review.contact_flags == []
    member.consent_marketing = False
    member.save(update_fields=["consent_marketing"])

    with pytest.raises(InvalidDecision, match="has not consented to marketing"):
        approve_prediction(
            review_id=review.pk, actor=make_user("analyst"), reason_code="model-correct"
        )


def test_the_api_names_the_broken_rule_and_takes_an_override_with_a_reason(
    catalog, api_client, make_user
):
    member = MemberFactory(consent_marketing=False)
    prediction = _predict(member)
    route_new_predictions(kind="next_action")
    review = _review(prediction)
    api_client.force_authenticate(make_user("analyst"))
    url = f"/api/reviews/{review.pk}/approve/"

    refused = api_client.post(url, {"reason_code": "model-correct"}, format="json")
    accepted = api_client.post(
        url,
        {
            "reason_code": "model-correct",
            "override_contact_rules": True,
            "comment": "The member asked for it at the desk.",
        },
        format="json",
    )

    assert refused.status_code == 400
    assert "not consented to marketing" in refused.json()["detail"]
    assert accepted.status_code == 201


def test_the_queue_row_flags_a_broken_rule_whatever_routed_it_there(catalog, client, make_user):
    from django.urls import reverse

    from tests.conftest import TEST_PASSWORD

    member = MemberFactory(external_id="UNSURE", consent_marketing=False)
    _predict(member, confidence=0.3)  # an analyst's for its confidence, and flagged too
    route_new_predictions(kind="next_action")
    client.login(username=make_user("analyst").username, password=TEST_PASSWORD)

    response = client.get(reverse("reviews:queue"))

    [row] = [row for row in response.context["page"].rows if row.member == "UNSURE"]
    assert row.reason.startswith("confidence 0.30")
    assert row.contact_rules == "the member has not consented to marketing"
    assert 'data-testid="contact-flag"' in response.content.decode()
