"""The true churn probability of a synthetic member, given its habits and its history.

The stored truth is the probability of churning (no purchase in [cutoff, cutoff + horizon))
given the member's latent habits and their whole history before the cutoff (everything a model
could see, plus the habits), so `churned` is one realization of exactly it. With `a` the
member's last activity before the cutoff `C` (or `active_from` when none; they were in the
programme then), `h` the horizon, `lam` the hazard, `K(a, y)` the expected count of purchases,
sessions and support contacts over [a, y) and `M(y)` the chance that no mailing still unopened
at `a` gets opened in (a, y):

    L(y) = exp(-lam * (y - a) - K(a, y)) * M(y)     # in until y and silent over (a, y)
    B    = integral from a to C of lam * L(y) dy     # left, silently, before the cutoff
    A    = L(C)                                      # still in at the cutoff, silent since a
    S    = exp(-lam * h - R(C, C + h)) + integral from 0 to h of lam * exp(-lam * t - R(C, C + t))
           dt                                        # no purchase in the horizon if still in
    P(churn) = (B + A * S) / (A + B)

where `R` is the expected purchase count. The integrals are taken numerically on grids on which
the log of the integrand is piecewise almost linear (nodes packed after each mailing, where the
open delay makes it curve), integrating the exponential of the linear interpolation exactly
(within 1e-4 of a 50 times finer grid).

The truth does not condition on the leave time itself: nothing a model reads could reveal it,
and a truth of exactly 1 for members gone but not yet visibly so would be unreachable by any
model. A member who left long before the cutoff is still stored and scored (a model's training
population, members who bought in the lookback, includes such members at past cutoffs): their
long silence makes B dominate and their probability near 1.
"""

import numpy as np
import pandas as pd

from loyalty.services.synthetic.events import (
    MAIL_OPEN_DELAY_DAYS,
    MAILING_INTERVAL_DAYS,
    Activity,
    expected_count,
    mailing_days,
)
from loyalty.services.synthetic.members import SyntheticSpec

# Past this many mean delays after a mailing, the chance it is still to be opened is below
# e^-40, under the precision of a float: it is taken as zero.
MAIL_OPEN_SETTLED_DELAYS = 40.0
# Stored probabilities stay strictly inside (0, 1).
PROBABILITY_FLOOR = 1e-6
# Nodes of the integral over the leave time, in days after each mailing: dense where the open
# delay makes the log of the integrand bend, every two days where it is nearly linear.
MAILING_GRID_OFFSETS = np.concatenate(
    [
        [0.0, 0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0],
        np.arange(6.0, MAILING_INTERVAL_DAYS, 2.0),
    ]
)
HORIZON_GRID_STEPS = 128
# Below this change of the log integrand over a step, (e^d - 1) / d is taken as 1 + d / 2: the
# quotient would lose its precision.
FLAT_RISE = 1e-8
# Members per block of the posterior's (members x nodes) arrays: bounds their memory.
POSTERIOR_BLOCK = 2_000


def true_churn(
    spec: SyntheticSpec, latent: pd.DataFrame, activity: Activity
) -> tuple[np.ndarray, np.ndarray]:
    """(churn probability given the habits and the history before the cutoff, churned).

    `churned` is what happened: no purchase in [cutoff, cutoff + horizon). The probability is
    the formula in the module's docstring."""
    window = float(spec.days)
    size = len(latent)
    returned = activity.purchase_owner[activity.purchase_t >= window]
    churned = ~np.isin(np.arange(size), returned)

    last = latent["active_from"].to_numpy().copy()
    opened_before = np.zeros((size, len(mailing_days(window))), dtype=bool)
    for owner, t in (
        (activity.purchase_owner, activity.purchase_t),
        (activity.session_owner, activity.session_t),
        (activity.support_owner, activity.support_t),
        (activity.mail_owner, activity.mail_t),
    ):
        before = t < window
        np.maximum.at(last, owner[before], t[before])
    before = activity.mail_t < window
    opened_before[activity.mail_owner[before], activity.mail_index[before]] = True

    nodes = _silence_nodes(window)
    probability = np.empty(size)
    for lo in range(0, size, POSTERIOR_BLOCK):
        block = slice(lo, lo + POSTERIOR_BLOCK)
        left, stayed = _silence_masses(
            latent.iloc[block], last[block], opened_before[block], nodes, window
        )
        quiet = _no_purchase_if_in(latent.iloc[block], window, spec.horizon_days)
        with np.errstate(invalid="ignore", divide="ignore"):
            still_in = np.where(stayed > 0, stayed / (stayed + left), 0.0)
        probability[block] = 1.0 - still_in * (1.0 - quiet)
    probability = np.clip(probability, PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)
    return probability, churned


