"""Scoring with the tree + sequence ensemble, the admin setting that picks it, and the registry."""

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from loyalty.exceptions import PermissionDeniedError
from loyalty.models import AuditRecord, Event, Member
from predictions.ml.churn.model import ENSEMBLE, predict_churn
from predictions.ml.churn.sequence import encode_members
from predictions.ml.contracts import SEQUENCE_ITEM, CorruptArtifactError
from predictions.ml.features import build_features
from predictions.models import ModelVersion, Prediction, ScoringRun, ScoringSetting
from predictions.selectors import feature_event_frame, feature_events, members_frame
from predictions.services.explanations import SEQUENCE_EVENTS_STORED, explain_predictions
from predictions.services.scoring.predict import load_bundle
from predictions.services.scoring.runs import score_chunk, start_scoring_run
from predictions.services.scoring.settings import ScoringSettingError, set_scoring_model
from predictions.services.whatif import what_if
from tests.predictions.conftest import CUTOFF

pytestmark = pytest.mark.django_db(transaction=True)

EVENT_KEYS = {"occurred_at", "kind", "category", "channel", "attribution"}


def _score(**options) -> ScoringRun:
    run = start_scoring_run(kind="churn", cutoff=CUTOFF, enqueue=False, **options)
    for chunk_id in run.chunks.values_list("pk", flat=True):
        score_chunk(chunk_id=chunk_id)
    run.refresh_from_db()
    return run


def _adds_up(explanation: dict) -> bool:
    total = (
        explanation["base_value"]
        + sum(item["contribution"] for item in explanation["top"])
        + explanation["remainder"]
    )
    return total == pytest.approx(explanation["margin"], abs=1e-6)


def _ml_prediction(version: ModelVersion, *, ensemble: bool):
    """What the engine says for every scorable member, computed here without scoring."""
    ids = list(
        Member.objects.filter(consent_profiling=True).order_by("pk").values_list("pk", flat=True)
    )
    bundle = load_bundle(version.pk, tuple(sorted(version.artifact_checksums.items())))
    features = build_features(
        events=feature_events(cutoff=CUTOFF, member_ids=ids),
        members=members_frame(member_ids=ids),
        cutoff=CUTOFF,
    )
    if not ensemble:
        return predict_churn(bundle=bundle, features=features)
    # Each member's events in the order they were stored, as scoring reads them for the GRU.
    frame, _ = feature_event_frame(cutoff=CUTOFF, member_ids=ids, in_stored_order=True)
    sequences = encode_members(
        ensemble=bundle.ensemble, events=frame, member_ids=features.index, cutoff=CUTOFF
    )
    return predict_churn(bundle=bundle, features=features, candidate=ENSEMBLE, sequences=sequences)


def test_with_the_ensemble_setting_everything_comes_from_the_calibrated_ensemble(
    ensemble_version,
):
    set_scoring_model(kind="churn", model="ensemble", actor=None)
    scorable = Member.objects.filter(consent_profiling=True).count()

    run = _score(chunk_size=150)

    assert (run.status, run.served_model, run.members_scored) == ("done", "ensemble", scorable)
    predictions = Prediction.objects.filter(model_version=ensemble_version).order_by("member_id")
    assert predictions.count() == scorable
    expected = _ml_prediction(ensemble_version, ensemble=True)
    # All members at once here, in chunks of 150 there: the GRU's float32 arithmetic varies
    # with the batch by about 1e-8.
    np.testing.assert_allclose([p.score for p in predictions], expected.probability, rtol=1e-6)
    np.testing.assert_allclose([p.interval_low for p in predictions], expected.low, rtol=1e-6)
    np.testing.assert_allclose([p.confidence for p in predictions], expected.confidence, atol=1e-6)
    assert [p.label_set for p in predictions] == [
        [label for label, kept in zip(("stay", "churn"), row, strict=True) if kept]
        for row in expected.label_sets.tolist()
    ]
    # Scoring stores no explanation; each is computed with the model that scored it, as it is
    # when routing gives the prediction to a person or someone opens it.
    assert {(p.served_model, json.dumps(p.explanation)) for p in predictions} == {
        ("ensemble", "{}")
    }
    assert explain_predictions(prediction_ids=[p.pk for p in predictions]) == scorable
    for prediction in predictions.all():
        explanation = prediction.explanation
        assert explanation["model"] == ENSEMBLE
        assert _adds_up(explanation)
        items = [item for item in explanation["top"] if item["feature"] == SEQUENCE_ITEM]
        assert len(items) == 1
        assert (items[0]["name"], items[0]["value"]) == ("Behavior sequence", None)
        assert prediction.interval_low <= prediction.score <= prediction.interval_high
    # The events each prediction names are the member's own (the member page marks them).
    checked = 0
    for prediction in Prediction.objects.filter(kind="churn").order_by("member_id")[:25]:
        events = prediction.explanation["sequence_events"]
        before = Event.objects.filter(member_id=prediction.member_id, occurred_at__lt=CUTOFF)
        assert len(events) == min(before.count(), SEQUENCE_EVENTS_STORED)
        sizes = [abs(event["attribution"]) for event in events]
        assert sizes == sorted(sizes, reverse=True)
        for event in events:
            assert set(event) == EVENT_KEYS
            stamp = datetime.fromisoformat(event["occurred_at"])
            assert stamp < CUTOFF and stamp.tzinfo is not None
            # What the member page marks on the timeline: (member, time, kind) finds the row.
            assert Event.objects.filter(
                member_id=prediction.member_id, occurred_at=stamp, kind=event["kind"]
            ).exists()
            checked += 1
    assert checked > 0
    # A what-if answers with the model that serves, the sequence share unchanged, for every
    # member checked above (it reads the member's events as scoring did).
    for prediction in Prediction.objects.filter(kind="churn").order_by("member_id")[:25]:
        unchanged = what_if(prediction=prediction, changes={})
        # The stored feature values are rounded to 6 decimals: the same score, nearly exactly.
        assert unchanged.score == pytest.approx(prediction.score, rel=1e-4)
        assert any(item["feature"] == SEQUENCE_ITEM for item in unchanged.explanation["top"])


