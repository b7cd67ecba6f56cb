"""Management commands of the prediction engine: train, promote, score."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from loyalty.models import AuditRecord
from predictions.models import ModelVersion, Prediction, ScoringRun
from tests.factories import EventFactory

pytestmark = pytest.mark.django_db(transaction=True)
METRICS = {"roc_auc", "pr_auc", "log_loss", "brier", "ece"}


def test_train_json_reports_the_model_the_sequence_model_the_ensemble_and_both_baselines(
    generated_members,
):
    out = StringIO()

    call_command(
        "train",
        "--kind",
        "churn",
        "--cutoff",
        "2026-01-01",
        "--horizon",
        "90",
        "--json",
        stdout=out,
    )

    report = json.loads(out.getvalue())
    assert METRICS | {"coverage", "nominal_coverage"} <= set(report["model"])
    assert set(report["baselines"]) == {"recency", "rfm_logistic", "bgnbd"}
    for baseline in report["baselines"].values():
        assert METRICS <= set(baseline)
    assert report["model"]["nominal_coverage"] == 0.9
    assert 0.5 < report["model"]["roc_auc"] <= 1.0
    # The default configuration trains the sequence model on this much data.
    assert report["sequence_model"]["trained"] is True
    assert METRICS <= set(report["sequence"])
    assert METRICS | {"coverage", "nominal_coverage"} <= set(report["ensemble"])
    assert report["ensemble"]["n"] == report["model"]["n"] == report["sequence"]["n"]
    version = ModelVersion.objects.get(pk=report["version"])
    assert (version.kind, version.status) == ("churn", "candidate")
    assert version.algorithm == report["selected"]
    assert {"sequence/manifest.json", "sequence/sequence_weights.bin"} <= set(
        version.artifact_checksums
    )


def test_train_on_too_little_history_fails_with_a_clear_message():
    EventFactory.create_batch(3)

    with pytest.raises(CommandError, match="Cannot train"):
        call_command("train", "--kind", "churn", "--cutoff", "2025-01-02", "--horizon", "90")

    assert ModelVersion.objects.count() == 0


def test_score_without_an_active_version_says_what_to_do():
    with pytest.raises(CommandError, match="Train and promote one first"):
        call_command("score", "--kind", "churn", "--inline")

    assert Prediction.objects.count() == 0


def test_promote_and_rollback_commands(active_churn_version):
    out = StringIO()
    newer = ModelVersion.objects.create(
        kind="churn",
        algorithm="xgboost",
        evaluation_cutoff=active_churn_version.evaluation_cutoff,
        data_fingerprint="0" * 64,
        artifact_path="/nonexistent",
    )

    call_command("promote", str(newer.pk), "--no-rescore", stdout=out)
    assert not ScoringRun.objects.exists()
    call_command("promote", "--rollback", "--kind", "churn", stdout=out)

    active = ModelVersion.objects.get(kind="churn", status="active")
    assert active.pk == active_churn_version.pk
    assert AuditRecord.objects.filter(kind__in=["promotion", "rollback"]).count() == 3
    assert f"Active churn version: {active.pk}" in out.getvalue().splitlines()[-2]
    # The rollback re-scores everybody with the restored version, once it has committed.
    assert list(ScoringRun.objects.values_list("model_version_id", flat=True)) == [active.pk]
