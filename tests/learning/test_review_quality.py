"""Review quality from real decisions and recorded outcomes: which decisions count, whose calls
they are, how they group, who sees what, and the page."""

import json
import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from learning.models import LabeledExample
from learning.review_quality import EVERYONE, OWN, quality_scope, review_quality
from loyalty.models import Action
from reviews.models import Decision, Review
from reviews.policy_settings import PolicySettings
from reviews.selectors.policy import current_policy
from reviews.services.decisions import approve_prediction, override_prediction
from reviews.services.policy import change_policy
from reviews.services.routing import route_new_predictions
from tests.conftest import TEST_PASSWORD
from tests.factories import MemberFactory, ModelVersionFactory, PredictionFactory

pytestmark = pytest.mark.django_db

# Confidence alone routes (no audit sample, no risk band): 0.99 auto, 0.8 analyst, 0.2 expert.
CONFIDENCE = {"auto": 0.99, "analyst": 0.8, "expert": 0.2}
OBSERVED_AT = datetime(2026, 4, 1, tzinfo=UTC)


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
def people(make_user):
    return {
        "ann": make_user("analyst", "ann"),
        "bob": make_user("analyst", "bob"),
        "eve": make_user("expert", "eve"),
        "admin": make_user("admin", "boss"),
        "integrator": make_user("integrator", "feed"),
    }


def route_by_confidence(**changes) -> None:
    """A churn policy version that routes from confidence alone (no audit sample, no risk band),
    with `changes` to its other settings."""
    settings = PolicySettings.of(current_policy("churn"))
    change_policy(
        kind="churn",
        settings=replace(
            settings, audit_sample_rate=0.0, human_risk_low=None, human_risk_high=None, **changes
        ),
        actor=None,
        reason="routes from confidence alone",
    )


def routed_reviews(plan: list[tuple[str, str, float]]) -> dict[str, Review]:
    """A churn prediction per (name, route, score), of member M-<name>, routed; their reviews."""
    version = ModelVersionFactory()
    predictions = {
        name: PredictionFactory(
            model_version=version,
            confidence=CONFIDENCE[route],
            score=score,
            member__external_id=f"M-{name}",
        )
        for name, route, score in plan
    }
    route_new_predictions(kind="churn")
    reviews = {name: Review.objects.get(prediction=p) for name, p in predictions.items()}
    assert {name: review.route for name, review in reviews.items()} == {
        name: route for name, route, _ in plan
    }
    return reviews


def decide(review: Review, user, churns: bool | None = None) -> None:
    """Approve the model's call (`churns` None) or override it with `churns`."""
    if churns is None:
        approve_prediction(review_id=review.pk, actor=user, reason_code="model-correct")
    else:
        override_prediction(
            review_id=review.pk, actor=user, reason_code="wrong-churn-call", churn_label=churns
        )


@pytest.fixture
def scored(reason_codes, people):
    """Decisions with outcomes (person's call / model's call / outcome):

    ann: approve 0.3 (stays/stays/churned), override→churns 0.3 (churns/stays/churned),
         override→stays 0.7 (stays/churns/churned);
    bob: approve 0.2 (stays/stays/stayed), approve 0.1 in the audit sample (stays/stays/
         stayed), override→stays 0.6 (stays/churns/stayed);
    eve: approve 0.6 on the expert route (churns/churns/stayed).
    Not scored: the policy's auto-approval (it has an outcome), and ann's approval without one.
    """
    route_by_confidence()
    reviews = routed_reviews(
        [
            # (name, route, score)
            ("ann-approve", "analyst", 0.3),
            ("ann-to-churn", "analyst", 0.3),
            ("ann-to-stay", "analyst", 0.7),
            ("ann-no-outcome", "analyst", 0.3),
            ("bob-approve", "analyst", 0.2),
            ("bob-audit", "analyst", 0.1),
            ("bob-to-stay", "analyst", 0.6),
            ("eve-approve", "expert", 0.6),
            ("auto", "auto", 0.1),
        ]
    )
    Review.objects.filter(pk=reviews["bob-audit"].pk).update(route_reason="audit sample (2%)")

    def approve(name, who):
        decide(reviews[name], people[who])

    def override(name, who, churns):
        decide(reviews[name], people[who], churns)

    approve("ann-approve", "ann")
    override("ann-to-churn", "ann", True)
    override("ann-to-stay", "ann", False)
    approve("ann-no-outcome", "ann")
    approve("bob-approve", "bob")
    approve("bob-audit", "bob")
    override("bob-to-stay", "bob", False)
    approve("eve-approve", "eve")
    outcomes = {
        "ann-approve": True,
        "ann-to-churn": True,
        "ann-to-stay": True,
        "bob-approve": False,
        "bob-audit": False,
        "bob-to-stay": False,
        "eve-approve": False,
        "auto": False,
    }
    for name, churned in outcomes.items():
        _outcome(reviews[name], churned)
    return reviews


