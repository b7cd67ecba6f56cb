"""The churn candidates: their names, and how each is fitted, calibrated and refit on
half-samples for its interval (what `churn.model.train_churn` runs on the training splits)."""

from __future__ import annotations

from typing import Any

import numpy as np
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from predictions.ml import calibration, conformal
from predictions.ml.churn import stages
from predictions.ml.churn.rows import Rows, Splits, take_rows
from predictions.ml.contracts import ChurnCandidate, ChurnConfig
from predictions.ml.features import MAX_LOOKBACK_DAYS
from predictions.ml.progress import Progress
from predictions.ml.scorers import (
    BgNbdScorer,
    LinearScorer,
    TreeScorer,
    booster_settings,
    fit_bgnbd_scorer,
    fit_booster,
    fit_linear,
    training_matrix,
)

XGBOOST = "xgboost"
RECENCY = "recency"
RFM_LOGISTIC = "rfm_logistic"
BGNBD = "bgnbd"
ENSEMBLE = "ensemble"
SEQUENCE = "sequence"
# Simplest first: on a tie within the tolerance the earlier one wins.
CANDIDATES = (RECENCY, RFM_LOGISTIC, BGNBD, XGBOOST)
BASELINES = (RECENCY, RFM_LOGISTIC, BGNBD)
# The order the selection rule reads, the tree + sequence ensemble last (the most complex).
# BG/NBD is a yardstick, never served: fitted on purchase histories alone, people's labels
# could not change it, and the learning loop would stand still.
SELECTION_ORDER = (RECENCY, RFM_LOGISTIC, XGBOOST, ENSEMBLE)
# Inverse L2 strength of the baselines on standardized inputs: mild, they have 1-4 columns.
BASELINE_C = 1.0
RFM_COLUMNS = ("days_since_last_purchase", "baskets_365", "spend_365", "tenure_days")
# BG/NBD's purchase summary (x, T, T - t_x); without all three there is no bgnbd candidate.
BGNBD_COLUMNS = ("repeat_purchase_days", "days_since_first_purchase", "days_since_last_purchase")
# Never having purchased within the lookback is treated as the longest recency there is.
RECENCY_FILL = float(MAX_LOOKBACK_DAYS)


def baseline_layout(codes: tuple[str, ...], names: tuple[str, ...]) -> dict[str, tuple]:
    """Column positions and transforms of a baseline; excluded features are left out."""
    if "days_since_last_purchase" not in codes:
        raise ValueError("days_since_last_purchase cannot be excluded: every baseline uses it")
    names = tuple(name for name in names if name in codes)
    columns = tuple(codes.index(name) for name in names)
    fill = tuple(RECENCY_FILL if name == "days_since_last_purchase" else 0.0 for name in names)
    return {"columns": columns, "signed_log": (True,) * len(names), "fill": fill}


def fit_scorers(
    splits: Splits, codes: tuple[str, ...], config: ChurnConfig, progress: Progress
) -> tuple[dict[str, Any], xgb.DMatrix, TreeScorer]:
    """The three candidates fitted on the training rows, the trees' training matrix, and the
    early-stopping booster (fitted without the validation members: its margins there are
    honest, which the ensemble's stacker needs).

    The number of boosting rounds comes from early stopping on the member-disjoint,
    time-later validation rows; the trees are then refit with that many rounds on every
    training member, the rows the baselines are fitted on too.
    """
    settings = booster_settings(
        config.booster, seed=config.seed, objective="binary:logistic", eval_metric="logloss"
    )
    fit, valid, train = splits.early_stopping, splits.validation, splits.train
    progress.stage(stages.FITTING, total=3)  # early stopping, the trees, the baselines
    dfit = training_matrix(params=config.booster, x=fit.x, y=fit.y, weights=fit.w)
    dvalid = training_matrix(params=config.booster, x=valid.x, y=valid.y, reference=dfit)
    stopped = fit_booster(params=config.booster, settings=settings, train=dfit, valid=dvalid)
    progress.step(detail=f"xgboost early stopping: {stopped.num_boosted_rounds()} rounds")
    dtrain = training_matrix(params=config.booster, x=train.x, y=train.y, weights=train.w)
    booster = fit_booster(
        params=config.booster,
        settings=settings,
        train=dtrain,
        valid=None,
        rounds=stopped.num_boosted_rounds(),
    )
    progress.step(detail=XGBOOST)
    scorers = {
        XGBOOST: TreeScorer(booster),
        RECENCY: fit_linear(
            x=train.x,
            y=train.y,
            weights=train.w,
            regularization_c=BASELINE_C,
            **baseline_layout(codes, ("days_since_last_purchase",)),
        ),
        RFM_LOGISTIC: fit_linear(
            x=train.x,
            y=train.y,
            weights=train.w,
            regularization_c=BASELINE_C,
            **baseline_layout(codes, RFM_COLUMNS),
        ),
    }
    progress.step(detail=f"{RECENCY}, {RFM_LOGISTIC}")
    return scorers, dtrain, TreeScorer(stopped)


