"""The review API: visibility per role, keyset pages, decisions (201/200/409), escalation.
The decision feed is tested in tests/integrations/test_decision_feed.py."""

import base64

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from loyalty.models import AuditRecord
from reviews.models import Decision, Review
from reviews.services.routing import route_new_predictions
from tests.factories import ModelVersionFactory, PredictionFactory, people_decisions
from tests.tokens import token_header

pytestmark = pytest.mark.django_db

REVIEWS_URL = "/api/reviews/"
DECISIONS_URL = "/api/decisions/"


@pytest.fixture
def client_as(make_user):
    """A fresh API client sending the token of a new user in the given role."""

    def as_role(role: str | None, username: str | None = None) -> APIClient:
        user = make_user(role, username=username)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=token_header(user))
        client.user = user
        return client

    return as_role


def _review_url(review: Review, action: str = "") -> str:
    return f"{REVIEWS_URL}{review.pk}/{action + '/' if action else ''}"


def _ids(response) -> list[int]:
    return [item["id"] for item in response.json()["results"]]


def _state(review: Review) -> tuple[str, str, bool]:
    review.refresh_from_db()
    return review.route, review.state, people_decisions().filter(review=review).exists()


def _analyst_reviews(priorities: list[float]) -> list[Review]:
    """Pending analyst churn reviews with the given priorities, in creation (id) order."""
    version = ModelVersionFactory()
    predictions = [
        PredictionFactory(model_version=version, confidence=0.8, score=0.3) for _ in priorities
    ]
    route_new_predictions(kind="churn")
    reviews = [Review.objects.get(prediction=prediction) for prediction in predictions]
    for review, priority in zip(reviews, priorities, strict=True):
        Review.objects.filter(pk=review.pk).update(priority=priority)
        review.priority = priority
    assert {review.route for review in reviews} == {Review.Route.ANALYST}
    return reviews


# --- authentication and visibility ----------------------------------------------------------


def test_anonymous_requests_get_401_and_change_nothing(api_client, routed):
    review = routed["analyst"]

    responses = [
        api_client.get(REVIEWS_URL),
        api_client.get(_review_url(review)),
        api_client.post(_review_url(review, "approve"), {"reason_code": "model-correct"}),
        api_client.post(_review_url(review, "escalate"), {"reason_code": "needs-expert"}),
        api_client.get(DECISIONS_URL),
    ]

    assert [response.status_code for response in responses] == [401] * 5
    assert responses[0]["WWW-Authenticate"] == "Token"
    assert _state(review) == ("analyst", "pending", False)


def test_analyst_lists_analyst_and_auto_approved_reviews_not_the_experts(client_as, routed):
    response = client_as("analyst").get(REVIEWS_URL)

    assert response.status_code == 200
    assert _ids(response) == [routed["analyst"].pk, routed["auto"].pk]


@pytest.mark.parametrize("role", ["expert", "admin"])
def test_experts_and_admins_list_every_review_highest_priority_first(client_as, routed, role):
    response = client_as(role).get(REVIEWS_URL)

    assert response.status_code == 200
    assert _ids(response) == [routed["expert"].pk, routed["analyst"].pk, routed["auto"].pk]
    assert (response.json()["next"], response.json()["previous"]) == (None, None)


@pytest.mark.parametrize("role", ["integrator", None])
def test_roles_without_view_review_get_403(client_as, routed, role):
    client = client_as(role)

    assert client.get(REVIEWS_URL).status_code == 403
    assert client.get(_review_url(routed["analyst"])).status_code == 403