def _rows(quality, grouping):
    return {row.key: row.scores for row in quality.groups[grouping]}


def test_only_people_decisions_with_an_outcome_are_scored(scored, people):
    quality = review_quality(people["eve"], EVERYONE)

    assert quality.overall.n == 7  # not the auto-approval, not the one without an outcome
    members = {item.member for item in quality.disagreements}
    assert members == {"M-ann-to-churn", "M-ann-to-stay", "M-bob-to-stay"}


def test_per_reviewer_person_model_and_override_precision(scored, people):
    rows = _rows(review_quality(people["eve"], EVERYONE), "reviewer")

    assert set(rows) == {"ann", "bob", "eve"}
    ann = rows["ann"]
    # Person: stays, churns, stays against three churners; model: stays, stays, churns.
    assert ann.n == 3
    assert (ann.person.accuracy.hits, ann.person.accuracy.n) == (1, 3)
    assert (ann.person.recall.hits, ann.person.recall.n) == (1, 3)
    assert (ann.person.precision.hits, ann.person.precision.n) == (1, 1)
    assert ann.person.balanced_accuracy.value is None  # no stayers among ann's items
    assert (ann.model.accuracy.hits, ann.model.accuracy.n) == (1, 3)
    assert (ann.override_precision.hits, ann.override_precision.n) == (1, 2)
    bob = rows["bob"]
    # An approval is the model's call: bob's two approvals agree with it, one override.
    assert (bob.person.accuracy.hits, bob.person.accuracy.n) == (3, 3)
    assert (bob.model.accuracy.hits, bob.model.accuracy.n) == (2, 3)
    assert (bob.override_precision.hits, bob.override_precision.n) == (1, 1)
    eve = rows["eve"]
    # eve approved a 0.6: her call is the model's "churns"; the member stayed.
    assert (eve.person.accuracy.hits, eve.model.accuracy.hits, eve.n) == (0, 0, 1)
    assert (eve.person.precision.hits, eve.person.precision.n) == (0, 1)
    assert eve.override_precision.n == 0
    assert all(scores.is_small for scores in rows.values())


def test_grouped_by_route_reason_version_and_month(scored, people):
    quality = review_quality(people["admin"], EVERYONE)

    routes = _rows(quality, "route")
    assert {key: scores.n for key, scores in routes.items()} == {
        "analyst": 5,
        "audit": 1,
        "expert": 1,
    }
    assert {row.key: row.label for row in quality.groups["route"]} == {
        "analyst": "Analyst",
        "audit": "Audit sample",
        "expert": "Expert",
    }
    reasons = _rows(quality, "reason")
    assert {key: scores.n for key, scores in reasons.items()} == {
        "model-correct": 4,
        "wrong-churn-call": 3,
    }
    assert (
        reasons["wrong-churn-call"].override_precision.hits,
        reasons["wrong-churn-call"].override_precision.n,
    ) == (2, 3)
    version = f"v{scored['auto'].prediction.model_version_id}"
    assert {key: scores.n for key, scores in _rows(quality, "model_version").items()} == {
        version: 7
    }
    (month,) = quality.by_month
    assert month.scores.n == 7
    assert (month.scores.override_precision.hits, month.scores.override_precision.n) == (2, 3)


