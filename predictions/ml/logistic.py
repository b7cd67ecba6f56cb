"""A small weighted, L2-regularized logistic regression solved by damped Newton steps.

Used for Platt calibration (one input) and the baselines (one to four inputs): with so few
parameters an exact Newton step is cheaper and steadier than a general-purpose solver, and the
result depends on nothing but the data.
"""

from __future__ import annotations

import numpy as np

NEWTON_STEPS = 100
NEWTON_TOLERANCE = 1e-10
MIN_STEP = 1e-6
# Keeps the Hessian invertible when a column is constant or the classes are separable.
JITTER = 1e-12


def fit_logistic(
    *,
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    penalty: float | np.ndarray = 0.0,
) -> tuple[np.ndarray, float]:
    """(coefficients, intercept) minimizing sum w * logloss + penalty/2 * |coef|^2.

    `penalty` is 1/C in scikit-learn's terms (per column if an array); the intercept is not
    penalized. Damped Newton: each step is halved until the objective does not increase.
    """
    x = np.asarray(x, dtype="float64")
    if x.ndim == 1:
        x = x[:, None]
    n, k = x.shape
    y = np.asarray(y, dtype="float64")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype="float64")
    design = np.hstack([x, np.ones((n, 1))])
    ridge = np.diag(np.append(np.broadcast_to(np.asarray(penalty, dtype="float64"), (k,)), 0.0))

    def objective(beta: np.ndarray) -> float:
        z = design @ beta
        return float(np.sum(w * (np.logaddexp(0.0, z) - y * z)) + 0.5 * beta @ ridge @ beta)

    rate = np.clip(np.sum(w * y) / max(np.sum(w), 1e-12), 1e-6, 1 - 1e-6)
    beta = np.zeros(k + 1)
    beta[-1] = np.log(rate / (1 - rate))
    current = objective(beta)
    for _ in range(NEWTON_STEPS):
        p = 0.5 * (1.0 + np.tanh(0.5 * (design @ beta)))
        gradient = design.T @ (w * (p - y)) + ridge @ beta
        hessian = (design * (w * p * (1 - p))[:, None]).T @ design + ridge
        step = np.linalg.solve(hessian + JITTER * np.eye(k + 1), gradient)
        size = 1.0
        while True:
            candidate = beta - size * step
            value = objective(candidate)
            if value <= current or size < MIN_STEP:
                break
            size /= 2
        if value > current:
            break
        converged = current - value < NEWTON_TOLERANCE * max(1.0, abs(current))
        beta, current = candidate, value
        if converged:
            break
    return beta[:-1], float(beta[-1])
