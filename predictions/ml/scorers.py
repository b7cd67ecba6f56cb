"""Scorers: map a feature array to a margin and to exact additive contributions.

Three kinds share one shape so that a candidate of any kind can be calibrated, explained,
saved and offered: gradient-boosted trees (XGBoost), regularized logistic baselines, and the
BG/NBD "probability of no purchase" baseline.
Inputs are float arrays whose columns are a bundle's feature codes, in order.
Contributions have one column per feature plus the base value last (XGBoost's layout), and
each row sums to the margin.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from math import factorial
from typing import Any

import numpy as np
import xgboost as xgb

from . import bgnbd
from .contracts import BoosterParams
from .logistic import fit_logistic

XGBOOST = "xgboost"
LINEAR = "linear"
BGNBD = "bgnbd"
# Margins are log-odds of probabilities kept this far from 0 and 1.
PROBABILITY_EPS = 1e-9


def booster_settings(params: BoosterParams, *, seed: int, **objective: Any) -> dict[str, Any]:
    """XGBoost training parameters: histogram trees, seeded, on every core unless told."""
    return {
        "tree_method": "hist",
        "max_depth": params.max_depth,
        "eta": params.learning_rate,
        "min_child_weight": params.min_child_weight,
        "subsample": params.subsample,
        "colsample_bytree": params.colsample_bytree,
        "lambda": params.reg_lambda,
        "max_bin": params.max_bin,
        "nthread": params.n_jobs or os.cpu_count() or 1,
        "seed": seed,
        **objective,
    }


def training_matrix(
    *,
    params: BoosterParams,
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    reference: xgb.DMatrix | None = None,
) -> xgb.DMatrix:
    """A histogram-binned matrix; validation matrices take the training bins as reference.

    Building it is the costly part of small fits, so bootstrap replicas reuse the training
    matrix and only swap its weights (`DMatrix.set_weight`).
    """
    return xgb.QuantileDMatrix(x, label=y, weight=weights, ref=reference, max_bin=params.max_bin)


def fit_booster(
    *,
    params: BoosterParams,
    settings: dict[str, Any],
    train: xgb.DMatrix,
    valid: xgb.DMatrix | None,
    rounds: int | None = None,
) -> xgb.Booster:
    """Train with early stopping on `valid` (or exactly `rounds` rounds without it).

    The returned booster holds only the trees up to the best validation round, so that
    predict, pred_contribs and a saved file all describe the same model.
    """
    if valid is None:
        return xgb.train(settings, train, num_boost_round=rounds or params.num_boost_round)
    booster = xgb.train(
        settings,
        train,
        num_boost_round=params.num_boost_round,
        evals=[(valid, "valid")],
        early_stopping_rounds=params.early_stopping_rounds,
        verbose_eval=False,
    )
    return booster[: booster.best_iteration + 1]


@dataclass(frozen=True)
class TreeScorer:
    """An XGBoost booster; margin and TreeSHAP contributions come from XGBoost itself."""

    booster: xgb.Booster
    kind: str = XGBOOST

    def margin(self, x: np.ndarray) -> np.ndarray:
        return self.booster.inplace_predict(x, predict_type="margin").astype("float64")

    def contributions(self, x: np.ndarray) -> np.ndarray:
        return self.booster.predict(xgb.DMatrix(x), pred_contribs=True).astype("float64")


@dataclass(frozen=True)
class LinearScorer:
    """Standardized logistic regression on a few columns, stored as plain numbers.

    Column j of the input enters as z_j = (t(x_j) - mean_j) / scale_j, where t is the signed
    log1p for count and money columns and NaN is first replaced by `fill_j`. Contribution of
    column j is coef_j * z_j (its effect relative to the training mean, the exact SHAP value of
    a linear model with independent features); the base value is the intercept.
    """

    n_features: int
    columns: tuple[int, ...]
    signed_log: tuple[bool, ...]
    fill: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    kind: str = LINEAR

    def standardized(self, x: np.ndarray) -> np.ndarray:
        raw = np.asarray(x, dtype="float64")[:, list(self.columns)]
        raw = np.where(np.isnan(raw), np.asarray(self.fill), raw)
        logged = np.sign(raw) * np.log1p(np.abs(raw))
        values = np.where(np.asarray(self.signed_log), logged, raw)
        return (values - np.asarray(self.mean)) / np.asarray(self.scale)

    def margin(self, x: np.ndarray) -> np.ndarray:
        return self.standardized(x) @ np.asarray(self.coef) + self.intercept

    def contributions(self, x: np.ndarray) -> np.ndarray:
        z = self.standardized(x)
        out = np.zeros((len(z), self.n_features + 1))
        out[:, list(self.columns)] = z * np.asarray(self.coef)
        out[:, -1] = self.intercept
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "n_features": self.n_features,
            "columns": list(self.columns),
            "signed_log": list(self.signed_log),
            "fill": list(self.fill),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": list(self.coef),
            "intercept": self.intercept,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinearScorer:
        return cls(
            n_features=int(data["n_features"]),
            columns=tuple(int(v) for v in data["columns"]),
            signed_log=tuple(bool(v) for v in data["signed_log"]),
            fill=tuple(float(v) for v in data["fill"]),
            mean=tuple(float(v) for v in data["mean"]),
            scale=tuple(float(v) for v in data["scale"]),
            coef=tuple(float(v) for v in data["coef"]),
            intercept=float(data["intercept"]),
        )


def fit_linear(
    *,
    x: np.ndarray,
    y: np.ndarray,
    columns: tuple[int, ...],
    signed_log: tuple[bool, ...],
    fill: tuple[float, ...],
    regularization_c: float,
    weights: np.ndarray | None = None,
) -> LinearScorer:
    """Fit an L2-regularized logistic regression on standardized, transformed columns.

    `regularization_c` is scikit-learn's C: the penalty is |coef|^2 / (2C) beside the summed
    (weighted) log loss, so it weakens as rows grow.
    """
    draft = LinearScorer(
        n_features=x.shape[1],
        columns=columns,
        signed_log=signed_log,
        fill=fill,
        mean=(0.0,) * len(columns),
        scale=(1.0,) * len(columns),
        coef=(0.0,) * len(columns),
        intercept=0.0,
    )
    values = draft.standardized(x)
    w = np.ones(len(values)) if weights is None else np.asarray(weights, dtype="float64")
    mean = np.average(values, axis=0, weights=w)
    scale = np.sqrt(np.average((values - mean) ** 2, axis=0, weights=w))
    scale = np.where(scale > 0, scale, 1.0)
    coef, intercept = fit_logistic(
        x=(values - mean) / scale, y=y, weights=w, penalty=1.0 / regularization_c
    )
    return LinearScorer(
        n_features=x.shape[1],
        columns=columns,
        signed_log=signed_log,
        fill=fill,
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        coef=tuple(float(v) for v in coef),
        intercept=intercept,
    )


@dataclass(frozen=True)
class BgNbdScorer:
    """BG/NBD's probability of no purchase over the horizon, as a margin (its log-odds).

    `columns` are the positions of repeat purchase days (x), days since the first purchase
    (T) and days since the last purchase (T - t_x) in the feature array; a member without a
    purchase in the lookback counts as one purchase `fill_days` ago. Contributions are the
    exact Shapley values of those three inputs against the `reference` member (the training
    rows' medians), found by evaluating all eight subsets; the base value is the reference's
    margin.
    """

    n_features: int
    columns: tuple[int, int, int]
    params: bgnbd.BgNbdParams
    horizon_days: float
    fill_days: float
    reference: tuple[float, float, float]
    kind: str = BGNBD

    def summaries(self, x: np.ndarray) -> np.ndarray:
        """(n, 3): repeat purchases, days since the first purchase, days since the last."""
        raw = np.asarray(x, dtype="float64")[:, list(self.columns)]
        missing = np.isnan(raw[:, 1]) | np.isnan(raw[:, 2])
        raw[missing] = (0.0, self.fill_days, self.fill_days)
        raw[:, 0] = np.nan_to_num(raw[:, 0], nan=0.0)
        return raw

    def margin(self, x: np.ndarray) -> np.ndarray:
        return self._margin_of(self.summaries(x))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        values = self.summaries(x)
        reference = np.broadcast_to(np.asarray(self.reference), values.shape)
        out = np.zeros((len(values), self.n_features + 1))
        inputs = len(self.columns)
        for subset in range(2**inputs):
            chosen = [(subset >> j) & 1 == 1 for j in range(inputs)]
            mixed = np.where(np.asarray(chosen), values, reference)
            value = self._margin_of(mixed)
            size = sum(chosen)
            for j in range(inputs):
                # Shapley weight of adding input j to the subset without it: |S|!(k-|S|-1)!/k!
                if chosen[j]:
                    weight = _shapley_weight(size - 1, inputs)
                    out[:, self.columns[j]] += weight * value
                else:
                    weight = _shapley_weight(size, inputs)
                    out[:, self.columns[j]] -= weight * value
        out[:, -1] = self._margin_of(np.asarray([self.reference]))[0]
        return out

    def _margin_of(self, summaries: np.ndarray) -> np.ndarray:
        repeats, first, last = summaries[:, 0], summaries[:, 1], summaries[:, 2]
        probability = bgnbd.probability_no_purchase(
            self.params,
            repeat_purchases=repeats,
            last_purchase_time=np.clip(first - last, 0.0, None),
            observed_time=np.maximum(first, 0.0),
            horizon_days=self.horizon_days,
        )
        p = np.clip(probability, PROBABILITY_EPS, 1 - PROBABILITY_EPS)
        return np.log(p) - np.log1p(-p)

    def to_json(self) -> dict[str, Any]:
        return {
            "n_features": self.n_features,
            "columns": list(self.columns),
            "params": self.params.to_json(),
            "horizon_days": self.horizon_days,
            "fill_days": self.fill_days,
            "reference": list(self.reference),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BgNbdScorer:
        return cls(
            n_features=int(data["n_features"]),
            columns=tuple(int(v) for v in data["columns"]),
            params=bgnbd.BgNbdParams.from_json(data["params"]),
            horizon_days=float(data["horizon_days"]),
            fill_days=float(data["fill_days"]),
            reference=tuple(float(v) for v in data["reference"]),
        )


def fit_bgnbd_scorer(
    *,
    x: np.ndarray,
    columns: tuple[int, int, int],
    horizon_days: float,
    fill_days: float,
) -> BgNbdScorer:
    """BG/NBD fitted by maximum likelihood on the rows' purchase summaries (no labels)."""
    draft = BgNbdScorer(
        n_features=x.shape[1],
        columns=columns,
        params=bgnbd.BgNbdParams(r=1.0, alpha=1.0, a=1.0, b=1.0),
        horizon_days=horizon_days,
        fill_days=fill_days,
        reference=(0.0, 0.0, 0.0),
    )
    values = draft.summaries(x)
    params = bgnbd.fit_bgnbd(
        repeat_purchases=values[:, 0],
        last_purchase_time=np.clip(values[:, 1] - values[:, 2], 0.0, None),
        observed_time=values[:, 1],
    )
    reference = tuple(float(v) for v in np.median(values, axis=0))
    return BgNbdScorer(
        n_features=x.shape[1],
        columns=columns,
        params=params,
        horizon_days=horizon_days,
        fill_days=fill_days,
        reference=reference,
    )


def _shapley_weight(others: int, inputs: int) -> float:
    """|S|! (k - |S| - 1)! / k! for a subset S of `others` inputs out of k."""
    return factorial(others) * factorial(inputs - others - 1) / factorial(inputs)
