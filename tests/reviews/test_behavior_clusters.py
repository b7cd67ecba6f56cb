"""Behavioral clusters in reviewing: the queue, its CSV, the API and the member page show each
member's cluster in the clustering of the version that scored them and filter by it (blind
items too: it is data about the member); a policy can never be keyed by one."""

import csv
import io

import pytest
from django.urls import reverse

from predictions.behavior_clusters import ClusterRef, active_cluster_choices
from predictions.ml.clusters import fit_clusters
from predictions.models import ModelVersion
from reviews.models import Review
from reviews.policy_settings import PolicySettings, refused_override_keys
from reviews.selectors.member_page import review_page
from reviews.selectors.queue import QueueFilters, pending_reviews_for
from reviews.services.policy import change_policy
from reviews.services.routing import route_new_predictions
from tests.clusters import planted_population
from tests.factories import ModelVersionFactory, PredictionFactory
from tests.tokens import token_client

pytestmark = pytest.mark.django_db

EVERYONE_TO_PEOPLE = PolicySettings(
    auto_approve_confidence=0.99,
    expert_confidence=0.1,
    expert_value_quantile=0.999,
    human_risk_low=None,
    human_risk_high=None,
    audit_sample_rate=0.0,
    blind_share=0.0,
    segment_overrides={},
)


@pytest.fixture(scope="module")
def clustering():
    features, _ = planted_population()
    return fit_clusters(features)


@pytest.fixture
def scored(reason_codes, clustering):
    """Four members scored by the active version (clusters 1, 3, 3 and none) and one by a
    retired version whose cluster 3 is another group; all routed to the analysts."""
    change_policy(kind="churn", settings=EVERYONE_TO_PEOPLE, actor=None, reason="all to people")
    metrics = {"behavior_clusters": clustering.to_json()}
    active = ModelVersionFactory(status=ModelVersion.Status.ACTIVE, metrics=metrics)
    retired = ModelVersionFactory(status=ModelVersion.Status.RETIRED, metrics=metrics)
    made = {
        "regular": PredictionFactory(model_version=active, behavior_cluster=1, confidence=0.7),
        "hunter": PredictionFactory(model_version=active, behavior_cluster=3, confidence=0.7),
        "blind hunter": PredictionFactory(model_version=active, behavior_cluster=3),
        "unclustered": PredictionFactory(model_version=active, behavior_cluster=None),
        "old three": PredictionFactory(model_version=retired, behavior_cluster=3),
    }
    route_new_predictions(kind="churn")
    reviews = {name: Review.objects.get(prediction=p) for name, p in made.items()}
    Review.objects.filter(pk=reviews["blind hunter"].pk).update(is_blind=True)
    return {"active": active, "retired": retired, "reviews": reviews}


def test_the_queue_shows_each_members_cluster_and_filters_by_version_and_number(scored, clustering):
    reviews, active = scored["reviews"], scored["active"]
    hunters = ClusterRef(version_id=active.pk, number=3).token

    everything = pending_reviews_for(route="analyst")
    page = pending_reviews_for(
        route="analyst", filters=QueueFilters.from_params({"cluster": hunters})
    )

    assert {row.review_id: row.cluster for row in everything.rows} == {
        reviews["regular"].pk: clustering.cluster(1).label,
        reviews["hunter"].pk: clustering.cluster(3).label,
        reviews["blind hunter"].pk: clustering.cluster(3).label,
        reviews["unclustered"].pk: "",
        reviews["old three"].pk: clustering.cluster(3).label,
    }
    # The retired version's cluster 3 is not the active one's: a filter names both.
    assert sorted(row.review_id for row in page.rows) == sorted(
        [reviews["hunter"].pk, reviews["blind hunter"].pk]
    )
    assert [row.is_blind for row in page.rows if row.review_id == reviews["blind hunter"].pk] == [
        True
    ]
    assert page.filters.as_params() == {"cluster": hunters}
    for junk in ("3", "x-3", f"{active.pk}-", "1-2-3", "9" * 30):
        assert QueueFilters.from_params({"cluster": junk}).is_active is False


def test_the_filter_offers_the_clusters_of_the_versions_in_force(scored, clustering):
    active = scored["active"]

    choices = active_cluster_choices()

    assert choices == [
        (f"{active.pk}-{c.number}", f"Churn risk v{active.pk} · {c.label}")
        for c in clustering.clusters
    ]


def test_the_api_gives_the_cluster_and_filters_by_its_token(scored, clustering, make_user):
    reviews, active = scored["reviews"], scored["active"]
    client = token_client(make_user("expert"))

    listed = client.get("/api/reviews/", {"route": "analyst"}).json()["results"]
    by_id = {item["id"]: item["behavior_cluster"] for item in listed}
    filtered = client.get("/api/reviews/", {"cluster": f"{active.pk}-1"}).json()["results"]
    bad = client.get("/api/reviews/", {"cluster": "hunters"})

    assert by_id[reviews["hunter"].pk] == {
        "token": f"{active.pk}-3",
        "model_version": active.pk,
        "number": 3,
        "description": clustering.cluster(3).description,
    }
    assert by_id[reviews["blind hunter"].pk]["number"] == 3  # member data: shown blind too
    assert by_id[reviews["unclustered"].pk] is None
    assert [item["id"] for item in filtered] == [reviews["regular"].pk]
    assert bad.status_code == 400 and "cluster" in bad.json()


def test_the_member_page_and_the_queue_csv_name_the_cluster(scored, clustering, make_user, client):
    reviews = scored["reviews"]
    analyst = make_user("analyst")

    facts = dict(
        (fact.label, fact.value)
        for fact in review_page(review_id=reviews["hunter"].pk, viewer=analyst).member_facts
    )
    unclustered = dict(
        (fact.label, fact.value)
        for fact in review_page(review_id=reviews["unclustered"].pk, viewer=analyst).member_facts
    )
    client.force_login(analyst)
    response = client.get(reverse("integrations:export_queue", kwargs={"route": "analyst"}))
    table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))

    assert facts["Behavior cluster"] == clustering.cluster(3).label
    assert unclustered["Behavior cluster"] == "—"
    hunter_row = next(row for row in table if row["review_id"] == str(reviews["hunter"].pk))
    assert hunter_row["cluster"] == clustering.cluster(3).label


def test_no_policy_can_be_keyed_by_a_cluster(reason_codes, make_user, client):
    assert refused_override_keys(
        {"cluster:2": {}, "rfm:lost": {}, "tier:a:b": {}, "gold": {}, "kmeans:1": {}}
    ) == ["cluster:2", "kmeans:1"]
    client.force_login(make_user("admin", "boss"))

    page = client.get(reverse("reviews:policy", kwargs={"kind": "churn"}))

    assert page.status_code == 200
    assert "Behavioral clusters are never usable here" in page.content.decode()
