"""Split-conformal prediction sets: Mondrian (class-conditional) for churn, LAC for actions.

Hand-written in a few lines rather than a dependency: both need only the finite-sample
quantile below. Guarantee (for exchangeable calibration and test rows): the true label is in
the set with probability at least the nominal level; Mondrian sets promise that within each
true class. Under a time shift between calibration and scoring the guarantee is approximate,
which is why the coverage measured out of time is reported beside the nominal level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


def conformal_quantile(scores: np.ndarray, *, coverage: float) -> float:
    """The ceil((n + 1) * coverage)-th smallest score; +inf when that exceeds n.

    A new score from the same distribution is <= this value with probability >= coverage.
    """
    scores = np.sort(np.asarray(scores, dtype="float64"))
    rank = math.ceil((len(scores) + 1) * coverage)
    return float(scores[rank - 1]) if rank <= len(scores) else math.inf


@dataclass(frozen=True)
class MondrianBinary:
    """Class-conditional conformal sets over (stay, churn), thresholds on the margin.

    Nonconformity of "churn" is -margin, of "stay" +margin; each class has its own threshold
    from its own calibration rows. Churn is in the set when margin >= churn_from, stay when
    margin <= stay_until. Because calibration is monotone in the margin, sets computed on the
    margin are the same as on the calibrated probability, and do not depend on the calibrator.
    A set may hold both outcomes (the model cannot decide) or none (the case is unlike the
    calibration rows of either class).
    """

    coverage: float
    churn_from: float
    stay_until: float

    def sets(self, margin: np.ndarray) -> np.ndarray:
        margin = np.asarray(margin, dtype="float64")
        return np.stack([margin <= self.stay_until, margin >= self.churn_from], axis=1)

    def to_json(self) -> dict[str, Any]:
        return {
            "coverage": self.coverage,
            "churn_from": _finite_or_none(self.churn_from),
            "stay_until": _finite_or_none(self.stay_until),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MondrianBinary:
        churn_from = data["churn_from"]
        stay_until = data["stay_until"]
        return cls(
            coverage=float(data["coverage"]),
            churn_from=-math.inf if churn_from is None else float(churn_from),
            stay_until=math.inf if stay_until is None else float(stay_until),
        )


def fit_mondrian_binary(
    *, margin: np.ndarray, labels: np.ndarray, coverage: float
) -> MondrianBinary:
    margin = np.asarray(margin, dtype="float64")
    labels = np.asarray(labels, dtype="int64")
    churn_score = conformal_quantile(-margin[labels == 1], coverage=coverage)
    stay_score = conformal_quantile(margin[labels == 0], coverage=coverage)
    return MondrianBinary(coverage=coverage, churn_from=-churn_score, stay_until=stay_score)


@dataclass(frozen=True)
class LacSets:
    """Least-ambiguous set-valued classifier: keep every class with p >= 1 - threshold.

    Score of a calibration row: 1 - p(true class). LAC gives the smallest average sets at the
    nominal coverage; when no class clears the bar the set holds the most probable class (never
    empty), which can only raise coverage. A class with probability exactly 0 (never trained
    on) is never in a set.
    """

    coverage: float
    threshold: float

    def sets(self, probabilities: np.ndarray) -> np.ndarray:
        probs = np.asarray(probabilities, dtype="float64")
        kept = (probs >= 1.0 - self.threshold) & (probs > 0)
        kept[np.arange(len(probs)), probs.argmax(axis=1)] = True
        return kept


def fit_lac(*, probabilities: np.ndarray, labels: np.ndarray, coverage: float) -> LacSets:
    probs = np.asarray(probabilities, dtype="float64")
    labels = np.asarray(labels, dtype="int64")
    scores = 1.0 - probs[np.arange(len(labels)), labels]
    return LacSets(
        coverage=coverage, threshold=min(conformal_quantile(scores, coverage=coverage), 1.0)
    )


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
