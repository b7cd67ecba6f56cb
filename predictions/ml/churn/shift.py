"""Calibration through seasonal shifts: how much the base rate moves between the calibration
window and the scored one, measured on the same two seasons a year earlier.

Candidates are calibrated on the latest complete label window, [cutoff - h, cutoff); they score
[cutoff, cutoff + h). Where churn is seasonal (fewer members stop buying in the weeks before a
year-end peak than after it) the two windows differ by more than the features show. A year
earlier both windows were observed: the log-odds offset that recalibrates a candidate in the
scored season, minus the one in the calibration season, is added to its calibrators
(`Calibrator.offset`). A candidate that already explains the season (the trees, through the
season features and activity that moves with it) gets an offset near 0; one that cannot (the
baselines) gets the season's change of base rate. Both year-earlier cutoffs may lie in the trees'
training rows: their in-sample sharpness is in both offsets and cancels in the difference.
The tree + sequence ensemble is shifted the same way, from its own stacked margins.

Label sets move the same way: each class's conformal threshold on the margin is shifted by how
far that class's margin quantile moved between the two twins. Mondrian thresholds keep their
per-class coverage under a change of base rate alone, but the season also moves the margins
themselves (through the season features), which moves coverage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit

from predictions.ml.churn.rows import Rows, rows_at
from predictions.ml.contracts import ChurnCandidate, ChurnConfig, ChurnEnsemble
from predictions.ml.features import PreparedEvents

# Fifty-two weeks: a year earlier on the same weekday, which weekly shopping patterns follow.
YEAR_DAYS = 364
# Probabilities are clipped to [1e-9, 1 - 1e-9], log-odds within +-21: an offset of 50 turns
# any of them into a certainty, so the root lies inside the bracket whenever both classes occur.
OFFSET_BRACKET = 50.0
OFFSET_TOLERANCE = 1e-12
PROBABILITY_EPS = 1e-9
# Candidate names as churn.model spells them (this module cannot import it).
XGBOOST = "xgboost"
ENSEMBLE = "ensemble"


@dataclass(frozen=True)
class Shifted:
    """The candidates and the ensemble after `shift_for_season`, and the report's section."""

    candidates: dict[str, ChurnCandidate]
    ensemble: ChurnEnsemble | None
    report: dict[str, Any]


def shift_for_season(
    candidates: Mapping[str, ChurnCandidate],
    *,
    ensemble: ChurnEnsemble | None,
    sequence_events: Any,
    prepared: PreparedEvents,
    roster: pd.DataFrame,
    cutoff: pd.Timestamp,
    first_event: pd.Timestamp,
    horizon_days: int,
    config: ChurnConfig,
    codes: tuple[str, ...],
    budget: int | None = None,
) -> Shifted:
    """The candidates (and the ensemble, scored with `sequence_events`) with their seasonal
    shifts; unchanged where the history or the config does not allow one. The twin windows
    hold at most `budget` members each (the training panel's row budget)."""
    twins = twin_cutoffs(cutoff, horizon_days)

    def unchanged(rows: tuple[Rows, Rows] | None, reason: str) -> Shifted:
        return Shifted(dict(candidates), ensemble, report_of(twins, rows, {}, reason))

    if not config.season_recalibration:
        return unchanged(None, "disabled (season_recalibration)")
    earliest = first_event + pd.Timedelta(days=config.min_history_days)
    if twins[1] < earliest:
        return unchanged(
            None,
            f"the history starts {first_event.date()}: the calibration window's twin a year "
            f"earlier ({twins[1].date()}) is not observed",
        )
    rows = tuple(rows_at(prepared, roster, c, horizon_days, config, codes, budget) for c in twins)
    if not all(0 < r.y.sum() < len(r.y) for r in rows):
        return unchanged(rows, "a twin window holds one class only")
    shifts = {
        name: season_shift(
            margins=[candidate.scorer.margin(r.x) for r in rows],
            rows=rows,
            calibrator=candidate.calibrator,
            coverage=candidate.conformal.coverage,
        )
        for name, candidate in candidates.items()
    }
    shifted = {name: with_shift(c, shifts[name]) for name, c in candidates.items()}
    if ensemble is not None and sequence_events is not None:
        margins = _ensemble_margins(ensemble, candidates[XGBOOST], rows, twins, sequence_events)
        shifts[ENSEMBLE] = season_shift(
            margins=margins,
            rows=rows,
            calibrator=ensemble.calibrator,
            coverage=ensemble.conformal.coverage,
        )
        ensemble = _ensemble_with_shift(ensemble, shifts[ENSEMBLE])
    return Shifted(shifted, ensemble, report_of(twins, rows, shifts, None))