def fit_bgnbd(train: Rows, codes: tuple[str, ...], horizon_days: int) -> dict[str, Any]:
    """The BG/NBD baseline, fitted on the training rows' purchase summaries (each as of its
    own cutoff), or nothing when a summary column is excluded."""
    if not set(BGNBD_COLUMNS) <= set(codes):
        return {}
    columns = tuple(codes.index(name) for name in BGNBD_COLUMNS)
    scorer = fit_bgnbd_scorer(
        x=train.x, columns=columns, horizon_days=horizon_days, fill_days=RECENCY_FILL
    )
    return {BGNBD: scorer}


def refit(scorer: Any, half: Rows, dtrain: xgb.DMatrix, config: ChurnConfig, replica: int) -> Any:
    """The same candidate refit on a half-sample (trees: same settings and number of rounds)."""
    if isinstance(scorer, TreeScorer):
        settings = booster_settings(
            config.booster,
            seed=config.seed + 1 + replica,
            objective="binary:logistic",
            eval_metric="logloss",
        )
        matrix = training_matrix(
            params=config.booster, x=half.x, y=half.y, weights=half.w, reference=dtrain
        )
        booster = fit_booster(
            params=config.booster,
            settings=settings,
            train=matrix,
            valid=None,
            rounds=scorer.booster.num_boosted_rounds(),
        )
        return TreeScorer(booster)
    if isinstance(scorer, BgNbdScorer):
        return fit_bgnbd_scorer(
            x=half.x,
            columns=scorer.columns,
            horizon_days=scorer.horizon_days,
            fill_days=scorer.fill_days,
        )
    assert isinstance(scorer, LinearScorer)
    return fit_linear(
        x=half.x,
        y=half.y,
        weights=half.w,
        columns=scorer.columns,
        signed_log=scorer.signed_log,
        fill=scorer.fill,
        regularization_c=BASELINE_C,
    )


def finish_candidate(
    name: str,
    scorer: Any,
    train: Rows,
    dtrain: xgb.DMatrix,
    calib: Rows,
    config: ChurnConfig,
    progress: Progress,
) -> tuple[ChurnCandidate, dict[str, Any]]:
    """Calibrator, conformal thresholds and half-sample replicas of one fitted candidate.

    Each replica refits the candidate on a random half of the training members (all their
    cutoffs) and its calibrator on a random half of the calibration rows. Half-samples drawn
    without replacement vary like bootstrap resamples of the full data (for a mean the
    variance is exactly S^2/n: (S^2/(n/2)) * (1 - 1/2)), so their spread estimates the
    full model's sampling spread at half the cost of a resample.
    """
    margin = scorer.margin(calib.x)
    method, losses = calibration.choose_method(
        margin=margin, labels=calib.y, requested=config.calibration, seed=config.seed
    )
    calibrator = calibration.fit_calibrator(margin=margin, labels=calib.y, method=method)
    mondrian = conformal.fit_mondrian_binary(
        margin=margin, labels=calib.y, coverage=config.label_set_coverage
    )
    rng = np.random.default_rng([config.seed, CANDIDATES.index(name)])
    members = np.unique(train.member_id)
    replicas = []
    for b in range(config.bootstrap_models):
        chosen = members[rng.permutation(len(members))[: len(members) // 2]]
        half = take_rows(train, np.isin(train.member_id, chosen))
        calib_half = np.sort(rng.permutation(len(calib.y))[: len(calib.y) // 2])
        replica = refit(scorer, half, dtrain, config, b)
        replica_calibrator = calibration.fit_calibrator(
            margin=replica.margin(calib.x[calib_half]), labels=calib.y[calib_half], method=method
        )
        replicas.append((replica, replica_calibrator))
        progress.step(detail=f"{name} {b + 1}/{config.bootstrap_models}")
    summary = {"log_loss": losses[method], "roc_auc": auc(calib.y, margin), "calibration": method}
    candidate = ChurnCandidate(
        name=name,
        scorer=scorer,
        calibrator=calibrator,
        conformal=mondrian,
        bootstrap=tuple(replicas),
    )
    return candidate, summary


def auc(y: np.ndarray, score: np.ndarray) -> float | None:
    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else None
