"""Migration 0004 keeps which model scored the predictions stored before it."""

from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("predictions", "0003_scoring_setting")]
AFTER = [("predictions", "0004_prediction_served_model_and_input")]


def test_ensemble_predictions_stored_before_keep_their_model(migrator):
    old = migrator(BEFORE)
    version = old.get_model("predictions", "ModelVersion").objects.create(
        kind="churn",
        algorithm="ensemble",
        evaluation_cutoff=datetime(2025, 10, 1, tzinfo=UTC),
        data_fingerprint="0" * 64,
        artifact_path="/nonexistent",
    )
    Member = old.get_model("loyalty", "Member")
    Prediction = old.get_model("predictions", "Prediction")
    explained = {"base_value": -1.0, "margin": 0.5, "top": [], "remainder": 1.5}
    for external_id, explanation in (
        ("by-ensemble", {**explained, "model": "ensemble"}),
        ("by-trees", explained),
        ("erased", {}),
    ):
        Prediction.objects.create(
            member=Member.objects.create(external_id=external_id),
            model_version=version,
            kind="churn",
            cutoff=datetime(2026, 1, 1, tzinfo=UTC),
            confidence=0.8,
            explanation=explanation,
        )

    new = migrator(AFTER)

    stored = new.get_model("predictions", "Prediction").objects.order_by("member__external_id")
    assert [(p.member.external_id, p.served_model, p.model_input) for p in stored] == [
        ("by-ensemble", "ensemble", None),
        ("by-trees", "trees", None),
        ("erased", "trees", None),
    ]
