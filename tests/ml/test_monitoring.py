"""Reliability and drift: the numbers the calibration monitor acts on."""

import numpy as np
import pandas as pd
import pytest

from predictions.ml.monitoring import feature_drift, population_stability_index, reliability


def test_a_calibrated_model_has_a_diagonal_reliability_curve_and_a_small_ece():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 50_000)
    y = rng.uniform(0, 1, 50_000) < p

    report = reliability(probability=p, outcome=y)

    assert report["n"] == 50_000 and len(report["bins"]) == 10
    for row in report["bins"]:
        assert row["observed_rate"] == pytest.approx(row["mean_predicted"], abs=0.02)
    assert report["ece"] < 0.01


def test_an_overconfident_model_shows_a_large_ece():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 20_000)
    y = rng.uniform(0, 1, 20_000) < 0.5  # the truth ignores the model

    assert reliability(probability=p, outcome=y)["ece"] > 0.2


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(2)
    reference = rng.normal(0, 1, 20_000)

    same = population_stability_index(reference=reference, current=rng.normal(0, 1, 20_000))
    shifted = population_stability_index(reference=reference, current=rng.normal(1, 1, 20_000))

    assert same < 0.01
    assert shifted > 0.25


def test_missing_values_are_a_bin_of_their_own():
    reference = np.arange(1000, dtype="float64")
    current = reference.copy()
    current[:300] = np.nan  # 30 % go missing

    assert population_stability_index(reference=reference, current=current) > 0.25
    assert population_stability_index(reference=reference, current=np.array([])) is None


def test_feature_drift_reports_every_shared_feature():
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    current = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(3, 1, size=500), "c": 1.0})

    drift = feature_drift(reference=reference, current=current)

    assert set(drift) == {"a", "b"}
    assert drift["b"] > drift["a"]
