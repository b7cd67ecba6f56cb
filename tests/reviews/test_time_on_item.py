"""Time on an item: a person's first opening of an item starts their clock on it; their
decision stores the seconds since; an item decided unopened has no time on it."""

from datetime import timedelta

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from reviews.models import Decision, ReviewOpening
from reviews.services.decisions import approve_prediction
from tests.conftest import TEST_PASSWORD
from tests.tokens import token_header

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def analyst(client, make_user):
    user = make_user("analyst")
    client.login(username=user.username, password=TEST_PASSWORD)
    return user


def test_opening_an_item_starts_the_person_s_clock_once(client, analyst, routed):
    review = routed["analyst"]

    client.get(reverse("reviews:review", args=[review.pk]))
    first = ReviewOpening.objects.get(review=review, user=analyst).opened_at
    client.get(reverse("reviews:review", args=[review.pk]))

    assert ReviewOpening.objects.filter(review=review).count() == 1
    assert ReviewOpening.objects.get(review=review, user=analyst).opened_at == first


def test_the_decision_stores_the_seconds_since_the_decider_opened_the_item(client, analyst, routed):
    review = routed["analyst"]
    client.get(reverse("reviews:review", args=[review.pk]))
    # The analyst opened it 95 seconds before deciding.
    opening = ReviewOpening.objects.get(review=review, user=analyst)
    ReviewOpening.objects.filter(pk=opening.pk).update(
        opened_at=opening.opened_at - timedelta(seconds=95)
    )

    response = client.post(
        reverse("reviews:decide", args=[review.pk]),
        {"verdict": "approve", "reason": "model-correct"},
    )

    assert response.status_code == 302
    decision = Decision.objects.get(review=review)
    assert decision.seconds_on_item == pytest.approx(
        (decision.decided_at - opening.opened_at).total_seconds() + 95, abs=1
    )
    assert decision.seconds_on_item >= 95


def test_an_item_approved_from_the_queue_unopened_has_no_time_on_it(client, analyst, routed):
    review = routed["analyst"]

    response = client.post(
        reverse("reviews:quick_decide", args=[review.pk]), {"verdict": "approve"}, **HTMX
    )

    assert response.status_code == 200
    assert Decision.objects.get(review=review).seconds_on_item is None


def test_only_the_decider_s_own_opening_counts(client, analyst, routed, make_user):
    review = routed["analyst"]
    client.get(reverse("reviews:review", args=[review.pk]))  # the analyst looks, leaves
    colleague = make_user("analyst", username="colleague")

    decision = approve_prediction(review_id=review.pk, actor=colleague, reason_code="model-correct")

    assert decision.seconds_on_item is None


def test_the_api_gives_the_time_on_the_item(client, analyst, routed):
    review = routed["analyst"]
    client.get(reverse("reviews:review", args=[review.pk]))
    client.post(
        reverse("reviews:decide", args=[review.pk]),
        {"verdict": "approve", "reason": "model-correct"},
    )

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=token_header(analyst))
    body = api.get(f"/api/reviews/{review.pk}/").json()

    assert (
        body["decision"]["seconds_on_item"] == Decision.objects.get(review=review).seconds_on_item
    )
    assert body["decision"]["seconds_on_item"] is not None
