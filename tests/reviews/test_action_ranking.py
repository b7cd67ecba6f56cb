"""Next-action reviews recommend what their policy's ranking picks: propensity (the model's
likeliest action) or expected value (P(churn) x retention gain x member value - cost), with "No
action" winning when nothing is worth more than it costs."""

from dataclasses import replace

import pytest
from django.urls import reverse

from loyalty.models import Action
from loyalty.services.catalog import seed_action_catalog
from reviews.models import EscalationPolicy, Review
from reviews.policy_settings import DEFAULT_SETTINGS
from reviews.services.decision_events import decision_data
from reviews.services.decisions import approve_prediction
from reviews.services.policy import change_policy
from reviews.services.rerouting import reroute_undecided
from reviews.services.routing import route_new_predictions
from tests.conftest import TEST_PASSWORD
from tests.factories import MemberFactory, ModelVersionFactory, PredictionFactory

# The model's propensities: it likes the cheap email best.
PROPENSITIES = {"win_back_email": 0.6, "bonus_points": 0.25, "personal_discount": 0.15}


def _policy(ranking: str) -> None:
    settings = replace(
        DEFAULT_SETTINGS["next_action"],
        ranking=ranking,
        auto_approve_confidence=0.99,  # everything goes to people: the pages are what we look at
        expert_confidence=0.1,
        audit_sample_rate=0.0,
    )
    change_policy(kind="next_action", settings=settings, actor=None, reason=f"rank by {ranking}")


def _member(*, churn: float | None, value: float, external_id: str):
    member = MemberFactory(external_id=external_id)
    if churn is not None:
        PredictionFactory(member=member, kind="churn", score=churn, spend=value)
    prediction = PredictionFactory(
        member=member,
        model_version=NEXT_ACTION_VERSION[0],
        kind="next_action",
        score=PROPENSITIES["win_back_email"],
        confidence=0.8,
        probabilities=PROPENSITIES,
        recommended_action=Action.objects.get(code="win_back_email"),
        label_set=["win_back_email", "bonus_points"],
        spend=value,
    )
    return prediction


NEXT_ACTION_VERSION: list = []


@pytest.fixture
def catalog(reason_codes):
    seed_action_catalog()  # with its retention-gain priors
    NEXT_ACTION_VERSION[:] = [ModelVersionFactory(kind="next_action")]
    yield
    NEXT_ACTION_VERSION.clear()


def _review(prediction) -> Review:
    return Review.objects.select_related("recommended_action").get(prediction=prediction)


def test_by_expected_value_the_review_recommends_the_action_worth_most(catalog):
    _policy(EscalationPolicy.Ranking.EXPECTED_VALUE)
    at_risk = _member(churn=0.5, value=1000.0, external_id="AT-RISK")
    safe = _member(churn=0.02, value=100.0, external_id="SAFE")
    unscored = _member(churn=None, value=1000.0, external_id="UNSCORED")

    route_new_predictions(kind="next_action")

    # 0.5 x 8 % x 1000 - 5 = 35 beats bonus points (0.5 x 5 % x 1000 - 3 = 22) and the email
    # the model likes best (0.5 x 3 % x 1000 - 0.50 = 14.50).
    review = _review(at_risk)
    assert review.recommended_action.code == "personal_discount"
    assert review.expected_value == pytest.approx(35.0)
    assert review.risk == 0.5
    # Nothing pays for a member this unlikely to leave: leave them alone.
    review = _review(safe)
    assert review.recommended_action.code == "no_action"
    assert review.expected_value == pytest.approx(0.0)
    # No churn score to weigh with: the model's likeliest action, no expected value.
    review = _review(unscored)
    assert review.recommended_action.code == "win_back_email"
    assert review.expected_value is None
    assert review.risk is None


def test_by_propensity_the_review_recommends_the_likeliest_action_with_its_worth(catalog):
    _policy(EscalationPolicy.Ranking.PROPENSITY)
    at_risk = _member(churn=0.5, value=1000.0, external_id="AT-RISK")

    route_new_predictions(kind="next_action")

    review = _review(at_risk)
    assert review.recommended_action.code == "win_back_email"
    assert review.expected_value == pytest.approx(14.5)


def test_an_action_the_member_may_not_receive_is_not_recommended_whatever_it_is_worth(catalog):
    _policy(EscalationPolicy.Ranking.EXPECTED_VALUE)
    # Personal outreach (15 % gain) would be worth most, but it needs the gold tier.
    Action.objects.filter(code="personal_outreach").update(retention_gain=0.9)
    silver = _member(churn=0.5, value=1000.0, external_id="SILVER")

    route_new_predictions(kind="next_action")

    assert _review(silver).recommended_action.code == "personal_discount"


