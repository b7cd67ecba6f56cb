"""An auto-approved prediction is explained the first time someone who may see it opens it, on
the member page or through the API detail, once; nobody else's read computes anything."""

import json
import re

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from loyalty.services.erasure import erase_member
from predictions.models import Prediction
from predictions.services import explanations
from reviews.figures import waterfall_figure
from reviews.models import Review
from tests.conftest import TEST_PASSWORD
from tests.predictions.conftest import (  # noqa: F401  (fixtures that train a real model)
    active_churn_version,
    generated_members,
)
from tests.predictions.test_explanations import _engine_explanations, _score_and_route
from tests.tokens import token_header

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def computed(monkeypatch):
    """Each explanation computation, as it happens."""
    calls = []
    real = explanations._explanations

    def counting(**kwargs):
        calls.append([item.prediction_id for item in kwargs["pending"]])
        return real(**kwargs)

    monkeypatch.setattr(explanations, "_explanations", counting)
    return calls


@pytest.fixture
def scored(active_churn_version, reason_codes):  # noqa: F811
    _score_and_route("churn")
    return _engine_explanations(active_churn_version)


def _review(route: str) -> Review:
    return Review.objects.filter(route=route).select_related("prediction").order_by("pk").first()


def _page_client(client, make_user, role: str):
    client.login(username=make_user(role).username, password=TEST_PASSWORD)
    return client


def _api_client(make_user, role: str) -> APIClient:
    api = APIClient()
    user = make_user(role, username=f"api-{role}")
    api.credentials(HTTP_AUTHORIZATION=token_header(user))
    return api


def _waterfall(html: str) -> dict:
    match = re.search(
        r'<script id="waterfall-figure-spec" type="application/json">(.*?)</script>', html
    )
    return json.loads(match[1])["data"][0]


def test_opening_an_auto_approval_stores_its_explanation_once_and_shows_it(
    client, make_user, scored, computed
):
    review = _review(Review.Route.AUTO)
    assert review.prediction.explanation == {}
    analyst = _page_client(client, make_user, "analyst")  # reads auto-approvals, read-only
    url = reverse("reviews:review", args=[review.pk])

    first = analyst.get(url)
    second = analyst.get(url)

    assert (first.status_code, second.status_code) == (200, 200)
    assert computed == [[review.prediction_id]]  # once, on the first open
    expected = scored[review.member_id]
    assert Prediction.objects.get(pk=review.prediction_id).explanation == expected
    # The page draws what scoring-time SHAP says, the same on every open.
    drawn = json.loads(json.dumps(waterfall_figure(expected)))["data"][0]
    for response in (first, second):
        bars = _waterfall(response.content.decode())
        assert (bars["y"], bars["x"]) == (drawn["y"], drawn["x"])
    assert "No explanation was stored" not in first.content.decode()


def test_the_api_detail_computes_a_missing_explanation_once_and_returns_it(
    make_user, scored, computed
):
    review = _review(Review.Route.AUTO)
    api = _api_client(make_user, "expert")

    listed = api.get("/api/reviews/")
    first = api.get(f"/api/reviews/{review.pk}/")
    second = api.get(f"/api/reviews/{review.pk}/")

    assert (listed.status_code, first.status_code, second.status_code) == (200, 200, 200)
    # A blind item nobody answered lists no prediction at all (`model_hidden`).
    assert all(
        "explanation" not in (item["prediction"] or {}) and (item["prediction"] or item["is_blind"])
        for item in listed.json()["results"]
    )
    assert computed == [[review.prediction_id]]  # the list computes nothing
    expected = json.loads(json.dumps(scored[review.member_id]))
    assert first.json()["prediction"]["explanation"] == expected
    assert second.json()["prediction"]["explanation"] == expected
    assert Prediction.objects.get(pk=review.prediction_id).explanation == scored[review.member_id]


def test_a_read_by_someone_who_may_not_see_the_review_computes_nothing(
    client, make_user, scored, computed
):
    review = _review(Review.Route.EXPERT)  # an analyst may not see it
    Prediction.objects.filter(pk=review.prediction_id).update(explanation={})
    analyst = _page_client(client, make_user, "analyst")

    page = analyst.get(reverse("reviews:review", args=[review.pk]))
    what_if = analyst.post(reverse("reviews:what_if", args=[review.pk]), {})
    api = _api_client(make_user, "analyst").get(f"/api/reviews/{review.pk}/")
    integrator = _api_client(make_user, "integrator").get(f"/api/reviews/{review.pk}/")

    assert (page.status_code, what_if.status_code, api.status_code) == (404, 404, 404)
    assert integrator.status_code in (403, 404)
    assert computed == []
    assert Prediction.objects.get(pk=review.prediction_id).explanation == {}


def test_nothing_is_computed_for_an_erased_member_s_review(client, make_user, scored, computed):
    review = _review(Review.Route.AUTO)
    erase_member(member_id=review.member_id, actor=make_user("admin"))
    expert = _page_client(client, make_user, "expert")

    page = expert.get(reverse("reviews:review", args=[review.pk]))
    api = _api_client(make_user, "admin").get(f"/api/reviews/{review.pk}/")

    assert (page.status_code, api.status_code) == (404, 404)
    assert computed == []
    assert Prediction.objects.get(pk=review.prediction_id).explanation == {}