def test_disagreements_sort_by_outcome(scored, people):
    def outcomes(sort):
        quality = review_quality(people["eve"], EVERYONE, sort=sort)
        return [item.call.outcome for item in quality.disagreements]

    assert outcomes("outcome") == [True, True, False]
    assert outcomes("-outcome") == [False, True, True]
    assert sorted(outcomes("nonsense")) == [False, True, True]  # unknown: newest first
    assert review_quality(people["eve"], EVERYONE, sort="nonsense").sort == "date"


def test_who_sees_whose_figures(people):
    assert quality_scope(people["ann"]) == OWN
    assert quality_scope(people["eve"]) == EVERYONE
    assert quality_scope(people["admin"]) == EVERYONE
    assert quality_scope(people["integrator"]) is None


def test_an_analyst_sees_only_their_own_rows(scored, people):
    quality = review_quality(people["ann"], quality_scope(people["ann"]))

    assert quality.overall.n == 3
    assert [row.key for row in quality.groups["reviewer"]] == ["ann"]
    assert {item.reviewer for item in quality.disagreements} == {"ann"}


def _page(client, user, **query):
    client.login(username=user.username, password=TEST_PASSWORD)
    return client.get(reverse("learning:review_quality"), query)


def test_the_page_draws_its_charts_as_json_specs(scored, people, client):
    response = _page(client, people["eve"], sort="outcome")

    assert response.status_code == 200
    page = response.content.decode()
    # Nobody here has both churners and stayers among their items: no balanced accuracy.
    assert 'id="quality-balanced-fig"' not in page
    assert "No chart of balanced accuracy per reviewer" in page
    for name in ("quality-accuracy-fig", "quality-overrides-fig"):
        assert f'<div id="{name}" class="js-plotly-figure" data-figure="{name}-spec">' in page
        spec = re.search(rf'<script id="{name}-spec" type="application/json">(.*?)</script>', page)
        figure = json.loads(spec.group(1))
        assert set(figure) == {"data", "layout", "config"}
        for trace in figure["data"]:
            assert trace["error_y"]["array"]  # no point without its interval
    accuracy = json.loads(
        re.search(
            r'<script id="quality-accuracy-fig-spec" type="application/json">(.*?)</script>', page
        ).group(1)
    )
    assert accuracy["data"][0]["x"] == ["ann (n=3)", "bob (n=3)", "eve (n=1)"]
    assert "<script>" not in page  # no inline script: the CSP forbids it
    assert page.count('data-testid="disagreement"') == 3
    assert "small sample" in page


def test_the_analyst_page_shows_only_their_rows(scored, people, client):
    page = _page(client, people["bob"]).content.decode()

    assert "M-bob-to-stay" in page
    assert "M-ann-to-churn" not in page
    assert ">ann<" not in page


def test_the_page_without_scored_decisions_says_so(people, client):
    response = _page(client, people["ann"])

    assert response.status_code == 200
    assert 'data-testid="quality-empty"' in response.content.decode()


def test_an_integrator_may_not_open_the_page(people, client):
    assert _page(client, people["integrator"]).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(reverse("learning:review_quality"))

    assert response.status_code == 302
    assert "login" in response["Location"]


def test_the_nav_and_the_loop_page_link_to_it(people, client):
    url = reverse("learning:review_quality")

    assert url in _page(client, people["ann"]).content.decode()  # analyst's nav
    client.logout()
    client.login(username=people["eve"].username, password=TEST_PASSWORD)
    assert (
        'data-testid="review-quality-link"' in client.get(reverse("learning:loop")).content.decode()
    )
    client.logout()
    client.login(username=people["integrator"].username, password=TEST_PASSWORD)
    assert url not in client.get(reverse("home")).content.decode()