def test_analyst_reads_an_analyst_review_with_its_prediction(client_as, routed):
    review = routed["analyst"]

    response = client_as("analyst").get(_review_url(review))

    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in ("id", "member_external_id", "kind", "route", "state")} == {
        "id": review.pk,
        "member_external_id": review.member.external_id,
        "kind": "churn",
        "route": "analyst",
        "state": "pending",
    }
    assert (body["confidence"], body["risk"], body["member_value"]) == (0.8, 0.3, 100.0)
    assert body["priority"] == pytest.approx(review.priority)
    assert body["route_reason"] == review.route_reason
    assert body["prediction"] == {
        "id": review.prediction_id,
        "model_version_id": review.prediction.model_version_id,
        "cutoff": "2026-01-01T00:00:00Z",
        "scored_at": review.prediction.scored_at.isoformat().replace("+00:00", "Z"),
        "score": 0.3,
        "interval_low": 0.25,
        "interval_high": 0.35,
        "label_set": ["stay"],
        "recommended_action_code": None,
        "probabilities": None,
        # The detail's own field (tests/reviews/test_explanations_on_open.py has real ones):
        # a factory version has no artifacts to explain with.
        "explanation": None,
    }
    assert (body["escalated_at"], body["escalation"], body["decided_at"]) == (None, None, None)
    assert body["decision"] is None
    assert body["due_at"] is not None


def test_analyst_asking_for_an_experts_review_gets_the_answer_of_an_unknown_id(client_as, routed):
    analyst = client_as("analyst")

    response = analyst.get(_review_url(routed["expert"]))
    unknown = analyst.get(f"{REVIEWS_URL}{routed['expert'].pk + 1000}/")

    assert (response.status_code, unknown.status_code) == (404, 404)
    assert response.json() == unknown.json() == {"detail": "No such review."}


def test_analyst_reads_an_auto_approved_review_but_cannot_decide_it(client_as, routed):
    """The member page's rule (tests/reviews/test_views.py): read-only for analysts."""
    review = routed["auto"]
    analyst = client_as("analyst")

    read = analyst.get(_review_url(review))
    approve = analyst.post(_review_url(review, "approve"), {"reason_code": "model-correct"})
    override = analyst.post(
        _review_url(review, "override"),
        {"reason_code": "wrong-churn-call", "churn_label": True},
        format="json",
    )

    assert read.status_code == 200
    assert (read.json()["id"], read.json()["route"], read.json()["state"]) == (
        review.pk,
        "auto",
        "auto_approved",
    )
    assert (approve.status_code, override.status_code) == (403, 403)
    assert approve.json()["detail"] == "Only an expert can decide this review."
    assert _state(review) == ("auto", "auto_approved", False)
    assert AuditRecord.objects.filter(kind=AuditRecord.Kind.DECISION).count() == 0


def test_an_auto_approval_is_the_policys_decision_and_no_expert_reopens_it(client_as, routed):
    """Before policy decisions, an expert could override an auto-approval that had already
    been acted on as approved; now it is a decision, announced, and final like a person's."""
    review = routed["auto"]

    response = client_as("expert").post(
        _review_url(review, "override"),
        {"reason_code": "wrong-churn-call", "churn_label": True},
        format="json",
    )

    assert response.status_code == 409
    assert response.json()["detail"] == "This review was already decided (approve) by policy."
    assert _state(review) == ("auto", "auto_approved", False)
    decision = Decision.objects.get(review=review)
    assert (decision.verdict, decision.decided_as) == ("approve", "policy")


def test_unknown_review_is_404(client_as, routed):
    client = client_as("expert")
    missing = Review.objects.order_by("-pk").first().pk + 1

    assert client.get(f"{REVIEWS_URL}{missing}/").status_code == 404
    response = client.post(f"{REVIEWS_URL}{missing}/approve/", {"reason_code": "model-correct"})
    assert response.status_code == 404
    assert people_decisions().count() == 0


# --- filters --------------------------------------------------------------------------------


def test_review_filters(client_as, routed, next_action_review):
    client = client_as("expert")
    Review.objects.filter(pk=routed["analyst"].pk).update(tier="gold")
    churn = [routed["expert"].pk, routed["analyst"].pk, routed["auto"].pk]

    def ids(**query) -> list[int]:
        response = client.get(REVIEWS_URL, query)
        assert response.status_code == 200
        return _ids(response)

    assert ids(route="expert") == [routed["expert"].pk]
    assert ids(state="auto_approved") == [routed["auto"].pk]
    assert ids(kind="next_action") == [next_action_review.pk]
    assert [pk for pk in ids(kind="churn")] == churn
    assert ids(tier="gold") == [routed["analyst"].pk]
    assert ids(min_confidence=0.9) == [routed["auto"].pk]
    assert ids(max_confidence=0.5) == [routed["expert"].pk]
    assert ids(kind="churn", min_confidence=0.5, max_confidence=0.8) == [routed["analyst"].pk]
    assert ids(escalated="true") == []
    assert client.get(REVIEWS_URL, {"route": "nobody"}).status_code == 400