def twin_cutoffs(cutoff: pd.Timestamp, horizon_days: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(the scored window's twin, the calibration window's twin): the same windows a year
    earlier."""
    year = pd.Timedelta(days=YEAR_DAYS)
    return cutoff - year, cutoff - pd.Timedelta(days=horizon_days) - year


def intercept_offset(*, probability: np.ndarray, labels: np.ndarray) -> float:
    """The log-odds shift d that maximizes the likelihood of `labels` under
    expit(logit(p) + d): the root of the score sum(y - expit(logit(p) + d)), which falls
    monotonically in d, so that the mean shifted probability equals the observed rate.
    Needs both classes."""
    p = np.clip(np.asarray(probability, dtype="float64"), PROBABILITY_EPS, 1 - PROBABILITY_EPS)
    y = np.asarray(labels, dtype="float64")
    if not 0 < y.sum() < len(y):
        raise ValueError("an intercept offset needs both classes")
    logit = np.log(p) - np.log1p(-p)

    def score(offset: float) -> float:
        return float(np.sum(y - expit(logit + offset)))

    return float(brentq(score, -OFFSET_BRACKET, OFFSET_BRACKET, xtol=OFFSET_TOLERANCE))


def seasonal_offset(
    *,
    target_probability: np.ndarray,
    target_labels: np.ndarray,
    calibration_probability: np.ndarray,
    calibration_labels: np.ndarray,
) -> float:
    """Offset of the scored season's twin minus that of the calibration season's twin."""
    return intercept_offset(probability=target_probability, labels=target_labels) - (
        intercept_offset(probability=calibration_probability, labels=calibration_labels)
    )


@dataclass(frozen=True)
class SeasonShift:
    """A candidate's log-odds offset and the shifts of its two conformal thresholds."""

    offset: float
    churn_from: float
    stay_until: float


def season_shift(
    *, margins: list[np.ndarray], rows: tuple[Rows, Rows], calibrator: Any, coverage: float
) -> SeasonShift:
    """A model's shifts from its margins on the twins' rows (scored twin first)."""
    # churn_from sits at the (1 - coverage) quantile of churners' margins, stay_until at the
    # coverage quantile of stayers'.
    return SeasonShift(
        offset=seasonal_offset(
            target_probability=calibrator.probability(margins[0]),
            target_labels=rows[0].y,
            calibration_probability=calibrator.probability(margins[1]),
            calibration_labels=rows[1].y,
        ),
        churn_from=_quantile_moved(margins, rows, 1, 1 - coverage),
        stay_until=_quantile_moved(margins, rows, 0, coverage),
    )


def with_shift(candidate: ChurnCandidate, shift: SeasonShift) -> ChurnCandidate:
    """The candidate with the offset on its calibrator and every replica's, and its
    conformal thresholds moved."""
    sets = candidate.conformal
    return replace(
        candidate,
        calibrator=replace(candidate.calibrator, offset=shift.offset),
        conformal=replace(
            sets,
            churn_from=sets.churn_from + shift.churn_from,
            stay_until=sets.stay_until + shift.stay_until,
        ),
        bootstrap=tuple(
            (scorer, replace(calibrator, offset=shift.offset))
            for scorer, calibrator in candidate.bootstrap
        ),
    )


def report_of(
    twins: tuple[pd.Timestamp, pd.Timestamp],
    rows: tuple[Rows, Rows] | None,
    shifts: Mapping[str, SeasonShift],
    reason: str | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "applied": bool(shifts),
        "reason": reason,
        "rule": "log-odds offset = recalibrating offset of the scored window a year earlier "
        "minus that of the calibration window a year earlier; each conformal threshold moves "
        "by its class's margin quantile between the same two windows; per candidate "
        "and for the ensemble",
        "twin_cutoffs": {"scored": twins[0].isoformat(), "calibration": twins[1].isoformat()},
        "offsets": {name: shift.offset for name, shift in shifts.items()},
        "threshold_shifts": {
            name: {"churn_from": shift.churn_from, "stay_until": shift.stay_until}
            for name, shift in shifts.items()
        },
    }
    if rows is not None:
        out["twin_base_rates"] = {
            "scored": float(rows[0].y.mean()),
            "calibration": float(rows[1].y.mean()),
        }
    return out


def _quantile_moved(
    margins: list[np.ndarray], rows: tuple[Rows, Rows], label: int, level: float
) -> float:
    """How far the `level` quantile of class `label`'s margins moved from the second set of
    rows to the first."""
    target, calibration = (
        np.quantile(margin[part.y == label], level)
        for margin, part in zip(margins, rows, strict=True)
    )
    return float(target - calibration)


def _ensemble_margins(
    ensemble: ChurnEnsemble,
    trees: ChurnCandidate,
    rows: tuple[Rows, Rows],
    twins: tuple[pd.Timestamp, pd.Timestamp],
    sequence_events: Any,
) -> list[np.ndarray]:
    from predictions.ml.churn.sequence import encode_members  # imports torch
    from predictions.ml.ensemble import stacked_margin

    out = []
    for part, twin in zip(rows, twins, strict=True):
        sequences = encode_members(
            ensemble=ensemble, events=sequence_events, member_ids=part.member_id, cutoff=twin
        )
        out.append(
            stacked_margin(
                stacker=ensemble.stacker,
                tree_margin=trees.scorer.margin(part.x),
                sequence_margin=ensemble.sequence_model.predict_margin(sequences),
            )
        )
    return out


def _ensemble_with_shift(ensemble: ChurnEnsemble, shift: SeasonShift) -> ChurnEnsemble:
    sets = ensemble.conformal
    return replace(
        ensemble,
        calibrator=replace(ensemble.calibrator, offset=shift.offset),
        conformal=replace(
            sets,
            churn_from=sets.churn_from + shift.churn_from,
            stay_until=sets.stay_until + shift.stay_until,
        ),
        bootstrap_calibrators=tuple(
            replace(calibrator, offset=shift.offset)
            for calibrator in ensemble.bootstrap_calibrators
        ),
    )