def test_with_the_trees_setting_the_same_version_scores_with_its_trees(ensemble_version):
    set_scoring_model(kind="churn", model="trees", actor=None)
    run = start_scoring_run(kind="churn", cutoff=CUTOFF, enqueue=False)
    # A change applies to the runs started after it: every chunk of this one stays trees.
    set_scoring_model(kind="churn", model="ensemble", actor=None)

    for chunk_id in run.chunks.values_list("pk", flat=True):
        score_chunk(chunk_id=chunk_id)

    assert ScoringRun.objects.get(pk=run.pk).served_model == "trees"
    predictions = Prediction.objects.filter(model_version=ensemble_version).order_by("member_id")
    expected = _ml_prediction(ensemble_version, ensemble=False)
    np.testing.assert_allclose([p.score for p in predictions], expected.probability, rtol=1e-12)
    assert {(p.served_model, json.dumps(p.explanation)) for p in predictions} == {("trees", "{}")}
    explain_predictions(prediction_ids=[p.pk for p in predictions])
    for prediction in predictions.all():
        explanation = prediction.explanation
        assert "sequence_events" not in explanation and "model" not in explanation
        assert all(item["feature"] != SEQUENCE_ITEM for item in explanation["top"])
        assert _adds_up(explanation)


def test_by_default_the_ensemble_serves_only_where_it_won_the_selection(ensemble_version):
    ScoringSetting.objects.all().delete()  # no row: the default applies

    run = _score(member_limit=20)

    bundle = load_bundle(
        ensemble_version.pk, tuple(sorted(ensemble_version.artifact_checksums.items()))
    )
    won = ensemble_version.algorithm == ENSEMBLE
    assert won == bundle.ensemble.selected
    assert run.served_model == ("ensemble" if won else "trees")


def test_changing_the_setting_is_audited_and_only_an_admin_may(make_user):
    admin = make_user("admin")
    analyst = make_user("analyst")

    set_scoring_model(kind="churn", model="trees", actor=admin, reason="explanations first")
    set_scoring_model(kind="churn", model="trees", actor=admin)  # no change, no record
    with pytest.raises(PermissionDeniedError):
        set_scoring_model(kind="churn", model="ensemble", actor=analyst)
    with pytest.raises(ScoringSettingError, match="no sequence model"):
        set_scoring_model(kind="next_action", model="ensemble", actor=admin)

    assert ScoringSetting.objects.get(kind="churn").model == "trees"
    assert ScoringSetting.objects.get(kind="churn").updated_by == admin
    assert ScoringSetting.objects.filter(kind="next_action", model="ensemble").count() == 0
    records = AuditRecord.objects.filter(subject="scoring_setting:churn")
    assert records.count() == 1
    assert records.get().details == {
        "kind": "churn",
        "from": "selected",
        "to": "trees",
        "reason": "explanations first",
    }
    assert records.get().actor == admin


def test_the_admin_changes_the_setting_through_the_audited_service(client, make_user):
    set_scoring_model(kind="churn", model="selected", actor=None)  # the row exists
    setting = ScoringSetting.objects.get(kind="churn")
    client.force_login(make_user("admin"))

    response = client.post(
        f"/admin/predictions/scoringsetting/{setting.pk}/change/", {"model": "ensemble"}
    )

    assert response.status_code == 302
    assert ScoringSetting.objects.get(kind="churn").model == "ensemble"
    assert AuditRecord.objects.filter(subject="scoring_setting:churn").count() == 1


def test_a_corrupted_sequence_artifact_fails_loudly(ensemble_version):
    set_scoring_model(kind="churn", model="ensemble", actor=None)
    weights = Path(ensemble_version.artifact_path) / "sequence" / "sequence_weights.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    load_bundle.cache_clear()  # a process that loaded it before keeps its verified copy

    with pytest.raises(CorruptArtifactError, match="sequence_weights.bin has sha256"):
        load_bundle(ensemble_version.pk, tuple(sorted(ensemble_version.artifact_checksums.items())))
    run = start_scoring_run(kind="churn", cutoff=CUTOFF, enqueue=False)
    with pytest.raises(CorruptArtifactError):
        score_chunk(chunk_id=run.chunks.first().pk)

    run.refresh_from_db()
    chunk = run.chunks.first()
    assert (run.status, chunk.status) == ("failed", "failed")
    assert "CorruptArtifactError" in chunk.error and "sequence_weights.bin" in chunk.error
    assert not Prediction.objects.exists()


def test_the_registry_keeps_the_sequence_files_and_shows_both_side_by_side(
    ensemble_version, client, make_user
):
    root = Path(ensemble_version.artifact_path)
    files = sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())
    assert files == sorted(ensemble_version.artifact_checksums)
    assert "sequence/sequence_weights.bin" in files
    metrics = ensemble_version.metrics
    for entry in ("model", "sequence", "ensemble"):
        assert {"roc_auc", "log_loss", "brier", "ece"} <= set(metrics[entry])
    client.force_login(make_user("admin"))

    page = client.get(f"/admin/predictions/modelversion/{ensemble_version.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    for heading in ("Trees (XGBoost)", "Ensemble (trees + sequence)", "Sequence model alone"):
        assert heading in html
    assert f"{metrics['ensemble']['roc_auc']:.4f}" in html
    assert f"{metrics['model']['roc_auc']:.4f}" in html
