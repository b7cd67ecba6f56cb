"""Scoring: one prediction per member, version and cutoff; consent is read at scoring time."""

import pytest

from loyalty.models import Member
from loyalty.services.members import set_consent
from predictions.models import Prediction, ScoringRun
from predictions.services.scoring import score_chunk, start_scoring_run
from tests.predictions.conftest import CUTOFF

pytestmark = pytest.mark.django_db(transaction=True)


def _score_inline(kind: str, **options) -> ScoringRun:
    run = start_scoring_run(kind=kind, cutoff=CUTOFF, enqueue=False, **options)
    for chunk_id in run.chunks.values_list("pk", flat=True):
        score_chunk(chunk_id=chunk_id)
    run.refresh_from_db()
    return run


def test_scoring_stores_one_churn_prediction_per_scorable_member(active_churn_version):
    scorable = Member.objects.filter(consent_profiling=True).count()

    run = _score_inline("churn", chunk_size=150)

    assert run.status == "done"
    assert run.members_scored == scorable
    assert Prediction.objects.filter(model_version=active_churn_version).count() == scorable
    prediction = Prediction.objects.filter(kind="churn").first()
    assert prediction.interval_low <= prediction.score <= prediction.interval_high
    assert 0.0 <= prediction.confidence <= 1.0
    explanation = prediction.explanation
    total = (
        explanation["base_value"]
        + sum(item["contribution"] for item in explanation["top"])
        + explanation["remainder"]
    )
    assert total == pytest.approx(explanation["margin"], abs=1e-6)
    assert all(item["name"] for item in explanation["top"])


def test_rescoring_the_same_cutoff_adds_no_second_prediction(active_churn_version):
    first = _score_inline("churn")
    count = Prediction.objects.count()

    # The same chunk again (a redelivered task) and a whole new run at the same cutoff.
    outcome = score_chunk(chunk_id=first.chunks.first().pk)
    _score_inline("churn")

    assert outcome.already_done is True
    assert Prediction.objects.count() == count
    assert (
        Prediction.objects.values("member", "model_version", "cutoff").distinct().count() == count
    )


def test_a_member_who_withdrew_consent_is_not_scored(active_churn_version, make_user):
    member = Member.objects.filter(consent_profiling=True).order_by("pk").first()
    run = start_scoring_run(kind="churn", cutoff=CUTOFF, enqueue=False)
    set_consent(member=member, consent=False, actor=make_user("admin"))  # after the run started

    for chunk_id in run.chunks.values_list("pk", flat=True):
        score_chunk(chunk_id=chunk_id)

    run.refresh_from_db()
    assert not Prediction.objects.filter(member=member).exists()
    assert run.members_skipped_no_consent == 1
    assert run.members_scored == run.members_total - 1


def test_next_action_recommends_only_eligible_actions(active_next_action_version):
    run = _score_inline("next_action")

    assert run.status == "done"
    predictions = Prediction.objects.filter(kind="next_action").select_related(
        "recommended_action", "member"
    )
    assert predictions.count() == run.members_scored > 0
    for prediction in predictions:
        action = prediction.recommended_action
        assert action is not None and action.is_eligible(prediction.member)
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0)
