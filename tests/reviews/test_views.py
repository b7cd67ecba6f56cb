"""The review pages through Django's test client: queues, member page, decisions, what-if."""

import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse

from predictions.models import Prediction
from reviews.models import Decision, Review
from tests.conftest import TEST_PASSWORD
from tests.factories import EventFactory, MemberFactory, PredictionFactory, people_decisions
from tests.predictions.conftest import (  # noqa: F401  (fixtures that train a real model)
    CUTOFF,
    active_churn_version,
    active_tree_churn_version,
    generated_members,
)

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
EXPLANATION = {
    "base_value": -1.2,
    "margin": 0.4,
    "top": [
        {
            "feature": "days_since_last_purchase",
            "name": "Days since last purchase",
            "value": 41.0,
            "contribution": 1.1,
        },
        {
            "feature": "spend_365",
            "name": "Spend, last 365 days",
            "value": 820.5,
            "contribution": -0.3,
        },
    ],
    "remainder": 0.8,
}


@pytest.fixture
def analyst_client(client, make_user):
    client.login(username=make_user("analyst").username, password=TEST_PASSWORD)
    return client


@pytest.fixture
def expert_client(client, make_user):
    client.login(username=make_user("expert").username, password=TEST_PASSWORD)
    return client


def test_the_analyst_queue_lists_analyst_items_only(analyst_client, routed):
    response = analyst_client.get(reverse("reviews:queue"))

    assert response.status_code == 200
    listed = [row.review_id for row in response.context["page"].rows]
    assert listed == [routed["analyst"].pk]
    html = response.content.decode()
    assert routed["analyst"].member.external_id in html
    assert routed["expert"].member.external_id not in html
    assert 'src="/static/js/review.js"' in html


def test_an_analyst_cannot_open_the_expert_queue(analyst_client, routed):
    assert analyst_client.get(reverse("reviews:expert_queue")).status_code == 403


def test_the_expert_queue_lists_expert_items(expert_client, routed):
    response = expert_client.get(reverse("reviews:expert_queue"))

    assert [row.review_id for row in response.context["page"].rows] == [routed["expert"].pk]


def test_filters_are_kept_on_the_next_page_link(analyst_client, reason_codes, without_blind_review):
    for _ in range(51):
        PredictionFactory(confidence=0.8, score=0.7)
    from reviews.services.routing import route_new_predictions

    route_new_predictions(kind="churn")

    response = analyst_client.get(reverse("reviews:queue"), {"kind": "churn", "risk": "high"})

    assert len(response.context["page"].rows) == 50
    next_url = response.context["next_url"]
    assert next_url.startswith("/reviews/?kind=churn&risk=high&after=")
    second = analyst_client.get(next_url)
    assert len(second.context["page"].rows) == Review.objects.filter(route="analyst").count() - 50


def test_an_expert_item_is_404_for_an_analyst_on_the_page_and_on_post(analyst_client, routed):
    review = routed["expert"]

    page = analyst_client.get(reverse("reviews:review", args=[review.pk]))
    decide = analyst_client.post(
        reverse("reviews:decide", args=[review.pk]),
        {"verdict": "approve", "reason": "model-correct"},
    )
    quick = analyst_client.post(
        reverse("reviews:quick_decide", args=[review.pk]), {"verdict": "approve"}, **HTMX
    )

    assert (page.status_code, decide.status_code, quick.status_code) == (404, 404, 404)
    assert str(review.member.external_id) not in quick.content.decode()
    assert not people_decisions().exists()


def test_approving_from_the_queue_twice_gives_the_same_decision(analyst_client, routed):
    review = routed["analyst"]
    url = reverse("reviews:quick_decide", args=[review.pk])

    first = analyst_client.post(url, {"verdict": "approve"}, **HTMX)
    again = analyst_client.post(url, {"verdict": "approve"}, **HTMX)

    assert (first.status_code, again.status_code) == (200, 200)
    assert "Approved " in first.content.decode()
    decision = Decision.objects.get(review=review)
    assert (decision.verdict, decision.reason.code) == ("approve", "model-correct")