CYCLE = datetime(2026, 3, 1, tzinfo=UTC)


def _analyst_case(case_versions, name: str) -> Review:
    """A case for an analyst: churn 0.2 ("stays") carrying a win-back email recommendation."""
    member = MemberFactory(external_id=name)
    carried = PredictionFactory(
        member=member,
        model_version=case_versions["next_action"],
        kind="next_action",
        cutoff=CYCLE,
        score=0.7,
        confidence=0.3,
        probabilities={"win_back_email": 0.7, "no_action": 0.3},
        recommended_action=Action.objects.get(code="win_back_email"),
    )
    churn = PredictionFactory(
        member=member, model_version=case_versions["churn"], cutoff=CYCLE, score=0.2
    )
    route_new_predictions(kind="churn")
    case = Review.objects.get(prediction=churn)
    assert (case.route, case.action_prediction_id) == ("analyst", carried.pk)
    return case


def test_actions_are_judged_by_the_members_held_out_at_random(case_versions, make_user):
    analyst = make_user("analyst", "act")
    cases = {name: _analyst_case(case_versions, name) for name in ("M-1", "M-2", "M-3", "M-4")}
    for name in ("M-1", "M-2", "M-3"):  # the win-back email is sent
        approve_prediction(review_id=cases[name].pk, actor=analyst, reason_code="model-correct")
    override_prediction(  # nothing to send: not an action choice to judge
        review_id=cases["M-4"].pk,
        actor=analyst,
        reason_code="better-action",
        action_code="no_action",
    )
    # The control group held M-3 out (drawn at random when the decision was made).
    Decision.objects.filter(review=cases["M-3"]).update(held_out=True, holdout_reason="action")
    Decision.objects.filter(review=cases["M-1"]).update(held_out=False)
    Decision.objects.filter(review=cases["M-2"]).update(held_out=False)
    for name, churned in {"M-1": False, "M-2": True, "M-3": True, "M-4": True}.items():
        _outcome(cases[name], churned=churned)

    quality = review_quality(analyst, quality_scope(analyst))

    (row,) = quality.actions
    assert row.reviewer == "act"
    effect = row.effect
    assert (effect.treated.hits, effect.treated.n) == (1, 2)
    assert (effect.held_out.hits, effect.held_out.n) == (1, 1)
    assert effect.prevented.value == pytest.approx(0.5)  # 100 % held-out churn − 50 % treated
    assert effect.prevented.low < 0 < effect.prevented.high  # three members prove nothing
    assert effect.is_small


def test_a_case_is_scored_by_the_churn_call_it_settled_on(case_versions, make_user):
    analyst = make_user("analyst", "cas")

    def analyst_case(name):
        return _analyst_case(case_versions, name)

    action_only, corrected = analyst_case("M-action-only"), analyst_case("M-corrected")
    # Overridden on its action alone: the case keeps the model's churn call ("stays").
    override_prediction(
        review_id=action_only.pk,
        actor=analyst,
        reason_code="better-action",
        action_code="bonus_points",
    )
    override_prediction(
        review_id=corrected.pk, actor=analyst, reason_code="wrong-churn-call", churn_label=True
    )
    for case in (action_only, corrected):
        _outcome(case, churned=True)
        # The carried next-action prediction's outcome is not a churn call to score.
        carried = case.action_prediction
        LabeledExample.objects.create(
            source=LabeledExample.Source.OUTCOME,
            kind="next_action",
            prediction=carried,
            member=carried.member,
            model_version=carried.model_version,
            cutoff=carried.cutoff,
            weight=0.0,
            excluded=True,
            observed_at=OBSERVED_AT,
        )

    quality = review_quality(analyst, quality_scope(analyst))

    assert quality.overall.n == 2
    assert (quality.overall.person.accuracy.hits, quality.overall.model.accuracy.hits) == (1, 0)
    assert [item.member for item in quality.disagreements] == ["M-corrected"]
    assert (quality.overall.override_precision.hits, quality.overall.override_precision.n) == (1, 1)