def test_escalated_filter_after_an_escalation(client_as, routed):
    analyst = client_as("analyst")
    analyst.post(_review_url(routed["analyst"], "escalate"), {"reason_code": "needs-expert"})
    expert = client_as("expert")

    escalated = expert.get(REVIEWS_URL, {"escalated": "true"})
    not_escalated = expert.get(REVIEWS_URL, {"escalated": "false"})

    assert _ids(escalated) == [routed["analyst"].pk]
    assert _ids(not_escalated) == [routed["expert"].pk, routed["auto"].pk]


# --- keyset pagination ----------------------------------------------------------------------


def test_pages_continue_exactly_through_ties_on_priority(client_as, reason_codes):
    reviews = _analyst_reviews([0.2, 0.5, 0.9, 0.5, 0.5, 0.2, 0.5])
    expected = [r.pk for r in sorted(reviews, key=lambda review: (-review.priority, review.pk))]
    client = client_as("analyst")

    pages, url = [], f"{REVIEWS_URL}?page_size=3"
    while url:
        body = client.get(url).json()
        pages.append([item["id"] for item in body["results"]])
        url = body["next"]

    assert pages == [expected[0:3], expected[3:6], expected[6:7]]


def test_previous_link_returns_the_page_before_exactly(client_as, reason_codes):
    reviews = _analyst_reviews([0.5, 0.5, 0.5, 0.5, 0.5])
    client = client_as("analyst")
    first = client.get(REVIEWS_URL, {"page_size": 2}).json()
    second = client.get(first["next"]).json()

    back = client.get(second["previous"]).json()

    assert [item["id"] for item in second["results"]] == [reviews[2].pk, reviews[3].pk]
    assert [item["id"] for item in back["results"]] == [reviews[0].pk, reviews[1].pk]
    assert back["previous"] is None
    assert back["next"] is not None
    assert first["previous"] is None


def test_a_review_added_behind_the_cursor_does_not_shift_the_next_page(client_as, reason_codes):
    reviews = _analyst_reviews([0.5, 0.5, 0.5, 0.5])
    client = client_as("analyst")
    first = client.get(REVIEWS_URL, {"page_size": 2}).json()
    Review.objects.filter(pk=reviews[3].pk).update(priority=0.9)  # now ahead of the cursor

    second = client.get(first["next"]).json()

    assert [item["id"] for item in second["results"]] == [reviews[2].pk]
    assert second["next"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b'{"k":[1],"r":false}').decode()}, "cursor"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 1001}, "page_size"),
    ],
)
def test_bad_cursor_or_page_size_is_400(client_as, routed, query, field):
    response = client_as("expert").get(REVIEWS_URL, query)

    assert response.status_code == 400
    assert list(response.json()) == [field]


# --- approve and override -------------------------------------------------------------------


def test_approve_is_201_and_repeating_it_is_200_with_the_same_decision(client_as, routed):
    review = routed["analyst"]
    client = client_as("analyst")
    payload = {"reason_code": "model-correct", "comment": "looks right"}

    first = client.post(_review_url(review, "approve"), payload, format="json")
    repeat = client.post(_review_url(review, "approve"), payload, format="json")

    assert (first.status_code, repeat.status_code) == (201, 200)
    decision = people_decisions().get()
    assert first.json() == repeat.json()
    body = first.json()
    assert body["id"] == decision.pk
    assert {key: body[key] for key in body if key != "decided_at"} == {
        "id": decision.pk,
        "review_id": review.pk,
        "prediction_id": review.prediction_id,
        "member_external_id": review.member.external_id,
        "kind": "churn",
        "verdict": "approve",
        "reason_code": "model-correct",
        "reason_treatment": "confirm",
        "comment": "looks right",
        "churn_label": None,
        "action_code": None,
        "settled_action_code": None,
        "decided_by": "analyst-user",
        "decided_as": "analyst",
        "seconds_on_item": None,  # decided through the API, never opened on its page
    }
    assert _state(review) == ("analyst", "decided", True)
    assert AuditRecord.objects.filter(kind=AuditRecord.Kind.DECISION).count() == 1
    detail = client.get(_review_url(review)).json()
    assert (detail["state"], detail["decision"]["id"]) == ("decided", decision.pk)


