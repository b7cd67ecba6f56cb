"""Monitoring a deployed model: reliability of its probabilities, and drift of its inputs.

- `reliability`: equal-mass bins of predicted probability against the observed rate (the
  calibration curve), with the expected calibration error computed on the same bins.
- `population_stability_index`: how far a feature's current distribution moved from its
  training distribution. Bins are the training deciles (so each holds ~10 % of the reference),
  missing values form a bin of their own, and empty bins get a small floor so the index stays
  finite. Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 a shift worth acting on.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .metrics import ECE_BINS, expected_calibration_error

PSI_BINS = 10
PSI_FLOOR = 1e-4


def reliability(
    *, probability: np.ndarray, outcome: np.ndarray, bins: int = ECE_BINS
) -> dict[str, object]:
    """{"bins": [{mean_predicted, observed_rate, n}], "ece", "n"} over equal-mass bins."""
    p = np.asarray(probability, dtype="float64")
    y = np.asarray(outcome, dtype="float64")
    if len(p) == 0:
        return {"bins": [], "ece": None, "n": 0}
    order = np.argsort(p, kind="stable")
    rows = [
        {
            "mean_predicted": float(p[chunk].mean()),
            "observed_rate": float(y[chunk].mean()),
            "n": int(len(chunk)),
        }
        for chunk in np.array_split(order, min(bins, len(p)))
    ]
    ece = expected_calibration_error(labels=y, probability=p, bins=bins)
    return {"bins": rows, "ece": ece, "n": int(len(p))}


def population_stability_index(
    *, reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS
) -> float | None:
    """PSI of `current` against `reference` (both 1-d, NaN = missing); None without data."""
    ref = np.asarray(reference, dtype="float64")
    cur = np.asarray(current, dtype="float64")
    if len(ref) == 0 or len(cur) == 0:
        return None
    edges = _decile_edges(ref[~np.isnan(ref)], bins)
    expected = _shares(ref, edges)
    actual = _shares(cur, edges)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def feature_drift(
    *, reference: pd.DataFrame, current: pd.DataFrame, codes: list[str] | None = None
) -> Mapping[str, float | None]:
    """PSI per feature code present in both frames."""
    codes = codes or [code for code in reference.columns if code in current.columns]
    return {
        code: population_stability_index(
            reference=reference[code].to_numpy(dtype="float64"),
            current=current[code].to_numpy(dtype="float64"),
        )
        for code in codes
    }


def _decile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    if len(values) == 0:
        return np.array([], dtype="float64")
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    return edges


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of values per bin: (-inf, e1], (e1, e2], ..., (ek, inf), then missing."""
    missing = np.isnan(values)
    positions = np.searchsorted(edges, values[~missing], side="left")
    counts = np.bincount(positions, minlength=len(edges) + 1).astype("float64")
    counts = np.append(counts, missing.sum())
    shares = counts / max(len(values), 1)
    return np.maximum(shares, PSI_FLOOR)