def test_changing_the_ranking_reranks_what_nobody_decided_and_keeps_what_was_decided(
    catalog, make_user
):
    _policy(EscalationPolicy.Ranking.PROPENSITY)
    decided = _member(churn=0.5, value=1000.0, external_id="DECIDED")
    pending = _member(churn=0.5, value=1000.0, external_id="PENDING")
    route_new_predictions(kind="next_action")
    expert = make_user("expert")
    decision = approve_prediction(
        review_id=_review(decided).pk, actor=expert, reason_code="model-correct"
    )

    _policy(EscalationPolicy.Ranking.EXPECTED_VALUE)
    reroute_undecided(kind="next_action")

    assert _review(pending).recommended_action.code == "personal_discount"
    assert _review(pending).policy.ranking == EscalationPolicy.Ranking.EXPECTED_VALUE
    assert _review(decided).recommended_action.code == "win_back_email"
    # What was approved is what leaves the product: the recommendation the person saw.
    decision.refresh_from_db()
    assert decision_data(decision)["action_code"] == "win_back_email"


def test_approving_settles_on_the_ranked_recommendation(catalog, make_user):
    _policy(EscalationPolicy.Ranking.EXPECTED_VALUE)
    at_risk = _member(churn=0.5, value=1000.0, external_id="AT-RISK")
    route_new_predictions(kind="next_action")

    decision = approve_prediction(
        review_id=_review(at_risk).pk, actor=make_user("expert"), reason_code="model-correct"
    )

    assert decision_data(decision)["action_code"] == "personal_discount"


def test_the_member_page_shows_each_actions_worth_with_its_numbers(catalog, client, make_user):
    _policy(EscalationPolicy.Ranking.EXPECTED_VALUE)
    at_risk = _member(churn=0.5, value=1000.0, external_id="AT-RISK")
    route_new_predictions(kind="next_action")
    client.login(username=make_user("expert").username, password=TEST_PASSWORD)

    response = client.get(reverse("reviews:review", args=[_review(at_risk).pk]))

    rows = response.context["review_page"].ranked_actions
    assert [row.code for row in rows][:3] == ["personal_discount", "bonus_points", "tier_trial"]
    top = rows[0]
    assert top.is_recommended
    assert top.expected_value == "35.00"
    assert top.formula == "50 % × 8 % × 1,000 − 5.00"
    assert "personal_outreach" not in {row.code for row in rows}  # gold only
    page = response.content.decode()
    assert 'data-testid="action-worth"' in page
    assert "ranked by expected value" in page


def test_the_queue_row_shows_the_recommendation_with_its_worth_and_cost(catalog, client, make_user):
    _policy(EscalationPolicy.Ranking.EXPECTED_VALUE)
    _member(churn=0.5, value=1000.0, external_id="AT-RISK")
    route_new_predictions(kind="next_action")
    client.login(username=make_user("analyst").username, password=TEST_PASSWORD)

    response = client.get(reverse("reviews:queue"))

    row = next(row for row in response.context["page"].rows if row.member == "AT-RISK")
    assert row.call == "Personal discount"
    assert row.call_detail == "EV 35.00 · cost 5.00"


def test_the_api_gives_the_recommendation_and_its_expected_value(catalog, api_client, make_user):
    _policy(EscalationPolicy.Ranking.EXPECTED_VALUE)
    at_risk = _member(churn=0.5, value=1000.0, external_id="AT-RISK")
    route_new_predictions(kind="next_action")
    api_client.force_authenticate(make_user("expert"))

    body = api_client.get(f"/api/reviews/{_review(at_risk).pk}/").json()

    assert body["recommended_action_code"] == "personal_discount"
    assert body["expected_value"] == pytest.approx(35.0)
    assert body["risk"] == 0.5


def test_the_policy_page_sets_the_ranking_of_next_actions_only(client, make_user, reason_codes):
    client.login(username=make_user("admin").username, password=TEST_PASSWORD)

    churn_page = client.get(reverse("reviews:policy", args=["churn"]))
    action_page = client.get(reverse("reviews:policy", args=["next_action"]))

    assert "ranking" not in churn_page.context["form"].fields
    assert "ranking" in action_page.context["form"].fields
