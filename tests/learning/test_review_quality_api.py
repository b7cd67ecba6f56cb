"""The Review quality figures through the API: the page's numbers, in the page's scope."""

import pytest

from learning.blind_agreement import blind_agreement
from learning.review_quality import EVERYONE, OWN, review_quality
from tests.learning.test_review_quality import people, scored  # noqa: F401  (fixtures)
from tests.tokens import token_client

pytestmark = pytest.mark.django_db

URL = "/api/review-quality/"


def test_an_expert_reads_everyone_s_figures_as_the_page_computes_them(
    scored,  # noqa: F811
    people,  # noqa: F811
):
    expert = people["eve"]

    response = token_client(expert).get(URL)

    assert response.status_code == 200
    body = response.json()
    quality = review_quality(expert, EVERYONE)
    assert body["scope"] == "everyone"
    assert body["overall"]["n"] == quality.overall.n
    assert body["overall"]["person"]["accuracy"]["value"] == quality.overall.person.accuracy.value
    assert [row["key"] for row in body["reviewer"]] == [
        row.key for row in quality.groups["reviewer"]
    ]
    for row, expected in zip(body["reviewer"], quality.groups["reviewer"], strict=True):
        assert row["n"] == expected.scores.n
        assert row["override_precision"]["n"] == expected.scores.override_precision.n
        assert row["model"]["accuracy"]["value"] == expected.scores.model.accuracy.value
    assert [row["reviewer"] for row in body["blind"]] == [
        row.reviewer for row in blind_agreement(expert, EVERYONE)
    ]
    assert body["disagreement_count"] == quality.disagreement_count


def test_an_analyst_reads_only_their_own_figures(scored, people):  # noqa: F811
    analyst = people["ann"]

    body = token_client(analyst).get(URL).json()

    assert body["scope"] == OWN
    assert [row["key"] for row in body["reviewer"]] == ["ann"]
    assert body["overall"]["n"] == review_quality(analyst, OWN).overall.n == 3


def test_nobody_without_a_reviewer_s_role_reads_them(people):  # noqa: F811
    assert token_client(people["integrator"]).get(URL).status_code == 403
