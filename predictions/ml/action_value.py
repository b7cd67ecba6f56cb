"""What an action is worth for a member, and which action to recommend.

Expected value of action a for member m = P(churn of m) x retention_gain(a) x value(m) - cost(a):
the spend an action is expected to keep, less what it costs. `retention_gain` is a prior set by
an admin until the control groups have measured the action; `value` is the member's spend over
the last year. Nothing here reads a database: the callers hand over numbers and arrays.

Two rankings pick the recommendation among the actions a member is eligible for:
- propensity: the action the model finds likeliest (what scoring stores);
- expected value: the action worth most; when none is worth more than nothing, the baseline
  action ("No action") wins, or no action at all when the catalog has no baseline.
"""

from dataclasses import dataclass

import numpy as np

PROPENSITY = "propensity"
EXPECTED_VALUE = "expected_value"
RANKINGS = (PROPENSITY, EXPECTED_VALUE)
NO_CHOICE = -1


def expected_value(*, churn_probability: float, gain: float, value: float, cost: float) -> float:
    return churn_probability * gain * value - cost


def expected_values(
    *, churn_probability: np.ndarray, value: np.ndarray, gains: np.ndarray, costs: np.ndarray
) -> np.ndarray:
    """(n members, k actions) expected values; a member without a churn probability (NaN)
    gets NaN throughout."""
    risk = np.asarray(churn_probability, dtype="float64")[:, None]
    worth = np.asarray(value, dtype="float64")[:, None]
    return (
        risk * np.asarray(gains, dtype="float64")[None, :] * worth
        - np.asarray(costs, dtype="float64")[None, :]
    )


@dataclass(frozen=True)
class Recommendations:
    """Per member: the column of the recommended action (NO_CHOICE: none) and its expected
    value (NaN where it cannot be weighed)."""

    choice: np.ndarray
    expected_value: np.ndarray


def recommend(
    *,
    ranking: str,
    propensities: np.ndarray,
    eligible: np.ndarray,
    values: np.ndarray,
    baseline: int | None,
) -> Recommendations:
    """The recommendation of each member (rows) among actions (columns).

    `propensities` and `values` (expected values, NaN where unknown) are (n, k); `eligible`
    (n, k) booleans; `baseline` the column of the "no action" action, if the catalog has one.
    By expected value, a member whose values are unknown (no churn score) falls back to
    propensity, so that a missing score never hides the model's answer.
    """
    if ranking not in RANKINGS:
        raise ValueError(f"unknown ranking {ranking!r}; expected one of {RANKINGS}")
    n = len(eligible)
    rows = np.arange(n)
    by_propensity = _best(np.where(eligible, propensities, -np.inf), positive_only=True)
    choice = by_propensity
    if ranking == EXPECTED_VALUE:
        known = ~np.isnan(values).all(axis=1) if values.size else np.zeros(n, dtype=bool)
        worth = np.where(eligible & ~np.isnan(values), values, -np.inf)
        by_value = _best(worth, positive_only=False)
        best_worth = np.where(by_value >= 0, worth[rows, np.maximum(by_value, 0)], -np.inf)
        # Nothing worth more than nothing: leave the member alone, with the baseline action
        # where the catalog has one the member may receive, else with no action at all.
        alone = np.full(n, NO_CHOICE)
        if baseline is not None:
            alone = np.where(eligible[:, baseline], baseline, NO_CHOICE)
        by_value = np.where(best_worth <= 0, alone, by_value)
        choice = np.where(known, by_value, by_propensity)
    chosen_value = np.full(n, np.nan)
    has_choice = choice >= 0
    if values.size:
        chosen_value[has_choice] = values[rows[has_choice], choice[has_choice]]
    return Recommendations(choice=choice, expected_value=chosen_value)


def _best(scores: np.ndarray, *, positive_only: bool) -> np.ndarray:
    """Column of the highest score per row (the first on a tie), NO_CHOICE where the row has no
    finite score (or, with `positive_only`, none above 0)."""
    if scores.shape[1] == 0:
        return np.full(len(scores), NO_CHOICE)
    best = scores.argmax(axis=1)
    top = scores[np.arange(len(scores)), best]
    ok = np.isfinite(top) & ((top > 0) if positive_only else True)
    return np.where(ok, best, NO_CHOICE)
