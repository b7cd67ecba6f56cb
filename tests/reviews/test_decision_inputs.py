"""One rule for what a decision carries: the API, the member page's form, the queue's quick
decide and the service itself refuse the same bad inputs, and nothing changes."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from loyalty.models import AuditRecord
from reviews.exceptions import InvalidDecision
from reviews.models import Review
from reviews.services.decisions import (
    ACTION,
    CHURN_CALL,
    MISSING,
    NOT_TAKEN,
    answer_problems,
    decide_review,
)
from tests.conftest import TEST_PASSWORD
from tests.factories import people_decisions
from tests.tokens import token_header

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("kind", "verdict", "churn_label", "action_code", "problems"),
    [
        ("churn", "override", True, None, {}),
        ("churn", "override", False, "", {}),
        ("churn", "override", None, None, {CHURN_CALL: MISSING}),
        ("churn", "override", None, "bonus", {CHURN_CALL: MISSING, ACTION: NOT_TAKEN}),
        ("churn", "override", True, "bonus", {ACTION: NOT_TAKEN}),
        ("next_action", "override", None, "bonus", {}),
        ("next_action", "override", None, None, {ACTION: MISSING}),
        ("next_action", "override", False, "bonus", {CHURN_CALL: NOT_TAKEN}),
        ("next_action", "override", True, None, {ACTION: MISSING, CHURN_CALL: NOT_TAKEN}),
        ("churn", "approve", None, None, {}),
        ("next_action", "approve", None, "", {}),
        ("churn", "approve", False, None, {CHURN_CALL: NOT_TAKEN}),
        ("next_action", "approve", None, "bonus", {ACTION: NOT_TAKEN}),
    ],
)
def test_which_answer_a_verdict_needs(kind, verdict, churn_label, action_code, problems):
    found = answer_problems(
        kind=kind, verdict=verdict, churn_label=churn_label, action_code=action_code
    )

    assert found == problems
    assert list(found) == list(problems)  # the needed answer first, as messages are listed


# Each bad input as every path takes it: the API's payload, the member page's form data and
# the service's keyword arguments; the queue's quick decide takes approvals only.
BAD_INPUTS = {
    "churn override without the call": (
        "churn",
        "override",
        {"reason_code": "wrong-churn-call"},
        {"reason": "wrong-churn-call"},
        {"reason_code": "wrong-churn-call"},
    ),
    "churn override with an action": (
        "churn",
        "override",
        {"reason_code": "wrong-churn-call", "churn_label": True, "action_code": "win_back_email"},
        {"reason": "wrong-churn-call", "churn_label": "churn", "action": "win_back_email"},
        {"reason_code": "wrong-churn-call", "churn_label": True, "action_code": "win_back_email"},
    ),
    "next-action override without the action": (
        "next_action",
        "override",
        {"reason_code": "better-action"},
        {"reason": "better-action"},
        {"reason_code": "better-action"},
    ),
    "next-action override with a churn call": (
        "next_action",
        "override",
        {"reason_code": "better-action", "action_code": "win_back_email", "churn_label": False},
        {"reason": "better-action", "action": "win_back_email", "churn_label": "stay"},
        {"reason_code": "better-action", "action_code": "win_back_email", "churn_label": False},
    ),
    "approval with an override's reason": (
        "churn",
        "approve",
        {"reason_code": "wrong-churn-call"},
        {"reason": "wrong-churn-call"},
        {"reason_code": "wrong-churn-call"},
    ),
    "approval with an unknown reason": (
        "next_action",
        "approve",
        {"reason_code": "no-such-reason"},
        {"reason": "no-such-reason"},
        {"reason_code": "no-such-reason"},
    ),
}


@pytest.fixture
def expert(make_user):
    return make_user("expert")


@pytest.fixture
def reviews(routed, next_action_review) -> dict[str, Review]:
    return {"churn": routed["analyst"], "next_action": next_action_review}


def _api(expert, review: Review, verdict: str, payload: dict) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=token_header(expert))
    return client.post(f"/api/reviews/{review.pk}/{verdict}/", payload, format="json").status_code


def _page(client, name: str, review: Review, data: dict) -> int:
    return client.post(reverse(name, args=[review.pk]), data).status_code


def _service(expert, review: Review, verdict: str, arguments: dict) -> str:
    try:
        decide_review(review_id=review.pk, actor=expert, verdict=verdict, **arguments)
    except InvalidDecision:
        return "refused"
    return "decided"


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_every_path_refuses_the_same_bad_input_and_nothing_changes(case, reviews, expert, client):
    kind, verdict, payload, form_data, arguments = BAD_INPUTS[case]
    review = reviews[kind]
    client.login(username=expert.username, password=TEST_PASSWORD)

    answers = {
        "api": _api(expert, review, verdict, payload),
        "form": _page(client, "reviews:decide", review, {"verdict": verdict, **form_data}),
        "service": _service(expert, review, verdict, arguments),
    }
    if verdict == "approve":
        answers["quick"] = _page(
            client, "reviews:quick_decide", review, {"verdict": verdict, **form_data}
        )

    assert answers == {
        "api": 400,
        "form": 400,
        "service": "refused",
        **({"quick": 400} if verdict == "approve" else {}),
    }
    assert not people_decisions().exists()
    assert Review.objects.get(pk=review.pk).state == Review.State.PENDING
    assert not AuditRecord.objects.filter(kind=AuditRecord.Kind.DECISION).exists()


def test_the_form_says_what_the_override_of_a_churn_call_lacks(reviews, expert, client):
    client.login(username=expert.username, password=TEST_PASSWORD)

    response = client.post(
        reverse("reviews:decide", args=[reviews["churn"].pk]),
        {"verdict": "override", "reason": "wrong-churn-call", "action": "win_back_email"},
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert "Say what the right call is: churn or stay." in page
    assert "A churn call is overridden with the right call, not an action." in page
    assert not people_decisions().exists()
