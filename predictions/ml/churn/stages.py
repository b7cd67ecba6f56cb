"""Churn training's stages, in the order `train_churn` runs them, and each one's expected share
of the training time (what its `progress` hears; see `predictions.ml.progress`)."""

from __future__ import annotations

from predictions.ml.contracts import ChurnConfig

PREPARING = "preparing events"
FEATURES = "features"
FITTING = "fitting candidates"
REFITTING = "calibration and bootstrap refits"
SEQUENCE_MODEL = "sequence model"
ENSEMBLE_CALIBRATION = "ensemble calibration"
EVALUATION = "evaluation"


def progress_plan(config: ChurnConfig) -> dict[str, float]:
    """The stages in order with their shares: seconds on The Complete Journey with the default
    config (2 cores), the refits scaled by the number of replicas. The GRU's epochs take most
    of a training when it trains; without it, its two stages take no share."""
    plan = {
        PREPARING: 1.2,
        FEATURES: 0.3,
        FITTING: 0.5,
        REFITTING: 1.9 * config.bootstrap_models / ChurnConfig.bootstrap_models,
        SEQUENCE_MODEL: 11.0,
        ENSEMBLE_CALIBRATION: 0.2,
        EVALUATION: 0.5,
    }
    if not config.sequence:
        plan[SEQUENCE_MODEL] = plan[ENSEMBLE_CALIBRATION] = 0.0
    return plan