def test_conflicting_override_after_an_approval_is_409_and_keeps_one_decision(client_as, routed):
    review = routed["analyst"]
    analyst = client_as("analyst")
    analyst.post(_review_url(review, "approve"), {"reason_code": "model-correct"})
    expert = client_as("expert")

    response = expert.post(
        _review_url(review, "override"),
        {"reason_code": "wrong-churn-call", "churn_label": True},
        format="json",
    )

    assert response.status_code == 409
    assert response.json()["detail"] == (
        "This review was already decided (approve) by analyst-user."
    )
    assert people_decisions().get().verdict == "approve"
    assert _state(review) == ("analyst", "decided", True)


def test_analyst_deciding_an_expert_item_gets_404_and_nothing_changes(client_as, routed):
    review = routed["expert"]
    client = client_as("analyst")

    approve = client.post(_review_url(review, "approve"), {"reason_code": "model-correct"})
    override = client.post(
        _review_url(review, "override"),
        {"reason_code": "wrong-churn-call", "churn_label": False},
        format="json",
    )

    assert (approve.status_code, override.status_code) == (404, 404)
    assert _state(review) == ("expert", "pending", False)
    assert AuditRecord.objects.filter(kind=AuditRecord.Kind.DECISION).count() == 0


@pytest.mark.parametrize("role", ["admin", "integrator"])
def test_roles_that_cannot_decide_get_403(client_as, routed, role):
    review = routed["analyst"]

    response = client_as(role).post(
        _review_url(review, "approve"), {"reason_code": "model-correct"}
    )

    assert response.status_code == 403
    assert _state(review) == ("analyst", "pending", False)


@pytest.mark.parametrize(
    ("payload", "errors"),
    [
        (
            {"reason_code": "wrong-churn-call"},
            {"churn_label": ["Overriding a churn call needs true (churn) or false."]},
        ),
        (
            {"reason_code": "wrong-churn-call", "churn_label": True, "action_code": "nope"},
            {"action_code": ["Object with code=nope does not exist."]},
        ),
        (
            {"reason_code": "no-such-reason", "churn_label": True},
            {"reason_code": ["Object with code=no-such-reason does not exist."]},
        ),
        ({"churn_label": True}, {"reason_code": ["This field is required."]}),
    ],
)
def test_invalid_override_is_400_per_field_and_changes_nothing(client_as, routed, payload, errors):
    review = routed["analyst"]

    response = client_as("analyst").post(_review_url(review, "override"), payload, format="json")

    assert response.status_code == 400
    assert response.json() == errors
    assert _state(review) == ("analyst", "pending", False)


def test_override_of_a_churn_call_records_the_right_call(client_as, routed):
    review = routed["analyst"]

    response = client_as("analyst").post(
        _review_url(review, "override"),
        {"reason_code": "wrong-churn-call", "churn_label": True, "comment": "moved away"},
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["verdict"], body["churn_label"], body["action_code"]) == ("override", True, None)
    decision = people_decisions().get()
    assert (decision.verdict, decision.churn_label, decision.comment) == (
        "override",
        True,
        "moved away",
    )


def test_override_of_a_next_action_needs_and_records_the_right_action(
    client_as, next_action_review
):
    client = client_as("expert")
    url = _review_url(next_action_review, "override")

    missing = client.post(url, {"reason_code": "better-action"}, format="json")
    given = client.post(
        url, {"reason_code": "better-action", "action_code": "win_back_email"}, format="json"
    )

    assert missing.status_code == 400
    assert missing.json() == {"action_code": ["Overriding a next action needs the right action."]}
    assert given.status_code == 201
    assert (given.json()["kind"], given.json()["action_code"]) == ("next_action", "win_back_email")
    assert people_decisions().get().action.code == "win_back_email"


