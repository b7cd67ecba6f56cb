"""`GET /api/decisions/?since=`: every decision once, in the order their sequence numbers were
handed out, per the caller's rights; and the sequence's promise under concurrent writers."""

import threading

import pytest
from django.db import connection, transaction
from rest_framework.test import APIClient

from reviews.models import Decision, Review
from reviews.services.decisions import approve_prediction, override_prediction
from reviews.services.routing import route_new_predictions
from tests.factories import ModelVersionFactory, PredictionFactory
from tests.tokens import token_header

FEED = "/api/decisions/"


def _client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=token_header(user))
    return client


def _pull(client, **query) -> dict:
    response = client.get(FEED, query)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def decided(routed, next_action_review, make_user):
    """The policy's auto-approval (made as it was routed), then an analyst's approval, an
    expert's churn override and an expert's action override, in that order."""
    analyst, expert = make_user("analyst", "feed-a"), make_user("expert", "feed-e")
    approval = approve_prediction(
        review_id=routed["analyst"].pk, actor=analyst, reason_code="model-correct"
    )
    churn = override_prediction(
        review_id=routed["expert"].pk,
        actor=expert,
        reason_code="wrong-churn-call",
        churn_label=False,
    )
    action = override_prediction(
        review_id=next_action_review.pk,
        actor=expert,
        reason_code="better-action",
        action_code="win_back_email",
    )
    policy = Decision.objects.get(review=routed["auto"])
    return {"policy": policy, "approval": approval, "churn": churn, "action": action}


@pytest.mark.django_db
def test_the_feed_returns_decisions_in_sequence_order_and_resumes_after_since(decided, make_user):
    client = _client(make_user("admin"))
    every = [decided[name].pk for name in ("policy", "approval", "churn", "action")]

    whole = _pull(client)
    assert [item["decision_id"] for item in whole["results"]] == every
    assert whole["has_more"] is False
    assert whole["next_since"] == decided["action"].sequence

    first = _pull(client, limit=3)
    assert [item["decision_id"] for item in first["results"]] == every[:3]
    assert first["has_more"] is True
    rest = _pull(client, since=first["next_since"], limit=3)
    assert [item["decision_id"] for item in rest["results"]] == every[3:]
    assert rest["has_more"] is False
    after_all = _pull(client, since=rest["next_since"])
    assert (after_all["results"], after_all["next_since"]) == ([], rest["next_since"])

    kinds = _pull(client, kind="next_action")["results"]
    assert [item["decision_id"] for item in kinds] == [decided["action"].pk]


@pytest.mark.django_db
def test_a_feed_item_says_what_was_decided(decided, make_user):
    items = {item["decision_id"]: item for item in _pull(_client(make_user("admin")))["results"]}

    churn = items[decided["churn"].pk]
    assert (churn["kind"], churn["verdict"], churn["churn_call"]) == ("churn", "override", False)
    # People learn whether a decision was held out only after its horizon; systems at once.
    assert (churn["reason_code"], churn["decided_as"], churn["held_out"]) == (
        "wrong-churn-call",
        "expert",
        None,
    )
    as_system = {
        item["decision_id"]: item for item in _pull(_client(make_user("integrator")))["results"]
    }
    assert as_system[decided["churn"].pk]["held_out"] is False
    action = items[decided["action"].pk]
    assert (action["action_code"], action["churn_call"]) == ("win_back_email", None)
    review = decided["action"].review
    assert action["member_external_id"] == review.member.external_id
    assert action["model_version_id"] == review.prediction.model_version_id


@pytest.mark.django_db
def test_analysts_see_decisions_on_reviews_they_read_and_integrators_every_one(
    decided, routed, make_user
):
    auto = decided["policy"]

    def ids(role: str) -> list[int]:
        return [item["decision_id"] for item in _pull(_client(make_user(role)))["results"]]

    # The churn override was on an expert's item; the auto-approval is on a review analysts
    # can read.
    assert ids("analyst") == [auto.pk, decided["approval"].pk, decided["action"].pk]
    everything = [decided[n].pk for n in ("policy", "approval", "churn", "action")]
    assert ids("integrator") == everything
    assert ids("expert") == everything


