"""Calibration, conformal sets, the probability interval and the confidence number."""

import math

import numpy as np
import pytest

from predictions.ml.calibration import (
    ISOTONIC,
    SIGMOID,
    Calibrator,
    choose_method,
    fit_calibrator,
)
from predictions.ml.confidence import confidence_from, probability_interval
from predictions.ml.conformal import (
    LacSets,
    MondrianBinary,
    conformal_quantile,
    fit_lac,
    fit_mondrian_binary,
)
from predictions.ml.metrics import binary_metrics, expected_calibration_error, multiclass_metrics

COVERAGE = 0.9
COVERAGE_SLACK = 0.03


def skewed_scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A rare outcome (~7 %) and an overconfident, shifted model margin for it."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-3.0, 1.2, n)
    truth = 1 / (1 + np.exp(-z))
    y = (rng.random(n) < truth).astype("int64")
    margin = 2.5 * z + 3.0
    return margin, y, truth


@pytest.mark.parametrize("method", [SIGMOID, ISOTONIC])
def test_calibration_improves_ece_on_a_skewed_set(method):
    margin, y, _ = skewed_scores(8000, seed=1)
    fit, held = slice(0, 4000), slice(4000, None)
    raw = 1 / (1 + np.exp(-margin[held]))
    calibrator = fit_calibrator(margin=margin[fit], labels=y[fit], method=method)
    calibrated = calibrator.probability(margin[held])
    raw_ece = expected_calibration_error(labels=y[held], probability=raw)
    calibrated_ece = expected_calibration_error(labels=y[held], probability=calibrated)
    assert raw_ece > 0.05
    assert calibrated_ece < raw_ece / 5
    assert 0 < calibrated.min() and calibrated.max() < 1


def test_auto_calibration_reports_both_methods_and_round_trips_as_json():
    margin, y, _ = skewed_scores(3000, seed=2)
    method, losses = choose_method(margin=margin, labels=y, requested="auto", seed=0)
    assert set(losses) == {SIGMOID, ISOTONIC}
    assert method == min(losses, key=losses.get)
    calibrator = fit_calibrator(margin=margin, labels=y, method=method)
    again = Calibrator.from_json(calibrator.to_json())
    np.testing.assert_array_equal(again.probability(margin), calibrator.probability(margin))


def test_ece_uses_equal_mass_bins():
    probability = np.array([0.1, 0.1, 0.2, 0.2, 0.9, 0.9])
    labels = np.array([0, 0, 0, 1, 1, 1])
    # Three bins of two rows: |0 - 0.1|, |0.5 - 0.2|, |1 - 0.9| weighted 1/3 each.
    assert expected_calibration_error(labels=labels, probability=probability, bins=3) == (
        pytest.approx((0.1 + 0.3 + 0.1) / 3)
    )


def test_conformal_quantile_is_the_finite_sample_rank():
    scores = np.arange(1.0, 10.0)  # nine scores
    assert conformal_quantile(scores, coverage=0.9) == 9.0  # ceil(10 * 0.9) = 9th
    assert conformal_quantile(scores, coverage=0.8) == 8.0
    assert conformal_quantile(scores, coverage=0.95) == math.inf  # rank 10 > n


def test_mondrian_sets_cover_each_class_near_the_nominal_level():
    margin, y, _ = skewed_scores(12000, seed=3)
    fit, held = slice(0, 6000), slice(6000, None)
    mondrian = fit_mondrian_binary(margin=margin[fit], labels=y[fit], coverage=COVERAGE)
    sets = mondrian.sets(margin[held])
    metrics = binary_metrics(
        labels=y[held],
        probability=1 / (1 + np.exp(-margin[held])),
        label_sets=sets,
        nominal_coverage=COVERAGE,
    )
    assert metrics["coverage_stay"] == pytest.approx(COVERAGE, abs=COVERAGE_SLACK)
    assert metrics["coverage_churn"] == pytest.approx(COVERAGE, abs=COVERAGE_SLACK + 0.02)
    assert metrics["coverage"] == pytest.approx(COVERAGE, abs=COVERAGE_SLACK)
    again = MondrianBinary.from_json(mondrian.to_json())
    np.testing.assert_array_equal(again.sets(margin[held]), sets)


def test_mondrian_thresholds_sit_on_the_class_margins():
    margin = np.array([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    mondrian = fit_mondrian_binary(margin=margin, labels=labels, coverage=0.75)
    # Four rows per class, rank ceil(5 * 0.75) = 4: the most extreme of each class.
    assert mondrian.stay_until == 0.0
    assert mondrian.churn_from == 1.0
    np.testing.assert_array_equal(
        mondrian.sets(np.array([-5.0, 0.5, 2.0])),
        [[True, False], [False, False], [False, True]],
    )


def test_lac_sets_cover_near_the_nominal_level_and_are_never_empty():
    rng = np.random.default_rng(4)
    n, k = 8000, 5
    logits = rng.normal(0, 1.5, (n, k))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(k, p=p) for p in probs])
    lac = fit_lac(probabilities=probs[:4000], labels=y[:4000], coverage=COVERAGE)
    sets = lac.sets(probs[4000:])
    metrics = multiclass_metrics(
        labels=y[4000:], probabilities=probs[4000:], sets=sets, nominal_coverage=COVERAGE
    )
    assert metrics["coverage"] == pytest.approx(COVERAGE, abs=COVERAGE_SLACK)
    assert sets.sum(axis=1).min() >= 1
    assert 1 < metrics["mean_set_size"] < k


def test_lac_never_includes_an_impossible_class():
    sets = LacSets(coverage=0.9, threshold=1.0).sets(np.array([[0.7, 0.3, 0.0]]))
    np.testing.assert_array_equal(sets, [[True, True, False]])


def test_confidence_combines_interval_width_and_set_size():
    confidence = confidence_from(
        set_sizes=np.array([1, 2, 0, 1]),
        n_labels=2,
        low=np.array([0.10, 0.10, 0.10, 0.0]),
        high=np.array([0.18, 0.18, 0.18, 1.0]),
    )
    np.testing.assert_allclose(confidence, [0.92, 0.46, 0.46, 0.0])
    actions = confidence_from(
        set_sizes=np.array([1, 3, 1]), n_labels=7, answer_in_set=np.array([True, True, False])
    )
    np.testing.assert_allclose(actions, [1.0, 1 / 3, 0.0])


def test_probability_interval_brackets_the_estimate_and_widens_with_disagreement():
    probability = np.array([0.2, 0.2])
    replicas = np.array([[0.19, 0.1], [0.21, 0.3], [0.2, 0.2], [0.2, 0.25]])
    low, high = probability_interval(probability=probability, replicas=replicas, coverage=0.9)
    assert (low < probability).all() and (probability < high).all()
    assert high[1] - low[1] > 5 * (high[0] - low[0])
    with pytest.raises(ValueError):
        probability_interval(probability=probability, replicas=replicas[:1], coverage=0.9)