def test_a_conflicting_second_decision_is_409_with_the_message(analyst_client, routed):
    review = routed["analyst"]
    analyst_client.post(
        reverse("reviews:quick_decide", args=[review.pk]), {"verdict": "approve"}, **HTMX
    )

    htmx = analyst_client.post(
        reverse("reviews:quick_decide", args=[review.pk]),
        {"verdict": "approve", "reason": "known-customer"},
        **HTMX,
    )
    page = analyst_client.post(
        reverse("reviews:decide", args=[review.pk]),
        {"verdict": "override", "reason": "wrong-churn-call", "churn_label": "churn"},
    )

    message = "This review was already decided (approve) by analyst-user."
    assert htmx.status_code == 409
    assert htmx["HX-Retarget"] == "#queue-flash"
    assert message in htmx.content.decode()
    assert page.status_code == 409
    assert message in page.content.decode()
    assert Decision.objects.get(review=review).verdict == "approve"


def test_a_conflicting_quick_decision_without_htmx_shows_the_queue_with_the_message(
    analyst_client, routed
):
    review = routed["analyst"]
    url = reverse("reviews:quick_decide", args=[review.pk])
    analyst_client.post(url, {"verdict": "approve"})

    response = analyst_client.post(url, {"verdict": "escalate", "reason": "needs-expert"})

    assert response.status_code == 409
    assert [template.name for template in response.templates][0] == "reviews/queue.html"
    assert response.context["route"] == "analyst"
    messages = [str(message) for message in response.context["messages"]]
    member = review.member.external_id
    assert messages == [f"Approved {member}.", "Only a pending analyst item can be escalated."]
    assert Decision.objects.get(review=review).verdict == "approve"
    review.refresh_from_db()
    assert (review.route, review.escalated_at) == ("analyst", None)


def test_an_expert_quick_approving_an_auto_approval_without_htmx_lands_on_its_page(
    client, make_user, routed
):
    """An auto-approved review has no queue to go back to: the page is the review's own (this
    answered 500 once, looking for the 'auto' queue). It was decided by the policy already,
    so the approval is refused there, saying so."""
    review = routed["auto"]
    client.force_login(make_user("expert"))

    response = client.post(reverse("reviews:quick_decide", args=[review.pk]), follow=True)

    assert response.redirect_chain == [(reverse("reviews:review", args=[review.pk]), 302)]
    assert "already decided (approve) by policy" in response.content.decode()
    assert Decision.objects.get(review=review).decided_as == "policy"


