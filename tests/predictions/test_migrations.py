"""Data migrations keep what was stored before them."""

from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("predictions", "0001_initial")]
AFTER = [("predictions", "0002_compact_feature_values")]


def test_feature_value_mappings_become_lists_in_the_versions_feature_order(migrator):
    old = migrator(BEFORE)
    member = old.get_model("loyalty", "Member").objects.create(
        external_id="m-1", joined_on=datetime(2020, 1, 1).date()
    )
    version = old.get_model("predictions", "ModelVersion").objects.create(
        kind="churn",
        algorithm="xgboost",
        evaluation_cutoff=datetime(2025, 10, 1, tzinfo=UTC),
        data_fingerprint="0" * 64,
        artifact_path="/nonexistent",
        features=[{"code": "spend_365"}, {"code": "gap_cv"}, {"code": "logins_30"}],
    )
    old.get_model("predictions", "Prediction").objects.create(
        member=member,
        model_version=version,
        kind="churn",
        cutoff=datetime(2026, 1, 1, tzinfo=UTC),
        confidence=0.8,
        feature_values={"logins_30": 3.0, "spend_365": 250.5, "gap_cv": None},
    )

    new = migrator(AFTER)
    prediction = new.get_model("predictions", "Prediction").objects.get()

    assert prediction.feature_values == [250.5, None, 3.0]
    assert prediction.member_value == 250.5


def test_members_scored_before_freshness_are_scored_through_their_latest_cutoff(migrator):
    """So that the first refresh re-scores those due, not everyone."""
    old = migrator([("loyalty", "0015_score_freshness"), ("predictions", "0005_score_freshness")])
    Member = old.get_model("loyalty", "Member")
    scored = Member.objects.create(external_id="m-1")
    Member.objects.create(external_id="m-2")  # never scored
    version = old.get_model("predictions", "ModelVersion").objects.create(
        kind="churn",
        algorithm="xgboost",
        evaluation_cutoff=datetime(2025, 10, 1, tzinfo=UTC),
        data_fingerprint="0" * 64,
        artifact_path="/nonexistent",
    )
    for cutoff in (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)):
        old.get_model("predictions", "Prediction").objects.create(
            member=scored, model_version=version, kind="churn", cutoff=cutoff, confidence=0.8
        )

    new = migrator([("predictions", "0006_members_scored_through")])
    through = dict(
        new.get_model("loyalty", "Member").objects.values_list("external_id", "scored_through")
    )

    assert through == {"m-1": datetime(2026, 2, 1, tzinfo=UTC), "m-2": None}
