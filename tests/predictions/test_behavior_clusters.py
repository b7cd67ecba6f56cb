"""Behavioral clusters at training and scoring: the clustering stored with each version, each
prediction's cluster assigned by it, a partial refresh giving the full run's clusters."""

import pytest

from loyalty.models import Member
from predictions.behavior_clusters import ClusterLabels, version_clusters
from predictions.ml.clusters import K_RANGE
from predictions.models import Prediction
from predictions.services.scoring.predict import predict_rows
from tests.predictions.conftest import CUTOFF
from tests.predictions.test_segments import _score_inline

pytestmark = pytest.mark.django_db(transaction=True)


def test_training_stores_the_clustering_and_scoring_assigns_each_member(active_churn_version):
    stored = active_churn_version.metrics["behavior_clusters"]
    model = version_clusters(active_churn_version)
    assert model is not None and model.k in K_RANGE
    assert stored["rule"].startswith("k from 2 to 8 with the highest mean silhouette")
    assert set(stored["silhouettes"]) == {str(k) for k in K_RANGE}
    # Fitted on the members training read: those who consented to profiling.
    profiled = Member.objects.filter(consent_profiling=True).count()
    assert 0 < profiled < 400
    assert model.members == profiled == sum(c.members for c in model.clusters)
    assert all(c.description for c in model.clusters)

    _score_inline("churn", chunk_size=150)

    clusters = dict(Prediction.objects.values_list("member_id", "behavior_cluster"))
    assert len(clusters) == profiled  # scoring too profiles only those who consented
    assert set(clusters.values()) == set(range(1, model.k + 1))
    labels = ClusterLabels.for_versions({active_churn_version.pk})
    assert labels.label(active_churn_version.pk, 1) == model.cluster(1).label
    assert labels.label(active_churn_version.pk, model.k + 1) == ""
    assert labels.label(None, 1) == ""


def test_a_partial_refresh_gives_the_cluster_of_the_full_run(active_churn_version):
    _score_inline("churn", chunk_size=150)
    full = dict(Prediction.objects.values_list("member_id", "behavior_cluster"))
    few = sorted(full)[::37]

    rows = predict_rows(version=active_churn_version, member_ids=few, cutoff=CUTOFF)

    assert {row["member_id"]: row["behavior_cluster"] for row in rows} == {
        member_id: full[member_id] for member_id in few
    }


def test_a_next_action_version_has_its_own_clustering(active_next_action_version):
    model = version_clusters(active_next_action_version)

    assert model is not None and model.k in K_RANGE
