"""The loop page's figures come from exact counts of labels, decisions and queue activity."""

import pytest
from django.urls import reverse

from learning.selectors import labels_per_week, override_rates, queue_activity
from learning.services.labels import label_decision
from reviews.services.decisions import approve_prediction, override_prediction
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def decided(routed, make_user):
    expert = make_user("expert")
    approved = approve_prediction(
        review_id=routed["analyst"].pk, actor=expert, reason_code="model-correct"
    )
    overridden = override_prediction(
        review_id=routed["expert"].pk,
        actor=expert,
        reason_code="wrong-churn-call",
        churn_label=True,
    )
    for decision in (approved, overridden):
        label_decision(decision_id=decision.pk)
    return routed


def test_labels_per_week_count_by_source_and_reason(decided):
    per_week = labels_per_week("churn")

    (week,) = per_week["by_source"]["decision"]
    assert per_week["by_source"] == {"decision": {week: 2}}
    assert per_week["by_reason"] == {"model-correct": {week: 1}, "wrong-churn-call": {week: 1}}


def test_override_rate_per_version_and_reason(decided):
    rates = override_rates("churn")

    version = decided["analyst"].prediction.model_version_id
    assert rates["per_version"] == [{"version": version, "n": 2, "rate": 0.5}]
    assert sorted(rates["per_reason"], key=lambda row: row["reason"]) == [
        {"reason": "model-correct", "n": 1},
        {"reason": "wrong-churn-call", "n": 1},
    ]


def test_queue_activity_counts_what_went_to_people_and_was_decided(decided):
    activity = queue_activity("churn")

    assert activity["pending"] == {}  # the auto one is not pending; both others are decided
    assert sum(activity["routed"].values()) == 2
    assert sum(activity["decided"].values()) == 2
    assert activity["sla_breaches"] == {}


def test_the_page_draws_the_charts_that_have_data(decided, client, make_user):
    client.login(username=make_user("expert", "watcher").username, password=TEST_PASSWORD)

    page = client.get(reverse("learning:loop")).content.decode()

    for chart in ("labels", "reasons", "overrides", "reason-codes", "queue"):
        assert f'id="churn-{chart}-fig"' in page
    assert 'id="churn-calibration-fig"' not in page  # no monitor report yet
    assert 'data-testid="retrain-churn"' not in page  # experts watch; admins retrain


def test_an_analyst_may_not_open_the_loop_page(client, make_user):
    client.login(username=make_user("analyst").username, password=TEST_PASSWORD)

    assert client.get(reverse("learning:loop")).status_code == 403


def test_the_page_shows_the_clustering_of_each_version_in_force(client, make_user):
    from predictions.ml.clusters import fit_clusters
    from predictions.models import ModelVersion
    from tests.clusters import planted_population
    from tests.factories import ModelVersionFactory

    clustering = fit_clusters(planted_population()[0])
    active = ModelVersionFactory(
        status=ModelVersion.Status.ACTIVE, metrics={"behavior_clusters": clustering.to_json()}
    )
    ModelVersionFactory(kind="next_action", status=ModelVersion.Status.ACTIVE, metrics={})
    client.login(username=make_user("expert", "watcher").username, password=TEST_PASSWORD)

    page = client.get(reverse("learning:loop")).content.decode()

    assert f"Churn risk v{active.pk}: behavior clusters" in page
    assert '<span data-testid="chosen-k">k&nbsp;3:&nbsp;' in page
    for cluster in clustering.clusters:
        assert f'data-testid="cluster-{cluster.number}"' in page
        assert cluster.description in page
    assert "230 members its training read" in page
    # A version trained before clusters (or on too few members) has none to show.
    assert 'data-testid="clusters-next_action"' not in page
