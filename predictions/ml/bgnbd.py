"""BG/NBD ("buy till you die", Fader, Hardie and Lee 2005): probability alive and expected
purchases from each member's purchase summary, fitted by maximum likelihood.

The model: while alive, a member purchases as a Poisson process of rate lambda ~ Gamma(r, alpha);
after each purchase they drop out for good with probability p ~ Beta(a, b). A member is
summarized at a cutoff by three numbers, all in days:
- `repeat_purchases` (x): purchases after the first one (here: distinct purchase days - 1);
- `last_purchase_time` (t_x): time from the first purchase to the last one;
- `observed_time` (T): time from the first purchase to the cutoff.

The four parameters (r, alpha, a, b) describe the population; they are fitted on members'
summaries at one cutoff, from events before it only, and then give per member P(alive),
P(no purchase in the next h days) and the expected number of purchases in them. The
likelihood and the conditional expectation are equations 6, 10 and 11 of the paper; the
expectation's hypergeometric function is evaluated after Euler's transformation, which keeps
it stable for members with hundreds of purchases.

Written here (about a hundred lines on scipy) rather than taken from `lifetimes` (unmaintained
since 2020, pins old pandas/scipy behaviour) or PyMC-Marketing (brings PyMC and PyTensor, far
beyond the pinned stack) - see bench/churn_eval.py for what it is measured against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

# Parameters are fitted as logs within these bounds: wide enough for any real purchase
# history, narrow enough that the optimizer never reaches overflow.
LOG_BOUND = 12.0
# A nearly flat ridge on the log-parameters keeps the fit finite when a data set barely
# identifies dropout (every member still buying: a and b can run off together).
LOG_RIDGE = 1e-4
MAX_ITERATIONS = 500


@dataclass(frozen=True)
class BgNbdParams:
    """Population parameters: purchase rate ~ Gamma(r, alpha) (alpha in days), dropout
    probability ~ Beta(a, b); `members` is how many summaries they were fitted on."""

    r: float
    alpha: float
    a: float
    b: float
    members: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b, "members": self.members}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BgNbdParams:
        return cls(
            r=float(data["r"]),
            alpha=float(data["alpha"]),
            a=float(data["a"]),
            b=float(data["b"]),
            members=int(data.get("members", 0)),
        )


def log_likelihood(
    params: BgNbdParams,
    *,
    repeat_purchases: np.ndarray,
    last_purchase_time: np.ndarray,
    observed_time: np.ndarray,
) -> np.ndarray:
    """Each member's log-likelihood of their summary (equation 6 of the paper)."""
    x, t_x, t = _arrays(repeat_purchases, last_purchase_time, observed_time)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
    still = -(r + x) * np.log(alpha + t)
    with np.errstate(divide="ignore"):
        dropped = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return common + np.logaddexp(still, dropped)


def fit_bgnbd(
    *,
    repeat_purchases: np.ndarray,
    last_purchase_time: np.ndarray,
    observed_time: np.ndarray,
) -> BgNbdParams:
    """Maximum-likelihood parameters (L-BFGS-B on the log-parameters, time rescaled to a mean
    observed time of 1 so that every parameter starts near 1).

    Raises ValueError without a member whose observed time is positive.
    """
    x, t_x, t = _arrays(repeat_purchases, last_purchase_time, observed_time)
    usable = t > 0
    x, t_x, t = x[usable], t_x[usable], t[usable]
    if len(x) == 0:
        raise ValueError("no member has a first purchase before the cutoff")
    scale = float(t.mean())

    def loss(theta: np.ndarray) -> float:
        r, alpha, a, b = np.exp(theta)
        scaled = BgNbdParams(r=r, alpha=alpha, a=a, b=b)
        values = log_likelihood(
            scaled, repeat_purchases=x, last_purchase_time=t_x / scale, observed_time=t / scale
        )
        return float(-values.mean() + LOG_RIDGE * np.sum(theta**2))

    start = np.log([1.0, 1.0 / max(x.mean(), 1e-3), 1.0, 1.0])
    result = minimize(
        loss,
        start,
        method="L-BFGS-B",
        bounds=[(-LOG_BOUND, LOG_BOUND)] * 4,
        options={"maxiter": MAX_ITERATIONS},
    )
    r, alpha, a, b = np.exp(result.x)
    return BgNbdParams(
        r=float(r), alpha=float(alpha * scale), a=float(a), b=float(b), members=len(x)
    )


def probability_alive(
    params: BgNbdParams,
    *,
    repeat_purchases: np.ndarray,
    last_purchase_time: np.ndarray,
    observed_time: np.ndarray,
) -> np.ndarray:
    """P(still alive at the cutoff | summary): 1 for a member who bought once (BG/NBD lets
    members drop out only right after a repeat purchase)."""
    x, t_x, t = _arrays(repeat_purchases, last_purchase_time, observed_time)
    return 1.0 / (1.0 + _dropout_odds(params, x, t_x, t))


def probability_no_purchase(
    params: BgNbdParams,
    *,
    repeat_purchases: np.ndarray,
    last_purchase_time: np.ndarray,
    observed_time: np.ndarray,
    horizon_days: float,
) -> np.ndarray:
    """P(no purchase in the `horizon_days` after the cutoff | summary), the churn label's
    probability under the model: dead already, or alive and the Poisson clock silent (a
    member cannot drop out without purchasing)."""
    x, t_x, t = _arrays(repeat_purchases, last_purchase_time, observed_time)
    alive = 1.0 / (1.0 + _dropout_odds(params, x, t_x, t))
    silent = np.exp(
        (params.r + x) * (np.log(params.alpha + t) - np.log(params.alpha + t + horizon_days))
    )
    return 1.0 - alive * (1.0 - silent)


def expected_purchases(
    params: BgNbdParams,
    *,
    repeat_purchases: np.ndarray,
    last_purchase_time: np.ndarray,
    observed_time: np.ndarray,
    horizon_days: float,
) -> np.ndarray:
    """E[purchases in the `horizon_days` after the cutoff | summary] (equation 10).

    2F1(r+x, b+x; a+b+x-1; z) * (1-z)^(r+x) is rewritten by Euler's transformation as
    (1-z)^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z), whose series converges fast however large x.
    """
    x, t_x, t = _arrays(repeat_purchases, last_purchase_time, observed_time)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = horizon_days / (alpha + t + horizon_days)
    series = (1.0 - z) ** (a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z)
    unconditional = (a + b + x - 1.0) / (a - 1.0) * (1.0 - series)
    return unconditional / (1.0 + _dropout_odds(params, x, t_x, t))


def _dropout_odds(params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """P(dropped out) / P(alive) given the summary; 0 without a repeat purchase."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_odds = (
            np.log(a)
            - np.log(np.maximum(b + x - 1.0, 1e-300))
            + (r + x) * (np.log(alpha + t) - np.log(alpha + t_x))
        )
        return np.where(x > 0, np.exp(np.minimum(log_odds, 700.0)), 0.0)


def _arrays(*values: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(value, dtype="float64") for value in values)
