"""From interval and conformal set to the one confidence number that routing compares.

Also the bootstrap interval on a probability, because it is what feeds that number for churn.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

LOGIT_CLIP = 1e-9


def probability_interval(
    *, probability: np.ndarray, replicas: np.ndarray, coverage: float
) -> tuple[np.ndarray, np.ndarray]:
    """A bootstrap interval around `probability` with nominal `coverage`.

    `replicas` is (B, n): the calibrated probabilities of B models, each refit (trees or
    logistic, and its calibrator) on a random half of the members, which varies like a
    bootstrap resample of all of them (see `churn._finish_candidate`). In logit
    space the interval is logit(p) +/- t * sd, with sd the replicas' standard deviation and t
    the Student quantile with B - 1 degrees of freedom (few replicas, so not the normal z).

    Meaning: with about `coverage` probability, the calibrated churn probability that this
    model type would give the member, had it been trained on another sample of members from
    the same history, lies in the interval. It measures estimation uncertainty (thin data,
    unusual members get wide intervals); the randomness of the outcome itself is what the
    conformal label set is for. Under time shift it is approximate, like any interval.
    """
    replicas = np.asarray(replicas, dtype="float64")
    if replicas.shape[0] < 2:
        raise ValueError("a bootstrap interval needs at least two replicas")
    centre = _logit(np.asarray(probability, dtype="float64"))
    spread = _logit(replicas).std(axis=0, ddof=1)
    t = stats.t.ppf(0.5 + coverage / 2, df=replicas.shape[0] - 1)
    return _expit(centre - t * spread), _expit(centre + t * spread)


def confidence_from(
    *,
    set_sizes: np.ndarray,
    n_labels: int,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
    answer_in_set: np.ndarray | None = None,
) -> np.ndarray:
    """The routing confidence in [0, 1]: how settled the model's answer is for each row.

        confidence = (1 - (high - low)) * (1 / set size)      [0 if the answer is not in the set]

    - 1 - interval width: a churn probability known to within +/-0.02 scores 0.96; one that
      could be anywhere from 0.1 to 0.7 scores 0.4. Without an interval (next action) this
      factor is 1.
    - 1 / set size: a conformal set of one outcome means the other outcomes are ruled out at
      the configured coverage (factor 1); two outcomes that cannot be told apart halve it,
      three divide it by three. An empty set (a case unlike any calibration case, possible
      with Mondrian sets) counts as all `n_labels` outcomes: nothing is ruled out with support.
    - `answer_in_set`: when the answer offered (the recommended eligible action) is one the
      conformal predictor rules out, the confidence is 0: the model does not stand behind it.

    Examples: churn interval [0.10, 0.18] with set {stay}: 0.92; same interval with set
    {stay, churn}: 0.46. A next action alone in its set: 1.0; in a set of three: 0.33.
    Routing compares this number with the admin's thresholds (auto-approve at or above,
    expert below).
    """
    sizes = np.asarray(set_sizes, dtype="float64")
    sizes = np.where(sizes == 0, float(n_labels), sizes)
    confidence = 1.0 / sizes
    if low is not None and high is not None:
        width = np.clip(np.asarray(high, dtype="float64") - np.asarray(low, dtype="float64"), 0, 1)
        confidence = confidence * (1.0 - width)
    if answer_in_set is not None:
        confidence = np.where(np.asarray(answer_in_set, dtype=bool), confidence, 0.0)
    return np.clip(confidence, 0.0, 1.0)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, LOGIT_CLIP, 1 - LOGIT_CLIP)
    return np.log(p) - np.log1p(-p)


def _expit(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))
