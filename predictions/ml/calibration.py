"""Probability calibration of a model's margin: sigmoid (Platt) or isotonic, as plain numbers.

A calibrator is fitted on the time-latest training split, which no candidate model was fitted
on, and maps margin (log-odds) to a probability. It is stored as JSON (slope and intercept, or
the isotonic step points), so loading one never executes code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import StratifiedKFold

from .logistic import fit_logistic

SIGMOID = "sigmoid"
ISOTONIC = "isotonic"
AUTO = "auto"
METHODS = (SIGMOID, ISOTONIC)
CALIBRATION_FOLDS = 5
# Platt scaling is a two-parameter fit on thousands of rows: essentially no regularization,
# just enough of an L2 pull on the slope to stay finite when the classes are separable.
SIGMOID_RIDGE = 1e-4
LOG_LOSS_EPS = 1e-15


@dataclass(frozen=True)
class Calibrator:
    """margin -> probability. Sigmoid: expit(slope * margin + intercept). Isotonic: linear
    interpolation between the fitted step points (x ascending), clamped at both ends; its
    probabilities are kept within [1/(n+2), 1 - 1/(n+2)] so that no row is ever called certain.
    `offset` is added to the log-odds of either: a shift of the base rate between the
    calibration window and the scored one (`churn.shift`), 0 when there is none.
    """

    method: str
    slope: float = 1.0
    intercept: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    offset: float = 0.0

    def probability(self, margin: np.ndarray) -> np.ndarray:
        margin = np.asarray(margin, dtype="float64")
        if self.method == SIGMOID:
            return _expit(self.slope * margin + self.intercept + self.offset)
        probability = np.interp(margin, np.asarray(self.x), np.asarray(self.y))
        if self.offset == 0.0:
            return probability
        return _expit(np.log(probability) - np.log1p(-probability) + self.offset)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "slope": self.slope,
            "intercept": self.intercept,
            "x": list(self.x),
            "y": list(self.y),
            "offset": self.offset,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibrator:
        if data["method"] not in METHODS:
            raise ValueError(f"unknown calibration method {data['method']!r}")
        return cls(
            method=data["method"],
            slope=float(data["slope"]),
            intercept=float(data["intercept"]),
            x=tuple(float(v) for v in data["x"]),
            y=tuple(float(v) for v in data["y"]),
            offset=float(data.get("offset", 0.0)),
        )


def fit_calibrator(
    *,
    margin: np.ndarray,
    labels: np.ndarray,
    method: str,
    weights: np.ndarray | None = None,
) -> Calibrator:
    """Fit a sigmoid or isotonic map from margin to P(label = 1)."""
    margin = np.asarray(margin, dtype="float64")
    labels = np.asarray(labels, dtype="int64")
    if method == SIGMOID:
        slope, intercept = _fit_platt(margin, labels, weights)
        return Calibrator(method=SIGMOID, slope=slope, intercept=intercept)
    if method == ISOTONIC:
        n = len(labels) if weights is None else float(np.sum(weights))
        bound = 1.0 / (n + 2)
        model = IsotonicRegression(y_min=bound, y_max=1 - bound, out_of_bounds="clip")
        model.fit(margin, labels, sample_weight=weights)
        return Calibrator(
            method=ISOTONIC,
            x=tuple(float(v) for v in model.X_thresholds_),
            y=tuple(float(v) for v in model.y_thresholds_),
        )
    raise ValueError(f"unknown calibration method {method!r}")


def cross_fitted_probability(
    *, margin: np.ndarray, labels: np.ndarray, method: str, seed: int
) -> np.ndarray:
    """Out-of-fold calibrated probabilities: each row calibrated by a map fitted without it.

    Lets calibrated candidates be compared on the very split that calibrates them without
    rewarding a calibrator for memorizing it.
    """
    margin = np.asarray(margin, dtype="float64")
    labels = np.asarray(labels, dtype="int64")
    folds = min(CALIBRATION_FOLDS, int(np.bincount(labels, minlength=2).min()))
    if folds < 2:
        return fit_calibrator(margin=margin, labels=labels, method=method).probability(margin)
    out = np.empty(len(labels))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit_rows, held_rows in splitter.split(margin.reshape(-1, 1), labels):
        calibrator = fit_calibrator(margin=margin[fit_rows], labels=labels[fit_rows], method=method)
        out[held_rows] = calibrator.probability(margin[held_rows])
    return out


def choose_method(
    *, margin: np.ndarray, labels: np.ndarray, requested: str, seed: int
) -> tuple[str, dict[str, float]]:
    """The calibration method to use, and the cross-fitted log loss of each method tried.

    "auto" tries both and keeps the lower log loss (sigmoid on ties: fewer parameters).
    """
    if requested not in (*METHODS, AUTO):
        raise ValueError(f"unknown calibration method {requested!r}")
    tried = METHODS if requested == AUTO else (requested,)
    losses = {
        method: log_loss_of(
            labels=labels,
            probability=cross_fitted_probability(
                margin=margin, labels=labels, method=method, seed=seed
            ),
        )
        for method in tried
    }
    best = min(tried, key=lambda method: (losses[method], method != SIGMOID))
    return best, losses


def log_loss_of(*, labels: np.ndarray, probability: np.ndarray) -> float:
    p = np.clip(np.asarray(probability, dtype="float64"), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    y = np.asarray(labels, dtype="float64")
    return float(-(y * np.log(p) + (1 - y) * np.log1p(-p)).mean())


def _fit_platt(
    margin: np.ndarray, labels: np.ndarray, weights: np.ndarray | None
) -> tuple[float, float]:
    """Logistic regression of labels on the standardized margin, mapped back to raw margin."""
    w = np.ones(len(margin)) if weights is None else np.asarray(weights, dtype="float64")
    total = w.sum()
    centre = float(np.sum(w * margin) / total)
    spread = float(np.sqrt(np.sum(w * (margin - centre) ** 2) / total)) or 1.0
    coef, intercept = fit_logistic(
        x=(margin - centre) / spread, y=labels, weights=w, penalty=SIGMOID_RIDGE * total
    )
    slope = float(coef[0]) / spread
    return slope, intercept - slope * centre


def _expit(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))
