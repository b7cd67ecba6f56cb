"""The tree + sequence churn ensemble: a two-input logistic stacker and its exact attribution.

The stacker is centred on its fit set, so the sequence share is what the behavior sequence adds
beyond an average member of that set; with exact TreeSHAP of the tree margin,
`ensemble_contributions` gives one "behavior sequence" bar beside the feature bars of the same
waterfall, all adding up to the ensemble margin. Weights are kept non-negative (an input whose
weight comes out negative, as two correlated margins can make it, is dropped and the other
refitted alone), so that "the sequence pushed the risk up" always means a higher sequence
margin. The stacked margin is calibrated like any candidate's (`calibration`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .contracts import SingleClassError
from .logistic import fit_logistic

# Two inputs on thousands of rows: an L2 pull just strong enough to stay finite when the
# validation rows are separable, per row so it does not depend on the split's size.
STACKER_RIDGE_PER_ROW = 1e-4


@dataclass(frozen=True)
class Stacker:
    """Fitted weights of the two margins, the intercept, and the fit set's mean margins."""

    tree_weight: float
    sequence_weight: float
    intercept: float
    tree_mean: float
    sequence_mean: float
    rows: int

    def to_json(self) -> dict[str, Any]:
        return {
            "tree_weight": self.tree_weight,
            "sequence_weight": self.sequence_weight,
            "intercept": self.intercept,
            "tree_mean": self.tree_mean,
            "sequence_mean": self.sequence_mean,
            "rows": self.rows,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stacker:
        return cls(
            tree_weight=float(data["tree_weight"]),
            sequence_weight=float(data["sequence_weight"]),
            intercept=float(data["intercept"]),
            tree_mean=float(data["tree_mean"]),
            sequence_mean=float(data["sequence_mean"]),
            rows=int(data["rows"]),
        )


def fit_stacker(
    *,
    tree_margin: np.ndarray,
    sequence_margin: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
) -> Stacker:
    """Logistic regression of `y` on the two centred margins, weights kept non-negative.

    Pass the validation split's rows: the tree and the GRU were fitted on the training rows,
    so their margins there are optimistic and would overweight the more overfitted model.
    """
    tree = _floats("tree_margin", tree_margin)
    sequence = _floats("sequence_margin", sequence_margin)
    labels = np.asarray(y, dtype="float64")
    if not len(tree) == len(sequence) == len(labels):
        raise ValueError(
            f"lengths differ: tree {len(tree)}, sequence {len(sequence)}, labels {len(labels)}"
        )
    if len(np.unique(labels)) < 2:
        label = "churn" if len(labels) and labels[0] == 1 else "stay"
        raise SingleClassError(split="stacker fit", label=label, rows=len(labels))
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype="float64")
    tree_mean, sequence_mean = _mean(tree, w), _mean(sequence, w)
    centred = np.column_stack([tree - tree_mean, sequence - sequence_mean])
    coef, intercept = _non_negative_logistic(centred, labels, w)
    return Stacker(
        tree_weight=float(coef[0]),
        sequence_weight=float(coef[1]),
        intercept=intercept,
        tree_mean=tree_mean,
        sequence_mean=sequence_mean,
        rows=len(labels),
    )


def stacked_margin(
    *, stacker: Stacker, tree_margin: np.ndarray, sequence_margin: np.ndarray
) -> np.ndarray:
    """The ensemble's log-odds of churn."""
    tree_part = stacker.tree_weight * (_floats("tree_margin", tree_margin) - stacker.tree_mean)
    return (
        stacker.intercept
        + tree_part
        + sequence_share(stacker=stacker, sequence_margin=sequence_margin)
    )


def sequence_share(*, stacker: Stacker, sequence_margin: np.ndarray) -> np.ndarray:
    """The part of the ensemble margin due to the sequence model (0 for a fit-set average)."""
    sequence = _floats("sequence_margin", sequence_margin)
    return stacker.sequence_weight * (sequence - stacker.sequence_mean)


def ensemble_contributions(
    *, stacker: Stacker, tree_contributions: np.ndarray, sequence_margin: np.ndarray
) -> np.ndarray:
    """(n, F + 2): tree SHAP scaled by the tree weight, the sequence share, the base value last.

    `tree_contributions` is the trees' (n, F + 1) SHAP with their base value last
    (`explain.tree_contributions`); every row of the result sums to the ensemble margin of
    that row's tree margin (its SHAP sum) and sequence margin.
    """
    shap = np.asarray(tree_contributions, dtype="float64")
    features, tree_base = shap[:, :-1], shap[:, -1]
    base = stacker.intercept + stacker.tree_weight * (tree_base - stacker.tree_mean)
    share = sequence_share(stacker=stacker, sequence_margin=sequence_margin)
    return np.column_stack([stacker.tree_weight * features, share, base])


def _non_negative_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """Logistic fit on both columns; a column with a negative weight is dropped and refitted."""
    penalty = STACKER_RIDGE_PER_ROW * float(w.sum())
    kept = [0, 1]
    while kept:
        coef, intercept = fit_logistic(x=x[:, kept], y=y, weights=w, penalty=penalty)
        if (coef >= 0).all():
            full = np.zeros(2)
            full[kept] = coef
            return full, intercept
        kept = [column for column, value in zip(kept, coef, strict=True) if value > 0]
    _, intercept = fit_logistic(x=np.zeros((len(y), 1)), y=y, weights=w, penalty=penalty)
    return np.zeros(2), intercept


def _floats(name: str, values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype="float64")
    if array.ndim != 1 or not np.isfinite(array).all():
        raise ValueError(f"{name} must be a 1-d array of finite numbers")
    return array


def _mean(values: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * values) / np.sum(w))
