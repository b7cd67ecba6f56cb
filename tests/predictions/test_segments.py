"""RFM segments at scoring: the scale stored with the version at training, each prediction's
segment on it, a partial refresh giving the full run's segments, the review carrying it."""

import pytest

from predictions.ml.segments import RFM_SEGMENT_NAMES, RfmScale
from predictions.models import Prediction
from predictions.services.scoring.predict import predict_rows
from predictions.services.scoring.runs import score_chunk, start_scoring_run
from reviews.models import Review
from reviews.services.routing import route_new_predictions
from tests.predictions.conftest import CUTOFF

pytestmark = pytest.mark.django_db(transaction=True)


def _score_inline(kind: str, **options):
    run = start_scoring_run(kind=kind, cutoff=CUTOFF, enqueue=False, **options)
    for chunk_id in run.chunks.values_list("pk", flat=True):
        score_chunk(chunk_id=chunk_id)
    return run


def test_training_stores_the_rfm_scale_and_scoring_stores_each_members_segment(
    active_churn_version,
):
    scale = RfmScale.from_json(active_churn_version.metrics["rfm_scale"])
    assert scale is not None and scale.members > 0
    assert len(scale.recency) == len(scale.frequency) == len(scale.monetary) == 101

    _score_inline("churn", chunk_size=150)

    segments = dict(Prediction.objects.values_list("member_id", "rfm_segment"))
    assert segments and set(segments.values()) <= set(RFM_SEGMENT_NAMES)
    assert len(set(segments.values())) >= 4  # 400 generated members spread over the map


def test_a_partial_refresh_gives_the_segment_of_the_full_run(active_churn_version):
    _score_inline("churn", chunk_size=150)
    full = dict(Prediction.objects.values_list("member_id", "rfm_segment"))
    few = sorted(full)[::37]  # 11 members, from every chunk

    rows = predict_rows(version=active_churn_version, member_ids=few, cutoff=CUTOFF)

    assert {row["member_id"]: row["rfm_segment"] for row in rows} == {
        member_id: full[member_id] for member_id in few
    }


def test_routing_copies_the_segment_onto_the_review(active_churn_version):
    _score_inline("churn")

    route_new_predictions(kind="churn")

    pairs = Review.objects.values_list("rfm_segment", "prediction__rfm_segment")
    assert pairs and all(review == prediction for review, prediction in pairs)
