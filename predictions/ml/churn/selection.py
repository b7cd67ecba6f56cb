"""Which churn candidate to serve: every candidate refit and scored out of time at the latest
training cutoffs (rolling origins), and compared with a paired test.

At each origin the candidates are refit (same settings, same number of boosting rounds) on the
cutoffs whose label windows end by the origin, and score the members active at the origin; each
candidate's margins are calibrated out of fold there, as on the calibration split. Losses are
paired: the same member at the same origin, every candidate. A member appears at several
origins with overlapping label windows, so the paired test averages each member's differences
first and treats members as the independent units.

The rule: the candidate with the lowest pooled log loss wins, unless a simpler one (earlier in
the selection order) is not significantly worse than it (one-sided z-test on the per-member
differences at SIGNIFICANCE_Z): then the simplest such one wins. One calibration split alone
(what selection used before) holds ~2,500 members with ~150 churners on The Complete Journey,
too few to tell the trees from RFM logistic; three origins triple the rows and the paired test
says when the difference is real.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from predictions.ml import calibration
from predictions.ml.churn.rows import Rows, concat_rows

ROLLING_ORIGINS = 3
# One-sided 5 %: a simpler candidate loses only to a difference this many standard errors big.
SIGNIFICANCE_Z = 1.645
LOG_LOSS_EPS = 1e-15


@dataclass(frozen=True)
class RollingSelection:
    """The winner, the candidate with the lowest pooled loss, and the figures behind them."""

    winner: str
    lowest_loss: str
    report: dict[str, Any]


def origin_splits(
    panel: Sequence[Rows], cutoffs: Sequence[pd.Timestamp], horizon_days: int
) -> list[tuple[pd.Timestamp, Rows, Rows]]:
    """(origin, training rows, origin rows) for the latest ROLLING_ORIGINS cutoffs that have
    a training cutoff whose label window ends by them and both classes on each side."""
    out = []
    for i in range(len(panel) - 1, 0, -1):
        ended = [j for j in range(i) if cutoffs[j] + pd.Timedelta(days=horizon_days) <= cutoffs[i]]
        if not ended:
            break
        train = concat_rows([panel[j] for j in ended])
        if _both_classes(train.y) and _both_classes(panel[i].y):
            out.append((cutoffs[i], train, panel[i]))
        if len(out) == ROLLING_ORIGINS:
            break
    return out


def rolling_selection(
    *,
    panel: Sequence[Rows],
    cutoffs: Sequence[pd.Timestamp],
    horizon_days: int,
    scorers: Mapping[str, Any],
    methods: Mapping[str, str],
    order: Sequence[str],
    refit: Callable[[Any, Rows], Any],
    seed: int,
) -> RollingSelection | None:
    """Compare `scorers` (name -> fitted scorer; `refit(scorer, rows)` refits one) at rolling
    origins; None when no origin fits in the panel."""
    origins = origin_splits(panel, cutoffs, horizon_days)
    if not origins:
        return None
    losses: dict[str, list[np.ndarray]] = {name: [] for name in scorers}
    members = []
    for _, train, test in origins:
        for name, scorer in scorers.items():
            margin = refit(scorer, train).margin(test.x)
            probability = calibration.cross_fitted_probability(
                margin=margin, labels=test.y, method=methods[name], seed=seed
            )
            losses[name].append(_row_log_loss(test.y, probability))
        members.append(test.member_id)
    pooled = {name: np.concatenate(parts) for name, parts in losses.items()}
    member_id = np.concatenate(members)
    mean = {name: float(values.mean()) for name, values in pooled.items()}
    lowest = min(mean, key=mean.__getitem__)
    tests = {
        name: paired_difference(pooled[lowest], pooled[name], member_id)
        for name in pooled
        if name != lowest
    }
    ranked = [name for name in order if name in pooled]
    winner = lowest
    for name in ranked[: ranked.index(lowest)]:
        if tests[name]["z"] > -SIGNIFICANCE_Z:
            winner = name
            break
    report = {
        "rule": "rolling origins: each candidate refit on the label windows that end by the "
        "origin and calibrated out of fold at it; the lowest pooled log loss wins unless a "
        f"simpler candidate is not significantly worse (one-sided z > -{SIGNIFICANCE_Z} on "
        "per-member paired differences)",
        "origins": [origin.date().isoformat() for origin, _, _ in origins],
        "rows": int(len(member_id)),
        "members": int(len(np.unique(member_id))),
        "log_loss": mean,
        "lowest_loss": lowest,
        "paired_against_lowest": tests,
        "winner": winner,
        "reason": _reason(winner, lowest, mean, tests, ranked),
    }
    return RollingSelection(winner=winner, lowest_loss=lowest, report=report)


def served_candidates(
    *,
    rolling: RollingSelection | None,
    log_losses: Mapping[str, float],
    candidates: Sequence[str],
    tolerance: float,
    order: Sequence[str],
) -> tuple[str, str, str]:
    """(the candidate served without sequences, the one served, why), from the rolling
    selection and the calibration split's cross-fitted `log_losses` (every candidate's, and
    the ensemble's when there is one: the last name of `order`).

    The ensemble, whose GRU is not refit per origin, is served when it beats the rolling
    winner on the calibration split by more than `tolerance` (relative). Without an origin
    (too few cutoffs), the calibration split decides: the simplest within the tolerance.
    """
    ensemble = order[-1]
    if rolling is None:
        selected = simplest_within(
            log_losses={name: log_losses[name] for name in candidates},
            tolerance=tolerance,
            order=order,
        )
        overall = simplest_within(log_losses=log_losses, tolerance=tolerance, order=order)
        reason = (
            f"no rolling origin fits in the training cutoffs: {overall} has the lowest "
            f"calibration-split log loss within the tolerance ({log_losses[overall]:.4f})"
        )
        return selected, overall, reason
    selected, reason = rolling.winner, rolling.report["reason"]
    ensemble_loss = log_losses.get(ensemble)
    if ensemble_loss is not None and ensemble_loss < log_losses[selected] * (1 - tolerance):
        reason = (
            f"{reason}; the tree + sequence ensemble then beats {selected} on the calibration "
            f"split ({ensemble_loss:.4f} vs {log_losses[selected]:.4f})"
        )
        return selected, ensemble, reason
    return selected, selected, reason


def simplest_within(
    *, log_losses: Mapping[str, float], tolerance: float, order: Sequence[str]
) -> str:
    """The simplest candidate (earliest in `order`; a name not in it is never chosen) whose
    loss is within `tolerance` of the best of those in `order`.

    `tolerance` is relative: 0.002 lets a baseline win when the trees improve log loss by less
    than 0.2 %, a difference that does not survive the next retraining.
    """
    eligible = {name: loss for name, loss in log_losses.items() if name in order}
    best = min(eligible.values())
    for name in order:
        if name in eligible and eligible[name] <= best * (1 + tolerance):
            return name
    return min(eligible, key=eligible.__getitem__)


def paired_difference(
    first: np.ndarray, second: np.ndarray, member_id: np.ndarray
) -> dict[str, float]:
    """Mean of first - second, its standard error over members (each member's rows averaged
    first) and z = mean / standard error."""
    frame = pd.DataFrame({"member": member_id, "difference": first - second})
    per_member = frame.groupby("member")["difference"].mean().to_numpy()
    mean = float(per_member.mean())
    error = float(per_member.std(ddof=1) / np.sqrt(len(per_member))) if len(per_member) > 1 else 0.0
    z = mean / error if error > 0 else (0.0 if mean == 0 else float(np.sign(mean)) * np.inf)
    return {"mean_difference": mean, "standard_error": error, "z": float(z)}


def _reason(
    winner: str,
    lowest: str,
    mean: Mapping[str, float],
    tests: Mapping[str, dict[str, float]],
    order: Sequence[str],
) -> str:
    if winner != lowest:
        test = tests[winner]
        return (
            f"{lowest} has the lowest rolling log loss ({mean[lowest]:.4f}), but the simpler "
            f"{winner} ({mean[winner]:.4f}) is not significantly worse (paired difference "
            f"{test['mean_difference']:+.4f} +- {test['standard_error']:.4f}, z {test['z']:.1f})"
        )
    rank = order.index(winner)
    simpler = [name for name in tests if order.index(name) < rank]
    others = [name for name in tests if order.index(name) > rank]
    out = f"{winner} has the lowest rolling log loss ({mean[winner]:.4f})"
    if simpler:
        out += "; simpler candidates are significantly worse: " + ", ".join(
            f"{name} {mean[name]:.4f} (z {tests[name]['z']:.1f})" for name in simpler
        )
    if others:
        out += "; more complex ones do not beat it: " + ", ".join(
            f"{name} {mean[name]:.4f}" for name in others
        )
    return out


def _row_log_loss(labels: np.ndarray, probability: np.ndarray) -> np.ndarray:
    p = np.clip(probability, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return -(labels * np.log(p) + (1 - labels) * np.log1p(-p))


def _both_classes(y: np.ndarray) -> bool:
    return bool(0 < y.sum() < len(y))
