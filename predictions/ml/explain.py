"""SHAP explanations: exact TreeSHAP from XGBoost, top-k per row, global importance.

All contributions are in the model's margin space (log-odds; per-class logits for the
multiclass model). A calibrated churn probability is a monotone map of that margin, so the
contributions still say which features pushed the risk up or down and by how much in log-odds;
they do not add up to the calibrated probability, and are not meant to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from .contracts import Explanation


def tree_contributions(booster: xgb.Booster, x: np.ndarray | xgb.DMatrix) -> np.ndarray:
    """Exact TreeSHAP via `pred_contribs`: (n, F + 1), or (n, K, F + 1) for K classes.

    The last column is the base value (expected margin); each row (per class) sums to the
    margin `booster.predict(..., output_margin=True)` gives, up to float32 rounding.
    """
    matrix = x if isinstance(x, xgb.DMatrix) else xgb.DMatrix(x)
    return booster.predict(matrix, pred_contribs=True).astype("float64")


def top_contributions(
    *,
    contributions: np.ndarray,
    values: np.ndarray,
    feature_codes: Sequence[str],
    k: int,
) -> Explanation:
    """The k largest |contributions| per row, sorted, with the base value and the remainder.

    `contributions` is (n, F + 1) with the base value last; `values` the (n, F) feature values
    the model saw. Vectorized: argpartition picks the top k per row, a sort of those k orders
    them. base + sum(top) + remainder == margin for every row (remainder is computed so).
    """
    contributions = np.asarray(contributions, dtype="float64")
    n, width = contributions.shape
    features = width - 1
    k = max(0, min(k, features))
    per_feature = contributions[:, :features]
    base = contributions[:, -1]
    margin = contributions.sum(axis=1)
    if k == 0 or n == 0:
        empty_i = np.zeros((n, 0), dtype="int64")
        empty_f = np.zeros((n, 0))
        return Explanation(
            tuple(feature_codes), base, margin, empty_i, empty_f, empty_f, margin - base
        )
    size = np.abs(per_feature)
    if k < features:
        picked = np.argpartition(-size, k - 1, axis=1)[:, :k]
    else:
        picked = np.tile(np.arange(features), (n, 1))
    order = np.argsort(-np.take_along_axis(size, picked, axis=1), axis=1, kind="stable")
    index = np.take_along_axis(picked, order, axis=1)
    top = np.take_along_axis(per_feature, index, axis=1)
    shown = np.take_along_axis(np.asarray(values, dtype="float64"), index, axis=1)
    remainder = margin - base - top.sum(axis=1)
    return Explanation(
        feature_codes=tuple(feature_codes),
        base_value=base,
        margin=margin,
        top_index=index,
        top_value=shown,
        top_contribution=top,
        remainder=remainder,
    )


def global_importance(*, contributions: np.ndarray, feature_codes: Sequence[str]) -> pd.Series:
    """Mean |SHAP| per feature over rows (and classes), largest first; base value excluded."""
    contributions = np.asarray(contributions, dtype="float64")
    per_feature = contributions[..., :-1]
    axes = tuple(range(per_feature.ndim - 1))
    importance = (
        np.abs(per_feature).mean(axis=axes) if len(per_feature) else np.zeros(len(feature_codes))
    )
    series = pd.Series(importance, index=list(feature_codes), name="mean_abs_shap")
    return series.sort_values(ascending=False, kind="stable")


def sampled_importance(
    *, scorer: Any, x: np.ndarray, feature_codes: Sequence[str], sample_rows: int, seed: int
) -> dict[str, float]:
    """`global_importance` of a scorer's contributions on at most `sample_rows` rows of `x`
    (a seeded sample), rounded for a JSON report."""
    if len(x) > sample_rows:
        pick = np.random.default_rng(seed).choice(len(x), sample_rows, replace=False)
        x = x[np.sort(pick)]
    importance = global_importance(
        contributions=scorer.contributions(x), feature_codes=feature_codes
    )
    return {code: round(float(value), 6) for code, value in importance.items()}