@pytest.mark.django_db
def test_the_feed_refuses_bad_queries_and_users_without_the_right(decided, make_user):
    client = _client(make_user("admin"))
    assert client.get(FEED, {"since": "-1"}).status_code == 400
    assert client.get(FEED, {"since": "soon"}).status_code == 400
    assert client.get(FEED, {"limit": "0"}).status_code == 400
    assert client.get(FEED, {"limit": "1001"}).status_code == 400
    assert _client(make_user(None)).get(FEED).status_code == 403
    assert APIClient().get(FEED).status_code == 401


def _analyst_reviews(count: int) -> list[int]:
    version = ModelVersionFactory()
    predictions = [
        PredictionFactory(model_version=version, confidence=0.8, score=0.3) for _ in range(count)
    ]
    route_new_predictions(kind="churn")
    reviews = Review.objects.filter(prediction__in=predictions, route=Review.Route.ANALYST)
    return sorted(reviews.values_list("pk", flat=True))


@pytest.mark.django_db(transaction=True)
def test_a_decision_committed_late_comes_after_what_a_reader_already_has(reason_codes, make_user):
    """Writer A takes a sequence number and holds its transaction open; writer B decides after
    it. B waits for A (the counter's lock, or SQLite's single writer), so B's number is higher
    and commits later: a reader that saw nothing, then both, never sees B before A."""
    first_review, second_review = _analyst_reviews(2)
    analyst = make_user("analyst", "writer")
    reader = _client(make_user("admin", "reader"))
    a_has_number, a_may_commit = threading.Event(), threading.Event()
    results: dict[str, Decision] = {}

    def write_a():
        try:
            with transaction.atomic():
                results["a"] = approve_prediction(
                    review_id=first_review, actor=analyst, reason_code="model-correct"
                )
                a_has_number.set()
                a_may_commit.wait(timeout=30)
        finally:
            connection.close()

    def write_b():
        try:
            results["b"] = approve_prediction(
                review_id=second_review, actor=analyst, reason_code="model-correct"
            )
        finally:
            connection.close()

    thread_a = threading.Thread(target=write_a)
    thread_a.start()
    assert a_has_number.wait(timeout=30)
    thread_b = threading.Thread(target=write_b)
    thread_b.start()
    while_open = _pull(reader)
    a_may_commit.set()
    thread_a.join(timeout=30)
    thread_b.join(timeout=30)

    assert while_open["results"] == []
    assert results["a"].sequence < results["b"].sequence
    after = _pull(reader, since=while_open["next_since"])
    assert [item["decision_id"] for item in after["results"]] == [
        results["a"].pk,
        results["b"].pk,
    ]


@pytest.mark.django_db(transaction=True)
def test_a_reader_paging_while_decisions_are_made_gets_each_once(reason_codes, make_user):
    reviews = _analyst_reviews(12)
    analyst = make_user("analyst", "writer")
    reader = _client(make_user("admin", "reader"))
    done = threading.Event()

    def write():
        try:
            for review_id in reviews:
                approve_prediction(review_id=review_id, actor=analyst, reason_code="model-correct")
        finally:
            done.set()
            connection.close()

    writer = threading.Thread(target=write)
    writer.start()
    received, since = [], 0
    while True:
        finished = done.is_set()
        page = _pull(reader, since=since, limit=2)
        received += [item["decision_id"] for item in page["results"]]
        since = page["next_since"]
        if finished and not page["has_more"]:
            break
    writer.join(timeout=60)

    made = list(Decision.objects.order_by("sequence").values_list("pk", flat=True))
    assert len(made) == 12
    assert received == made
