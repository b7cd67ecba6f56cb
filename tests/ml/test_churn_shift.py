"""Calibration through a seasonal shift of the base rate (`churn.shift`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from predictions.ml.calibration import ISOTONIC, SIGMOID, Calibrator, fit_calibrator
from predictions.ml.churn.shift import intercept_offset, seasonal_offset, twin_cutoffs
from predictions.ml.metrics import expected_calibration_error

ROWS = 4000
# Log-odds of churn in the calibration season and in the scored season: 0.27 vs 0.62 at x = 0.
CALIBRATION_SEASON, SCORED_SEASON = -1.0, 0.5


def season(rng, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """A season's rows: the model's margin x and outcomes with P(churn) = expit(x + shift)."""
    x = rng.normal(0.0, 1.0, ROWS)
    return x, (rng.random(ROWS) < 1 / (1 + np.exp(-(x + shift)))).astype("int64")


def test_a_planted_base_rate_shift_is_corrected_by_the_year_earlier_offset():
    """Given a calibrator fitted in the calibration season and the same two seasons observed
    a year earlier, when the scored season's base rate is higher, then the offset measured a
    year earlier recalibrates the scored season: ECE drops from the size of the shift to
    sampling noise."""
    rng = np.random.default_rng(42)
    calibration_x, calibration_y = season(rng, CALIBRATION_SEASON)
    calibrator = fit_calibrator(margin=calibration_x, labels=calibration_y, method=SIGMOID)
    twin_scored_x, twin_scored_y = season(rng, SCORED_SEASON)
    twin_calibration_x, twin_calibration_y = season(rng, CALIBRATION_SEASON)
    scored_x, scored_y = season(rng, SCORED_SEASON)

    offset = seasonal_offset(
        target_probability=calibrator.probability(twin_scored_x),
        target_labels=twin_scored_y,
        calibration_probability=calibrator.probability(twin_calibration_x),
        calibration_labels=twin_calibration_y,
    )
    shifted = Calibrator(
        method=SIGMOID, slope=calibrator.slope, intercept=calibrator.intercept, offset=offset
    )

    before = expected_calibration_error(
        labels=scored_y, probability=calibrator.probability(scored_x)
    )
    after = expected_calibration_error(labels=scored_y, probability=shifted.probability(scored_x))
    assert offset == pytest.approx(SCORED_SEASON - CALIBRATION_SEASON, abs=0.2)
    assert before > 0.25
    assert after < 0.03


def test_the_offset_makes_the_mean_probability_the_observed_rate():
    rng = np.random.default_rng(3)
    probability = rng.uniform(0.05, 0.6, 500)
    labels = (rng.random(500) < 0.5).astype("int64")

    offset = intercept_offset(probability=probability, labels=labels)

    logit = np.log(probability / (1 - probability)) + offset
    assert np.mean(1 / (1 + np.exp(-logit))) == pytest.approx(labels.mean(), abs=1e-9)
    assert intercept_offset(probability=np.full(4, 0.5), labels=np.array([0, 1, 0, 1])) == 0.0
    with pytest.raises(ValueError):
        intercept_offset(probability=probability, labels=np.zeros(500))


@pytest.mark.parametrize("method", [SIGMOID, ISOTONIC])
def test_an_offset_shifts_the_log_odds_and_survives_json(method):
    rng = np.random.default_rng(5)
    margin = rng.normal(size=300)
    labels = (rng.random(300) < 1 / (1 + np.exp(-margin))).astype("int64")
    plain = fit_calibrator(margin=margin, labels=labels, method=method)
    shifted = Calibrator.from_json({**plain.to_json(), "offset": 0.7})

    p, q = plain.probability(margin), shifted.probability(margin)

    np.testing.assert_allclose(np.log(q / (1 - q)) - np.log(p / (1 - p)), 0.7, atol=1e-9)
    assert Calibrator.from_json(shifted.to_json()) == shifted
    old_artifact = {key: value for key, value in plain.to_json().items() if key != "offset"}
    assert Calibrator.from_json(old_artifact).offset == 0.0


def test_twins_are_the_same_windows_52_weeks_earlier():
    cutoff = pd.Timestamp("2024-01-15", tz="UTC")

    scored, calibration = twin_cutoffs(cutoff, 90)

    assert scored == pd.Timestamp("2023-01-16", tz="UTC")
    assert calibration == pd.Timestamp("2022-10-18", tz="UTC")
    assert scored.dayofweek == cutoff.dayofweek


# --- end to end: train_churn on members whose buying follows the season ----------------------

SEASON_START = pd.Timestamp("2021-01-01", tz="UTC")
SEASON_DAYS = 1200
PEAK = pd.Timestamp("2021-12-10", tz="UTC")
SEASON_AMPLITUDE = 0.8
SEASON_MEMBERS = 2000
MEAN_DAYS_BETWEEN_PURCHASES = 20
MEAN_DAYS_TO_LEAVE = 3000
# After the peak: calibrated on the weeks before it, scored on the quiet weeks after.
SEASON_CUTOFF = pd.Timestamp("2024-01-20", tz="UTC")
SEASON_HORIZON = 45


def seasonal_members(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Members who buy by a Poisson process whose rate peaks every 10 December at 1.8 times
    its mean and falls to 0.2 times in June, and who leave at a constant hazard."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(4.0, 1 / (4.0 * MEAN_DAYS_BETWEEN_PURCHASES), SEASON_MEMBERS)
    leave = rng.exponential(MEAN_DAYS_TO_LEAVE, SEASON_MEMBERS)
    counts = rng.poisson(rate * (1 + SEASON_AMPLITUDE) * np.minimum(leave, SEASON_DAYS))
    owner = np.repeat(np.arange(SEASON_MEMBERS), counts)
    day = rng.random(len(owner)) * np.minimum(leave, SEASON_DAYS)[owner]
    phase = 2 * np.pi * (day - (PEAK - SEASON_START).days) / 365.25
    keep = rng.random(len(owner)) < (1 + SEASON_AMPLITUDE * np.cos(phase)) / (1 + SEASON_AMPLITUDE)
    events = pd.DataFrame(
        {
            "member_id": owner[keep] + 1,
            "occurred_at": SEASON_START + pd.to_timedelta(day[keep], unit="D"),
            "kind": "purchase",
            "amount": 20.0,
        }
    )
    return events, pd.DataFrame({"member_id": np.arange(1, SEASON_MEMBERS + 1)})


def test_training_recalibrates_for_the_season_it_scores():
    """Given three years of seasonal buying, when every candidate is calibrated on the weeks
    before the peak and scores the quiet weeks after it (more members stop buying), then the
    offset measured a year earlier raises their log-odds and lowers every out-of-time ECE."""
    from dataclasses import replace

    from predictions.ml.churn.model import CANDIDATES, XGBOOST, train_churn
    from predictions.ml.contracts import BoosterParams, ChurnConfig

    events, members = seasonal_members(seed=10)
    config = replace(
        ChurnConfig(),
        max_training_cutoffs=8,
        bootstrap_models=2,
        sequence=False,
        booster=BoosterParams(learning_rate=0.1, num_boost_round=200, early_stopping_rounds=20),
    )

    def ece(recalibrate: bool) -> tuple[dict[str, float], dict]:
        report = train_churn(
            events=events,
            members=members,
            cutoff=SEASON_CUTOFF,
            horizon_days=SEASON_HORIZON,
            config=replace(config, season_recalibration=recalibrate),
        ).report
        assert report["calibration_shift"]["applied"] is recalibrate
        figures = {**report["baselines"], XGBOOST: report["model"]}
        return {name: figures[name]["ece"] for name in CANDIDATES}, report

    (before, _), (after, shifted) = ece(False), ece(True)

    section = shifted["calibration_shift"]
    assert section["twin_base_rates"]["scored"] > section["twin_base_rates"]["calibration"]
    assert all(offset > 0 for offset in section["offsets"].values())
    assert all(after[name] < before[name] for name in CANDIDATES)
    assert np.mean(list(after.values())) < 0.03 < np.mean(list(before.values()))


def test_the_ensemble_is_shifted_from_its_own_stacked_margins():
    from dataclasses import replace

    from predictions.ml.churn.model import ENSEMBLE, train_churn
    from predictions.ml.contracts import BoosterParams, ChurnConfig, SequenceModelConfig

    events, members = seasonal_members(seed=10)
    config = replace(
        ChurnConfig(),
        max_training_cutoffs=6,
        bootstrap_models=2,
        booster=BoosterParams(learning_rate=0.1, num_boost_round=100, early_stopping_rounds=10),
        sequence_length=16,
        sequence_min_rows=500,
        sequence_model=SequenceModelConfig(hidden_size=8, max_epochs=2, patience=1),
    )

    result = train_churn(
        events=events,
        members=members,
        cutoff=SEASON_CUTOFF,
        horizon_days=SEASON_HORIZON,
        config=config,
    )

    section = result.report["calibration_shift"]
    ensemble = result.bundle.ensemble
    assert ensemble is not None and section["applied"] is True
    assert ensemble.calibrator.offset == section["offsets"][ENSEMBLE] > 0
    assert all(c.offset == ensemble.calibrator.offset for c in ensemble.bootstrap_calibrators)
    moved = section["threshold_shifts"][ENSEMBLE]
    assert moved["churn_from"] != 0.0 and moved["stay_until"] != 0.0
