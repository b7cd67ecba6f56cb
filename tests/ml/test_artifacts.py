"""Bundles round-trip through files exactly, and any tampering is caught before loading."""

import json

import numpy as np
import pytest

from predictions.ml.artifacts import (
    MANIFEST,
    load_churn_bundle,
    load_next_action_bundle,
    save_churn_bundle,
    save_next_action_bundle,
)
from predictions.ml.churn.model import CANDIDATES, predict_churn
from predictions.ml.contracts import CorruptArtifactError
from predictions.ml.features import build_features
from predictions.ml.nba import predict_next_action
from tests.ml.conftest import CUTOFF


@pytest.fixture(scope="module")
def features(synthetic):
    return build_features(events=synthetic.events, members=synthetic.members, cutoff=CUTOFF)


@pytest.fixture
def saved(churn_result, tmp_path):
    checksums = save_churn_bundle(bundle=churn_result.bundle, directory=tmp_path)
    return tmp_path, checksums


def test_save_returns_a_sha256_per_file_and_writes_no_pickle(saved, churn_result):
    directory, checksums = saved
    assert sorted(p.name for p in directory.iterdir()) == sorted(checksums)
    assert MANIFEST in checksums
    assert all(len(digest) == 64 for digest in checksums.values())
    assert {p.suffix for p in directory.iterdir()} <= {".json", ".ubj"}
    replicas = churn_result.bundle.config.bootstrap_models
    assert sum(name.endswith(".ubj") for name in checksums) == 1 + replicas  # xgboost + replicas
    manifest = json.loads((directory / MANIFEST).read_text())
    assert manifest["selected"] == churn_result.bundle.selected


def test_a_loaded_churn_bundle_predicts_identically(saved, churn_result, features):
    directory, checksums = saved
    loaded = load_churn_bundle(directory=directory, checksums=checksums)
    assert loaded.feature_codes == churn_result.bundle.feature_codes
    assert loaded.config == churn_result.bundle.config
    assert loaded.selected == churn_result.bundle.selected
    for name in CANDIDATES:
        before = predict_churn(bundle=churn_result.bundle, features=features, candidate=name)
        after = predict_churn(bundle=loaded, features=features, candidate=name)
        for field in ("probability", "low", "high", "label_sets", "confidence"):
            np.testing.assert_array_equal(getattr(after, field), getattr(before, field), field)
        np.testing.assert_array_equal(
            after.explanation.top_contribution, before.explanation.top_contribution
        )


def test_a_changed_byte_is_caught(saved):
    directory, checksums = saved
    booster_file = next(name for name in checksums if name.endswith(".ubj"))
    data = bytearray((directory / booster_file).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (directory / booster_file).write_bytes(bytes(data))
    with pytest.raises(CorruptArtifactError, match=f"{booster_file} has sha256"):
        load_churn_bundle(directory=directory, checksums=checksums)


def test_a_missing_file_is_caught(saved):
    directory, checksums = saved
    (directory / MANIFEST).unlink()
    with pytest.raises(CorruptArtifactError, match="missing"):
        load_churn_bundle(directory=directory, checksums=checksums)


def test_checksums_must_cover_the_manifest_and_every_booster(saved):
    directory, checksums = saved
    without_manifest = {k: v for k, v in checksums.items() if k != MANIFEST}
    with pytest.raises(CorruptArtifactError, match="do not cover"):
        load_churn_bundle(directory=directory, checksums=without_manifest)
    booster_file = next(name for name in checksums if name.endswith(".ubj"))
    without_booster = {k: v for k, v in checksums.items() if k != booster_file}
    with pytest.raises(CorruptArtifactError, match="not checksummed"):
        load_churn_bundle(directory=directory, checksums=without_booster)


def test_names_that_leave_the_directory_are_refused(saved):
    directory, checksums = saved
    with pytest.raises(CorruptArtifactError, match="plain file name"):
        load_churn_bundle(directory=directory, checksums={**checksums, "../x.json": "0" * 64})


def test_a_next_action_bundle_round_trips(next_action_result, synthetic, features, tmp_path):
    bundle = next_action_result.bundle
    checksums = save_next_action_bundle(bundle=bundle, directory=tmp_path)
    loaded = load_next_action_bundle(directory=tmp_path, checksums=checksums)
    before = predict_next_action(bundle=bundle, features=features)
    after = predict_next_action(bundle=loaded, features=features)
    np.testing.assert_array_equal(after.probabilities, before.probabilities)
    np.testing.assert_array_equal(after.recommended, before.recommended)
    np.testing.assert_array_equal(after.action_sets, before.action_sets)
    assert loaded.trained_classes == bundle.trained_classes
    with pytest.raises(CorruptArtifactError, match="expected 'loyalty-review/churn'"):
        load_churn_bundle(directory=tmp_path, checksums=checksums)