def test_overriding_on_the_member_page_opens_the_next_item(analyst_client, reason_codes):
    predictions = [PredictionFactory(confidence=0.8, score=s) for s in (0.1, 0.2, 0.3)]
    from reviews.services.routing import route_new_predictions

    route_new_predictions(kind="churn")
    order = list(
        Review.objects.filter(route="analyst")
        .order_by("-priority", "pk")
        .values_list("pk", flat=True)
    )
    assert len(order) == len(predictions)

    response = analyst_client.post(
        reverse("reviews:decide", args=[order[0]]),
        {
            "verdict": "override",
            "reason": "wrong-churn-call",
            "churn_label": "churn",
            "comment": "Moved abroad",
        },
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("reviews:review", args=[order[1]])
    decision = Decision.objects.get(review_id=order[0])
    assert (decision.verdict, decision.churn_label, decision.comment) == (
        "override",
        True,
        "Moved abroad",
    )


def test_an_override_without_the_right_call_is_refused(analyst_client, routed):
    review = routed["analyst"]

    response = analyst_client.post(
        reverse("reviews:decide", args=[review.pk]),
        {"verdict": "override", "reason": "wrong-churn-call"},
    )

    assert response.status_code == 400
    assert "Say what the right call is" in response.content.decode()
    assert not people_decisions().exists()


def test_escalating_from_the_queue_moves_the_item_to_the_experts(analyst_client, routed):
    review = routed["analyst"]

    response = analyst_client.post(
        reverse("reviews:quick_decide", args=[review.pk]),
        {"verdict": "escalate", "reason": "high-stakes", "comment": "VIP"},
        **HTMX,
    )

    assert response.status_code == 200
    review.refresh_from_db()
    assert (review.route, review.escalation_reason.code, review.escalation_comment) == (
        "expert",
        "high-stakes",
        "VIP",
    )


def test_bulk_approve_reports_approvals_and_conflicts(expert_client, routed, make_user):
    from reviews.services.decisions import override_prediction

    override_prediction(
        review_id=routed["expert"].pk,
        actor=make_user("expert", username="ann"),
        reason_code="wrong-churn-call",
        churn_label=True,
    )

    response = expert_client.post(
        reverse("reviews:bulk_approve"),
        {"route": "analyst", "review": [routed["analyst"].pk, routed["expert"].pk]},
        **HTMX,
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert "Approved 1 of 2 selected." in html
    assert "This review was already decided (override) by ann." in html
    assert Decision.objects.get(review=routed["analyst"]).verdict == "approve"


def test_the_member_page_shows_the_figures_with_local_plotly(analyst_client, reason_codes):
    PredictionFactory(confidence=0.8, score=0.45, explanation=EXPLANATION)
    from reviews.services.routing import route_new_predictions

    route_new_predictions(kind="churn")
    review = Review.objects.get()

    response = analyst_client.get(reverse("reviews:review", args=[review.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert '<script src="/static/plotly/plotly.min.js" defer></script>' in html
    assert '<script src="/static/js/figures.js" defer></script>' in html
    assert "cdn" not in html.lower()
    assert 'id="interval-figure"' in html and 'id="waterfall-figure"' in html
    waterfall = _figure_spec(html, "waterfall-figure")
    assert waterfall["data"][0]["type"] == "waterfall"
    assert waterfall["data"][0]["x"] == [-1.2, 1.1, -0.3, pytest.approx(0.8), 0.4]
    assert _figure_spec(html, "interval-figure")["data"][0]["x"] == [45.0]
    assert "Days since last purchase = 41" in html
    assert "Other features" in html
    assert "35-44" not in html and "north" not in html
    assert 'data-testid="form-approve"' in html and 'data-testid="form-escalate"' in html


def _figure_spec(html: str, div_id: str) -> dict:
    """The JSON spec that static/js/figures.js draws into the div `div_id`."""
    match = re.search(rf'<script id="{div_id}-spec" type="application/json">(.*?)</script>', html)
    return json.loads(match[1])


def test_an_analyst_reads_an_auto_approved_review_but_cannot_decide_it(analyst_client, routed):
    """The API's rule (tests/reviews/test_api.py): read-only for analysts."""
    review = routed["auto"]

    page = analyst_client.get(reverse("reviews:review", args=[review.pk]))
    decide = analyst_client.post(
        reverse("reviews:decide", args=[review.pk]),
        {"verdict": "override", "reason": "wrong-churn-call", "churn_label": "churn"},
    )
    quick = analyst_client.post(
        reverse("reviews:quick_decide", args=[review.pk]), {"verdict": "approve"}, **HTMX
    )

    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="form-approve"' not in html
    assert 'data-testid="decision"' in html and "policy" in html
    assert (decide.status_code, quick.status_code) == (403, 403)
    assert "Only an expert can decide this review." in decide.content.decode()
    assert "Only an expert can decide this review." in quick.content.decode()
    review.refresh_from_db()
    assert (review.route, review.state) == ("auto", "auto_approved")
    assert not people_decisions().exists()


def test_an_expert_sees_an_auto_approval_as_the_policys_decision(expert_client, routed):
    review = routed["auto"]

    page = expert_client.get(reverse("reviews:review", args=[review.pk])).content.decode()
    response = expert_client.post(
        reverse("reviews:decide", args=[review.pk]),
        {"verdict": "override", "reason": "wrong-churn-call", "churn_label": "churn"},
    )

    assert 'data-testid="form-override"' not in page
    assert 'data-testid="decision"' in page
    assert response.status_code == 409
    assert "already decided (approve) by policy" in response.content.decode()
    decision = Decision.objects.get(review=review)
    assert (decision.verdict, decision.decided_as) == ("approve", "policy")


def test_an_admin_reads_review_pages_as_the_api_lets_them(client, make_user, routed):
    client.login(username=make_user("admin").username, password=TEST_PASSWORD)

    pages = [client.get(reverse("reviews:review", args=[routed[n].pk])) for n in routed]

    assert [page.status_code for page in pages] == [200, 200, 200]
    assert all('data-testid="decide"' not in page.content.decode() for page in pages)


def test_the_next_action_page_shows_the_action_chart(expert_client, next_action_review):
    response = expert_client.get(reverse("reviews:review", args=[next_action_review.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    actions = _figure_spec(html, "actions-figure")["data"][0]
    assert (actions["type"], actions["x"]) == ("bar", [60.0, 40.0])
    assert 'name="action"' in html


RECENCY = "days_since_last_event"


def counts():
    return (Prediction.objects.count(), Review.objects.count(), people_decisions().count())


@pytest.fixture
def scored_review(active_tree_churn_version):  # noqa: F811
    from predictions.services.explanations import explain_predictions
    from predictions.services.scoring.runs import score_chunk, start_scoring_run
    from reviews.services.reason_codes import seed_reason_codes
    from reviews.services.routing import route_new_predictions

    seed_reason_codes()
    run = start_scoring_run(kind="churn", cutoff=CUTOFF, member_limit=30, enqueue=False)
    for chunk_id in run.chunks.values_list("pk", flat=True):
        score_chunk(chunk_id=chunk_id)
    route_new_predictions(kind="churn")
    # Every member page opened once: auto-approvals too have their explanation.
    explain_predictions(prediction_ids=Prediction.objects.values_list("pk", flat=True))
    # The least risky member whose explanation lists recency: making them inactive must move it.
    return next(
        review
        for review in Review.objects.select_related("prediction").order_by("risk", "pk")
        if RECENCY in [item["feature"] for item in review.prediction.explanation["top"][:8]]
    )


def test_what_if_returns_a_changed_score_and_stores_nothing(client, make_user, scored_review):
    client.login(username=make_user("expert").username, password=TEST_PASSWORD)
    prediction = scored_review.prediction
    url = reverse("reviews:what_if", args=[scored_review.pk])
    seen = prediction.features_seen
    stored = {
        f"f_{item['feature']}": f"{seen[item['feature']]:g}"
        for item in prediction.explanation["top"][:8]
        if seen.get(item["feature"]) is not None
    }
    before = counts()

    same = client.post(url, stored, **HTMX)
    changed = client.post(url, {**stored, f"f_{RECENCY}": "400"}, **HTMX)

    def score(response):
        return re.search(r'data-testid="what-if-score">([^<]+)<', response.content.decode())[1]

    assert (same.status_code, changed.status_code) == (200, 200)
    assert score(same) == f"{prediction.score * 100:.0f} %"
    assert score(changed) != score(same)
    assert "Days since last activity → <strong>400</strong>" in changed.content.decode()
    assert 'id="what-if-figure"' in changed.content.decode()
    assert counts() == before


def test_what_if_as_shown_changes_nothing_when_values_are_missing(client, make_user, scored_review):
    client.login(username=make_user("expert").username, password=TEST_PASSWORD)
    # A member the model saw with missing values among those the form shows (empty boxes).
    review = next(
        review
        for review in Review.objects.select_related("prediction__model_version").order_by("pk")
        if any(
            review.prediction.features_seen.get(item["feature"]) is None
            for item in review.prediction.explanation["top"][:8]
        )
    )
    seen = review.prediction.features_seen
    as_shown = {
        f"f_{item['feature']}": ""
        if seen.get(item["feature"]) is None
        else f"{seen[item['feature']]:g}"
        for item in review.prediction.explanation["top"][:8]
    }

    response = client.post(reverse("reviews:what_if", args=[review.pk]), as_shown, **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert "nothing (the active model on the stored values)" in html
    score = re.search(r'data-testid="what-if-score">([^<]+)<', html)[1]
    assert score == f"{review.prediction.score * 100:.0f} %"


@pytest.mark.parametrize("bad", ["abc", "inf", "nan", ""])
def test_what_if_refuses_a_value_that_is_not_a_finite_number(client, make_user, scored_review, bad):
    client.login(username=make_user("expert").username, password=TEST_PASSWORD)
    before = counts()

    response = client.post(
        reverse("reviews:what_if", args=[scored_review.pk]),
        {f"f_{RECENCY}": bad},
        **HTMX,
    )

    assert response.status_code == 400
    assert "Days since last activity:" in response.content.decode()
    assert counts() == before


def test_the_queue_page_costs_the_same_queries_for_50_rows_as_for_1(
    analyst_client, reason_codes, django_assert_max_num_queries
):
    from reviews.services.routing import route_new_predictions

    PredictionFactory(confidence=0.8, score=0.7)
    route_new_predictions(kind="churn")
    analyst_client.get(reverse("reviews:queue"))  # session and permission caches warm
    with django_assert_max_num_queries(100) as one:
        analyst_client.get(reverse("reviews:queue"))
    for _ in range(60):
        PredictionFactory(confidence=0.8, score=0.7)
    route_new_predictions(kind="churn")

    with django_assert_max_num_queries(len(one.captured_queries)) as many:
        response = analyst_client.get(reverse("reviews:queue"))

    assert len(response.context["page"].rows) == 50
    assert len(many.captured_queries) == len(one.captured_queries)


def test_escalating_from_the_member_page_carries_the_analyst_proposal(
    analyst_client, routed, make_user
):
    from django.test import Client

    review = routed["analyst"]

    response = analyst_client.post(
        reverse("reviews:decide", args=[review.pk]),
        {"verdict": "escalate", "reason": "needs-expert", "churn_label": "churn", "comment": ""},
    )

    assert response.status_code == 302
    review.refresh_from_db()
    assert (review.route, review.escalated_by.username, review.analyst_proposal) == (
        "expert",
        "analyst-user",
        {"verdict": "override", "churn_label": True},
    )
    expert = Client()
    expert.login(username=make_user("expert").username, password=TEST_PASSWORD)
    page = expert.get(reverse("reviews:expert_queue")).content.decode()
    assert "Override: will churn" in page


def _tables_read(queries) -> list[str]:
    return [
        table
        for query in queries
        for table in ("reviews_reasoncode", "loyalty_action", "reviews_decision")
        if f'FROM "{table}"' in query["sql"]
    ]


def test_the_member_page_reads_each_catalog_once_whatever_the_history(
    expert_client, next_action_review, django_assert_max_num_queries
):
    from reviews.services.routing import route_new_predictions
    from tests.factories import ModelVersionFactory

    url = reverse("reviews:review", args=[next_action_review.pk])
    expert_client.get(url)  # session and permission caches warm
    with django_assert_max_num_queries(100) as alone:
        expert_client.get(url)
    version = ModelVersionFactory(kind="next_action")
    for months in range(1, 6):  # earlier predictions of the same member, each with its review
        PredictionFactory(
            member=next_action_review.member,
            model_version=version,
            cutoff=next_action_review.prediction.cutoff - timedelta(days=30 * months),
            kind="next_action",
            score=0.6,
            confidence=0.8,
            probabilities={"bonus_points": 0.6, "win_back_email": 0.4},
        )
    route_new_predictions(kind="next_action")

    with django_assert_max_num_queries(len(alone.captured_queries)) as with_history:
        response = expert_client.get(url)

    assert len(response.context["review_page"].history) == 6
    assert len(with_history.captured_queries) == len(alone.captured_queries)
    # The page's one read of the action catalog (headline, ranking, chart, history), then three
    # decision forms reading each catalog once; no decision to read while the review is pending.
    assert sorted(_tables_read(with_history.captured_queries)) == [
        "loyalty_action",
        "loyalty_action",
        "reviews_reasoncode",
    ]


def test_an_ensemble_page_shows_the_sequence_share_and_marks_its_events(
    analyst_client, reason_codes
):
    """The behavior-sequence step sits in the waterfall without a made-up value, and the
    events the occlusion picked are flagged on the timeline with their effect, even one older
    than the 50 most recent events the timeline lists."""
    from reviews.services.routing import route_new_predictions

    member = MemberFactory()
    oldest = EventFactory(member=member, kind="support_contact", amount=None)
    events = EventFactory.create_batch(60, member=member)
    newest = events[-1]
    explanation = {
        **EXPLANATION,
        "model": "ensemble",
        "top": [
            {
                "feature": "behavior_sequence",
                "name": "Behavior sequence",
                "value": None,
                "contribution": 0.6,
            },
            *EXPLANATION["top"],
        ],
        "margin": EXPLANATION["margin"] + 0.6,
        "sequence_events": [
            {
                "occurred_at": oldest.occurred_at.isoformat(),
                "kind": "support_contact",
                "category": "",
                "channel": "store",
                "attribution": 0.412,
            },
            {
                "occurred_at": newest.occurred_at.isoformat(),
                "kind": "purchase",
                "category": "GROCERY",
                "channel": "store",
                "attribution": -0.05,
            },
        ],
    }
    PredictionFactory(member=member, confidence=0.8, score=0.45, explanation=explanation)
    route_new_predictions(kind="churn")

    response = analyst_client.get(reverse("reviews:review", args=[Review.objects.get().pk]))

    html = response.content.decode()
    waterfall = _figure_spec(html, "waterfall-figure")["data"][0]
    assert waterfall["y"][1] == "Behavior sequence (sequence model's share)"
    assert waterfall["x"][1] == 0.6
    assert "“Behavior sequence” is the sequence model&#x27;s share" in html
    marked = re.findall(r'<li class="([^"]*)" data-testid="sequence-event"[^>]*>(.*?)</li>', html)
    assert [(css, re.search(r"[▲▼] [+-]\d\.\d{3}", body)[0]) for css, body in marked] == [
        ("event-purchase sequence-down", "▼ -0.050"),
        ("event-support_contact sequence-up", "▲ +0.412"),
    ]
    assert html.count('<li class="event-') == 51  # the 50 newest, and the older marked one
    assert 'data-testid="sequence-legend"' in html


def test_a_sequence_explanation_from_another_version_leaves_the_timeline_unmarked(
    analyst_client, reason_codes
):
    from reviews.services.routing import route_new_predictions

    member = MemberFactory()
    EventFactory.create_batch(3, member=member)
    explanation = {**EXPLANATION, "sequence_events": [{"when": "yesterday"}, "not a dict"]}
    PredictionFactory(member=member, confidence=0.8, score=0.45, explanation=explanation)
    route_new_predictions(kind="churn")

    response = analyst_client.get(reverse("reviews:review", args=[Review.objects.get().pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('<li class="event-purchase"') == 3
    assert 'data-testid="sequence-event"' not in html


def test_the_member_page_says_when_the_score_was_made_and_what_data_it_saw(analyst_client):
    from datetime import UTC, datetime

    from predictions.models import Prediction
    from reviews.services.routing import route_new_predictions

    prediction = PredictionFactory(
        confidence=0.8, score=0.45, cutoff=datetime(2026, 4, 1, tzinfo=UTC)
    )
    Prediction.objects.filter(pk=prediction.pk).update(
        scored_at=datetime(2026, 4, 2, 2, 5, tzinfo=UTC)
    )
    route_new_predictions(kind="churn")

    html = analyst_client.get(
        reverse("reviews:review", args=[Review.objects.get().pk])
    ).content.decode()

    assert "scored 2026-04-02 02:05 on data before 2026-04-01</span>" in html


def test_a_decided_item_links_its_decision_s_lineage(analyst_client, routed, make_user):
    from reviews.services.decisions import approve_prediction

    review = routed["analyst"]
    decision = approve_prediction(
        review_id=review.pk, actor=make_user("analyst", "ann"), reason_code="model-correct"
    )

    page = analyst_client.get(reverse("reviews:review", args=[review.pk])).content.decode()
    lineage = reverse("integrations:decision_lineage", args=[decision.pk])

    assert f'href="{lineage}" data-testid="lineage-link"' in page
    assert analyst_client.get(lineage).status_code == 200