# --- escalate -------------------------------------------------------------------------------


def test_escalation_routes_the_review_to_the_experts(client_as, routed):
    review = routed["analyst"]
    analyst = client_as("analyst")
    payload = {
        "reason_code": "needs-expert",
        "comment": "odd pattern",
        "proposal": {"verdict": "override", "churn_label": True},
    }

    response = analyst.post(_review_url(review, "escalate"), payload, format="json")
    repeat = analyst.post(_review_url(review, "escalate"), payload, format="json")

    assert (response.status_code, repeat.status_code) == (200, 200)
    body = response.json()
    assert (body["id"], body["route"], body["state"]) == (review.pk, "expert", "pending")
    assert body["route_reason"] == "escalated by analyst-user: Needs an expert's judgement"
    assert body["escalation"] == {
        "escalated_by": "analyst-user",
        "reason_code": "needs-expert",
        "comment": "odd pattern",
        "proposal": {"verdict": "override", "churn_label": True},
    }
    assert _state(review) == ("expert", "pending", False)
    # The analyst keeps sight of what they escalated until an expert decides it, then not.
    assert sorted(_ids(analyst.get(REVIEWS_URL))) == sorted([routed["auto"].pk, review.pk])
    assert analyst.get(_review_url(review)).status_code == 200
    expert = client_as("expert")
    decided = expert.post(_review_url(review, "approve"), {"reason_code": "model-correct"})
    assert (decided.status_code, decided.json()["decided_as"]) == (201, "expert")
    assert _ids(analyst.get(REVIEWS_URL)) == [routed["auto"].pk]
    assert analyst.get(_review_url(review)).status_code == 404
    again = analyst.post(_review_url(review, "escalate"), payload, format="json")
    assert (again.status_code, again.json()) == (404, {"detail": "No such review."})


def test_escalating_a_decided_review_is_409_and_changes_nothing(client_as, routed):
    review = routed["analyst"]
    client = client_as("analyst")
    client.post(_review_url(review, "approve"), {"reason_code": "model-correct"})

    response = client.post(_review_url(review, "escalate"), {"reason_code": "needs-expert"})

    assert response.status_code == 409
    assert response.json()["detail"] == "Only a pending analyst item can be escalated."
    assert _state(review) == ("analyst", "decided", True)


def test_escalation_needs_a_known_reason_code(client_as, routed):
    review = routed["analyst"]

    response = client_as("analyst").post(_review_url(review, "escalate"), {"comment": "hm"})

    assert response.status_code == 400
    assert response.json() == {"reason_code": ["This field is required."]}
    assert _state(review) == ("analyst", "pending", False)


# --- decisions ------------------------------------------------------------------------------


# --- schema ---------------------------------------------------------------------------------


def test_schema_documents_the_review_endpoints(tmp_path):
    target = tmp_path / "schema.yml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    text = target.read_text()
    for operation in (
        "reviews_list",
        "reviews_retrieve",
        "reviews_approve",
        "reviews_override",
        "reviews_escalate",
        "decisions_feed",
    ):
        assert f"operationId: {operation}\n" in text


@pytest.mark.django_db(transaction=True)
def test_two_identical_approvals_at_once_answer_201_and_200(make_user, routed):
    """A double submit: the second request waits on the row lock, then finds the decision."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from django.db import connection

    review = routed["analyst"]
    header = token_header(make_user("analyst"))
    clients = [APIClient(), APIClient()]
    for client in clients:
        client.credentials(HTTP_AUTHORIZATION=header)
    start = Barrier(2)

    def approve(client: APIClient) -> tuple[int, int]:
        try:
            start.wait()
            response = client.post(_review_url(review, "approve"), {"reason_code": "model-correct"})
            return response.status_code, response.json()["id"]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(approve, clients))

    decision = people_decisions().get()
    assert sorted(answers) == [(200, decision.pk), (201, decision.pk)]