def _silence_nodes(window: float) -> np.ndarray:
    mailings = mailing_days(window)
    nodes = (mailings[:, None] + MAILING_GRID_OFFSETS[None, :]).ravel()
    return np.unique(np.r_[nodes[nodes < window], window])


def _silence_masses(
    latent: pd.DataFrame,
    last: np.ndarray,
    opened_before: np.ndarray,
    nodes: np.ndarray,
    window: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(B, A) of the docstring: left silently before the cutoff, in at it and silent since."""
    hazard = latent["hazard"].to_numpy()[:, None]
    rate = latent["rate"].to_numpy()[:, None]
    trend = latent["trend"].to_numpy()[:, None]
    active_from = latent["active_from"].to_numpy()
    a = last[:, None]
    y = np.clip(nodes[None, :], a, window)
    # Purchases and sessions share the trend; support contacts and leaving are constant rates.
    per_purchase = 1.0 + latent["sessions_per_purchase"].to_numpy()[:, None]
    constant = hazard + latent["support_rate"].to_numpy()[:, None]
    log_l = -constant * (y - a) - per_purchase * expected_count(rate, trend, window, a, y)
    # A mailing m received by then and not opened by `a` stays unopened over (a, y) with
    # probability (1 - p + p e^-(y - m)) / (1 - p + p e^-(a - m)) (delays in units of their
    # mean). That is 1 where y = a, so at every node up to m (where y is a, or m >= y >= a),
    # and 1 - p over the second factor once e^-(y - m) vanishes: the exact form is needed only
    # at the nodes of the first MAIL_OPEN_SETTLED_DELAYS mean delays after the mailing.
    p = latent["mail_open"].to_numpy()
    days = mailing_days(window)
    settled_from = np.searchsorted(
        nodes, days + MAIL_OPEN_SETTLED_DELAYS * MAIL_OPEN_DELAY_DAYS, side="right"
    )
    settled_terms = np.zeros((len(last), len(days) + 1))
    for index, day in enumerate(days):
        pending = (day >= active_from) & ~opened_before[:, index]
        unopened_by_a = np.log1p(p * np.expm1(-np.maximum(last - day, 0.0) / MAIL_OPEN_DELAY_DAYS))
        settled_terms[:, index + 1] = pending * (np.log1p(-p) - unopened_by_a)
        first = np.searchsorted(nodes, day, side="right")
        recent = y[:, first : settled_from[index]]
        unopened_by_y = np.log1p(p[:, None] * np.expm1(-(recent - day) / MAIL_OPEN_DELAY_DAYS))
        log_l[:, first : settled_from[index]] += pending[:, None] * (
            unopened_by_y - unopened_by_a[:, None]
        )
    # Settled mailings add their constant from their settling node on; mailings are in order.
    settled_by_node = np.searchsorted(settled_from, np.arange(len(nodes)), side="right")
    log_l += np.cumsum(settled_terms, axis=1)[:, settled_by_node]
    left = hazard[:, 0] * _integral_of_exp(y, log_l)
    return left, np.exp(log_l[:, -1])


def _no_purchase_if_in(latent: pd.DataFrame, window: float, horizon_days: int) -> np.ndarray:
    """S of the docstring: no purchase in the horizon for a member still in at the cutoff."""
    hazard = latent["hazard"].to_numpy()[:, None]
    t = np.linspace(0.0, float(horizon_days), HORIZON_GRID_STEPS + 1)[None, :]
    rate = latent["rate"].to_numpy()[:, None]
    trend = latent["trend"].to_numpy()[:, None]
    log_s = -hazard * t - expected_count(rate, trend, window, window, window + t)
    t = np.broadcast_to(t, log_s.shape)
    return np.exp(log_s[:, -1]) + hazard[:, 0] * _integral_of_exp(t, log_s)


def _integral_of_exp(x: np.ndarray, log_f: np.ndarray) -> np.ndarray:
    """Row-wise integral of exp(log_f) over x, log_f linear between nodes (exact for that)."""
    width = np.diff(x, axis=1)
    rise = np.diff(log_f, axis=1)
    small = np.abs(rise) < FLAT_RISE
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_factor = np.where(small, 1.0 + rise / 2, np.expm1(rise) / np.where(small, 1.0, rise))
    return (width * np.exp(log_f[:, :-1]) * mean_factor).sum(axis=1)
