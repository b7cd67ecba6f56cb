"""Evaluation metrics as JSON-able dicts: discrimination, calibration, coverage.

Undefined values (AUC on a single class, anything on zero rows) are None, never NaN, so that a
report can be stored as JSON as is.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

# Equal-mass bins for the expected calibration error: each bin holds ~n/10 rows, so that every
# bin's observed rate is estimated from the same number of rows (equal-width bins leave most
# of a rare-event model's rows in the first bin).
ECE_BINS = 10
# Probabilities are clipped this far from 0 and 1 before log loss (as scikit-learn does).
LOG_LOSS_EPS = 1e-15


def expected_calibration_error(
    *, labels: np.ndarray, probability: np.ndarray, bins: int = ECE_BINS
) -> float | None:
    """Sum over equal-mass bins of (bin share) x |observed rate - mean predicted probability|.

    Rows are sorted by probability and cut into `bins` chunks of (nearly) equal size.
    """
    y = np.asarray(labels, dtype="float64")
    p = np.asarray(probability, dtype="float64")
    if len(y) == 0:
        return None
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, min(bins, len(y))):
        total += len(chunk) * abs(y[chunk].mean() - p[chunk].mean())
    return float(total / len(y))


def binary_metrics(
    *,
    labels: np.ndarray,
    probability: np.ndarray,
    label_sets: np.ndarray | None = None,
    nominal_coverage: float | None = None,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
) -> dict[str, float | int | None]:
    """roc_auc, pr_auc, log_loss, brier, ece, base_rate, n, and set/interval figures if given.

    `label_sets` is (n, 2) booleans over (stay, churn); coverage is the share of rows whose
    true label is in its set, reported beside the nominal level, per class too (Mondrian sets
    promise coverage within each class) with mean set size and the share of singletons.
    """
    y = np.asarray(labels, dtype="int64")
    p = np.clip(np.asarray(probability, dtype="float64"), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    n = len(y)
    both = n > 0 and 0 < y.sum() < n
    out: dict[str, float | int | None] = {
        "n": int(n),
        "base_rate": float(y.mean()) if n else None,
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "pr_auc": float(average_precision_score(y, p)) if both else None,
        "log_loss": float(log_loss(y, p, labels=[0, 1])) if n else None,
        "brier": float(brier_score_loss(y, p, pos_label=1)) if n else None,
        "ece": expected_calibration_error(labels=y, probability=p),
    }
    if label_sets is not None:
        sets = np.asarray(label_sets, dtype=bool)
        covered = sets[np.arange(n), y] if n else np.zeros(0, dtype=bool)
        out["coverage"] = _mean(covered)
        out["nominal_coverage"] = nominal_coverage
        out["coverage_stay"] = _mean(covered[y == 0])
        out["coverage_churn"] = _mean(covered[y == 1])
        out["mean_set_size"] = _mean(sets.sum(axis=1))
        out["singleton_share"] = _mean(sets.sum(axis=1) == 1)
    if low is not None and high is not None:
        out["interval_mean_width"] = _mean(np.asarray(high) - np.asarray(low))
    return out


def multiclass_metrics(
    *,
    labels: np.ndarray,
    probabilities: np.ndarray,
    sets: np.ndarray | None = None,
    nominal_coverage: float | None = None,
) -> dict[str, float | int | None]:
    """top1/top3 accuracy, log loss, set coverage and mean set size for class indices `labels`."""
    y = np.asarray(labels, dtype="int64")
    probs = np.asarray(probabilities, dtype="float64")
    n, k = probs.shape if probs.ndim == 2 else (0, 0)
    if n == 0:
        return {"n": 0, "top1": None, "top3": None, "log_loss": None}
    ranks = np.argsort(-probs, axis=1, kind="stable")
    top3 = (ranks[:, : min(3, k)] == y[:, None]).any(axis=1)
    true_p = np.clip(probs[np.arange(n), y], LOG_LOSS_EPS, 1.0)
    out: dict[str, float | int | None] = {
        "n": int(n),
        "top1": float((ranks[:, 0] == y).mean()),
        "top3": float(top3.mean()),
        "log_loss": float(-np.log(true_p).mean()),
    }
    if sets is not None:
        out["coverage"] = _mean(np.asarray(sets, dtype=bool)[np.arange(n), y])
        out["nominal_coverage"] = nominal_coverage
        out["mean_set_size"] = _mean(np.asarray(sets, dtype=bool).sum(axis=1))
    return out


def interval_coverage(*, low: np.ndarray, high: np.ndarray, truth: np.ndarray) -> float | None:
    """Share of rows whose true probability lies in [low, high] (for synthetic data with truth)."""
    truth = np.asarray(truth, dtype="float64")
    return _mean((np.asarray(low) <= truth) & (truth <= np.asarray(high)))


def _mean(values: np.ndarray) -> float | None:
    values = np.asarray(values, dtype="float64")
    return float(values.mean()) if len(values) else None
