"""The engine's boundary: configuration, results and errors as frozen dataclasses.

Everything the Django side passes in or gets back is declared here, so that `predictions.services`
can be written against this file alone. Arrays inside results are numpy arrays aligned on
`member_ids`; reports are JSON-able dicts (plain floats, ints, strings, lists, None).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# --- errors ---------------------------------------------------------------------------------


class MLError(Exception):
    """Base class of every error the engine raises on purpose."""


class InvalidInputError(MLError, ValueError):
    """An input frame is missing a column, has a wrong type or an unknown value."""

    def __init__(self, *, frame: str, field: str, reason: str, row: int | None = None):
        self.frame, self.field, self.reason, self.row = frame, field, reason, row
        where = f" (row {row})" if row is not None else ""
        super().__init__(f"{frame}.{field}{where}: {reason}")


class InsufficientHistoryError(MLError):
    """The data does not hold enough history before the cutoff to train at all."""


class SingleClassError(MLError):
    """A training split holds only one class, so no classifier can be fitted or calibrated.

    Typical cause: a window where nobody churned (or everybody did), or a member subset chosen
    by a property that implies the label. `split` names the split, `label` the only class seen.
    """

    def __init__(self, *, split: str, label: Any, rows: int, detail: str = ""):
        self.split, self.label, self.rows = split, label, rows
        extra = f"; {detail}" if detail else ""
        super().__init__(
            f"the {split} split has a single class ({label!r}) over {rows} rows{extra}"
        )


class CorruptArtifactError(MLError):
    """An artifact file is missing, unexpected, or its SHA-256 differs from the stored one."""


# --- features -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureInfo:
    """One column of the feature matrix: a stable code, a name for people, what it measures."""

    code: str
    name: str
    description: str


# --- configuration --------------------------------------------------------------------------


@dataclass(frozen=True)
class BoosterParams:
    """XGBoost settings shared by both model kinds: shallow, regularized, early-stopped trees.

    Defaults favor speed and stability on tens of thousands of rows: histogram trees, depth 4,
    and early stopping on the time-later validation split instead of a tuned round count.

    `n_jobs` is the OpenMP threads per fit and per prediction, 0 for every core. The default
    is 1 because parallelism comes from Celery workers (scoring runs in chunks, one per task):
    where other processes share the cores, more threads make fits slower, not faster (threads
    wait at every barrier for a descheduled peer). Raise it on a dedicated machine.
    """

    max_depth: int = 4
    learning_rate: float = 0.05
    min_child_weight: float = 5.0
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    max_bin: int = 128
    num_boost_round: int = 800
    early_stopping_rounds: int = 50
    n_jobs: int = 1


@dataclass(frozen=True)
class SequenceModelConfig:
    """Network size and training settings of the sequence (GRU) churn model; small defaults
    that train in seconds per 10k rows (`sequences.model.train_sequence_churn`)."""

    hidden_size: int = 48
    kind_dim: int = 8
    category_dim: int = 8
    channel_dim: int = 4
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    max_epochs: int = 40
    patience: int = 4
    gradient_clip: float = 1.0
    seed: int = 0
    threads: int = 1


@dataclass(frozen=True)
class ChurnConfig:
    """How `train_churn` builds its training set, model, calibration and confidence.

    - Labels: a member churns when none of `qualifying_kinds` occurs in [cutoff, cutoff+horizon).
      Training and evaluation rows are the members *active at the cutoff*: at least one
      qualifying event in the `active_lookback_days` before it. Scoring scores everybody given.
    - Cutoffs: label windows end at or before the evaluation cutoff; one every
      `cutoff_step_days` (default max(horizon/3, 14)), at most `max_training_cutoffs`, the
      oldest at least `min_history_days` after the first event. 24 at the default step span
      two years at a 90-day horizon: every season twice, so that the season of the cutoff
      (a feature once the cutoffs span a year) is learned, not extrapolated (see
      bench/churn_eval.py). Oldest cutoffs train the trees, the next later one stops
      boosting early, the latest calibrates. Early stopping validates on
      `validation_member_share` of the members, held out of that fit (the final fit uses
      everyone): see `churn.rows.split_rows` for why. `max_training_rows` is a budget over
      every cutoff training reads: each keeps at most its share (83,333 members at 24
      cutoffs), a stable sample chosen before any feature is built (`churn.panel`,
      `row_budget`), which bounds the memory and time of the fit and its half-sample refits.
    - `interval_coverage`: nominal coverage of the interval on the probability, built from
      `bootstrap_models` half-sample refits (see `confidence.probability_interval`);
      `label_set_coverage`: nominal coverage of the conformal {stay, churn} set.
    - `calibration`: "auto" picks isotonic or sigmoid per candidate by cross-validated log loss
      on the calibration split; "isotonic" or "sigmoid" forces one.
    - Selection: candidates are compared at rolling origins with a paired test
      (`churn.selection`). `selection_tolerance`: the ensemble is served only when it lowers
      the winner's calibration-split log loss by more than this fraction (Occam's razor
      against noise); without a rolling origin the simplest candidate within it wins.
      `served_candidates`: the candidates that may be served (empty: every one but BG/NBD,
      which is a yardstick), e.g. ("xgboost", "ensemble") for a model that learns from labels.
    - `season_recalibration`: shift each candidate's calibrated log-odds by the change of
      base rate between the calibration window and the scored one, measured on the same two
      windows a year earlier (`churn.shift`), when the history reaches that far.
    - `use_snapshot_attributes`: points balance and tier rank are *current* values, not values
      as of a past cutoff, so training on them leaks the future; off unless the members frame
      is known to be a snapshot taken at the cutoff.
    - `excluded_features`: feature codes the models must not use (e.g. an attribute that is
      not allowed in decisions).
    - `sequence`: also train the sequence model (a GRU over each member's last
      `sequence_length` events, `sequence_model` its settings) and the tree + sequence
      ensemble (`churn.sequence`), when the data hold at least `sequence_min_rows` GRU
      training rows; the GRU trains on at most `sequence_max_rows` of them (a seeded sample of
      members, all their cutoffs), which bounds training time on big programs.
    """

    seed: int = 0
    qualifying_kinds: tuple[str, ...] = ("purchase",)
    active_lookback_days: int = 365
    max_training_cutoffs: int = 24
    max_training_rows: int = 2_000_000
    cutoff_step_days: int | None = None
    validation_member_share: float = 0.2
    min_history_days: int = 28
    booster: BoosterParams = field(default_factory=BoosterParams)
    bootstrap_models: int = 8
    interval_coverage: float = 0.9
    label_set_coverage: float = 0.9
    calibration: str = "auto"
    selection_tolerance: float = 0.002
    served_candidates: tuple[str, ...] = ()
    season_recalibration: bool = True
    use_snapshot_attributes: bool = False
    excluded_features: tuple[str, ...] = ()
    importance_sample_rows: int = 2000
    sequence: bool = True
    sequence_length: int = 64
    sequence_min_rows: int = 1000
    sequence_max_rows: int = 30_000
    sequence_model: SequenceModelConfig = field(default_factory=SequenceModelConfig)


@dataclass(frozen=True)
class NextActionConfig:
    """How `train_next_action` splits, fits and calibrates the next-best-action model.

    Rows are ordered by cutoff (ties in a seeded random order, one member-cutoff kept
    together); the oldest `train_share` fit the trees, the next `validation_share` stop
    boosting early, the rest calibrate the conformal set (LAC score 1 - p(true action)).
    """

    seed: int = 0
    booster: BoosterParams = field(default_factory=BoosterParams)
    train_share: float = 0.7
    validation_share: float = 0.15
    validation_member_share: float = 0.2
    set_coverage: float = 0.9
    min_rows: int = 30


# --- explanations ---------------------------------------------------------------------------

# The ensemble's one explanation item that is not a feature: the sequence model's share.
SEQUENCE_ITEM = "behavior_sequence"
SEQUENCE_ITEM_NAME = "Behavior sequence"
EXPLANATION_ITEM_NAMES = {SEQUENCE_ITEM: SEQUENCE_ITEM_NAME}
# What scoring stores per ensemble prediction: the events that moved the ensemble margin most,
# this many, found by exact occlusion of each member's latest ATTRIBUTION_RECENT_EVENTS events
# (None: every event the model sees). Occlusion costs about n^2 / 2 GRU steps for n events,
# and the latest events move a GRU most: looking at the latest 32 instead of all 64 is several
# times cheaper and nearly always finds the same top events (bench/ensemble.py measures both).
STORED_SEQUENCE_EVENTS = 5
ATTRIBUTION_RECENT_EVENTS: int | None = 32


@dataclass(frozen=True)
class Explanation:
    """Top-k SHAP contributions per row, in the model's margin (log-odds) space.

    For every row i: base_value[i] + top_contribution[i].sum() + remainder[i] == margin[i].
    `top_index` indexes `feature_codes`; `top_value` is the feature's value that row (NaN when
    missing); contributions are sorted by absolute size, largest first.
    """

    feature_codes: tuple[str, ...]
    base_value: np.ndarray
    margin: np.ndarray
    top_index: np.ndarray
    top_value: np.ndarray
    top_contribution: np.ndarray
    remainder: np.ndarray

    def row(self, i: int, *, names: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One row as a JSON-able dict (what a Prediction row stores)."""
        return self._dicts(np.array([i]), names)[0]

    def rows(self, *, names: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Every row as `row` gives it, built from whole arrays at once."""
        return self._dicts(np.arange(len(self.margin)), names)

    def _dicts(self, rows: np.ndarray, names: Mapping[str, str] | None) -> list[dict[str, Any]]:
        """With `names`, each top item also carries its feature's name for people."""
        index = np.asarray(self.top_index, dtype="int64")[rows]
        columns = [
            np.asarray(self.feature_codes, dtype=object)[index].tolist(),
            _json_floats(np.asarray(self.top_value)[rows]),
            np.asarray(self.top_contribution, dtype="float64")[rows].tolist(),
        ]
        keys: tuple[str, ...] = ("feature", "value", "contribution")
        if names is not None:
            labels = [
                names.get(code, EXPLANATION_ITEM_NAMES.get(code, code))
                for code in self.feature_codes
            ]
            columns.append(np.asarray(labels, dtype=object)[index].tolist())
            keys += ("name",)
        tops = (
            [dict(zip(keys, item, strict=True)) for item in zip(*top, strict=True)]
            for top in zip(*columns, strict=True)
        )
        return [
            {"base_value": base, "margin": margin, "top": top, "remainder": remainder}
            for base, margin, top, remainder in zip(
                np.asarray(self.base_value, dtype="float64")[rows].tolist(),
                np.asarray(self.margin, dtype="float64")[rows].tolist(),
                tops,
                np.asarray(self.remainder, dtype="float64")[rows].tolist(),
                strict=True,
            )
        ]


# --- churn ----------------------------------------------------------------------------------

CHURN_LABELS: tuple[str, str] = ("stay", "churn")


@dataclass(frozen=True)
class ChurnCandidate:
    """One fitted churn model (xgboost or a baseline) with everything needed to score it.

    `scorer` maps the feature matrix to a margin and exact additive contributions; the
    calibrator maps the margin to a probability; `conformal` holds the Mondrian thresholds
    on the margin; `bootstrap` holds (scorer, calibrator) pairs refit on random halves of the
    training members and calibration rows, whose spread gives the probability interval.
    """

    name: str
    scorer: Any
    calibrator: Any
    conformal: Any
    bootstrap: tuple[tuple[Any, Any], ...]


@dataclass(frozen=True)
class ChurnEnsemble:
    """The tree + sequence churn ensemble of a bundle (`churn.sequence`).

    ensemble margin = stacker(trees' margin, sequence margin), with the bundle's `xgboost`
    candidate as the trees; `calibrator`, `conformal` and `bootstrap_calibrators` (one per
    xgboost half-sample replica, the sequence share held fixed) play the roles they play in a
    ChurnCandidate. `sequence_calibrator` / `sequence_conformal` calibrate the GRU alone (for
    its evaluation). Sequences are the last `sequence_model.length` events within
    `lookback_days` before the cutoff. `selected`: the ensemble won the selection rule.
    """

    sequence_model: Any
    stacker: Any
    calibrator: Any
    conformal: Any
    bootstrap_calibrators: tuple[Any, ...]
    sequence_calibrator: Any
    sequence_conformal: Any
    lookback_days: int
    selected: bool = False


@dataclass(frozen=True)
class ChurnBundle:
    """A trained churn model version: every candidate, which one is offered, and how it was made.

    `predict_churn` scores with `selected` unless told otherwise: the winner among the
    candidates that need no event sequences (the trees and the baselines). `ensemble` is the
    tree + sequence ensemble when one was trained; `ensemble.selected` says whether it won
    the same selection rule against them. Saved and loaded by
    `artifacts.save_churn_bundle` / `load_churn_bundle`.
    """

    feature_codes: tuple[str, ...]
    config: ChurnConfig
    candidates: Mapping[str, ChurnCandidate]
    selected: str
    horizon_days: int
    trained_cutoff: str
    training_cutoffs: tuple[str, ...]
    ensemble: ChurnEnsemble | None = None


@dataclass(frozen=True)
class ChurnTrainingResult:
    """What `train_churn` returns: the bundle to store and the JSON-able report.

    `report` holds out-of-time metrics per candidate at the training cutoff (empty with a
    reason when the data does not reach cutoff + horizon), the selection, row counts, the
    cutoffs used, and the mean |SHAP| importance per feature code.
    """

    bundle: ChurnBundle
    report: dict[str, Any]


@dataclass(frozen=True)
class ChurnPrediction:
    """Churn scores for the rows of one feature matrix, aligned on `member_ids`.

    - probability: calibrated probability of no qualifying event within the horizon.
    - low, high: the bootstrap interval with nominal `interval_coverage` on that probability
      (see `churn.model.predict_churn`).
    - label_sets: (n, 2) booleans over CHURN_LABELS (stay, churn): the outcomes the Mondrian
      conformal predictor cannot rule out at `label_set_coverage`.
    - confidence: `confidence.confidence_from(...)` of interval and set, in [0, 1].
    - explanation: margin-space SHAP of the scoring candidate (None if not requested). For
      the ensemble: the trees' SHAP times the tree weight plus one `behavior_sequence` item,
      the sequence share, all adding up to the ensemble margin.
    - sequence_events: ensemble only, when asked: per row, the events whose removal moved
      the ensemble margin most (occlusion, `churn.sequence.top_sequence_events`), JSON-able.
    """

    member_ids: np.ndarray
    model: str
    probability: np.ndarray
    low: np.ndarray
    high: np.ndarray
    label_sets: np.ndarray
    confidence: np.ndarray
    interval_coverage: float
    label_set_coverage: float
    explanation: Explanation | None
    sequence_events: tuple[list[dict[str, Any]], ...] | None = None

    def columns(self, *, names: Mapping[str, str] | None = None) -> dict[str, list]:
        """The predictions as JSON-able columns, one entry per member in row order:
        member_id, model, probability, low, high, label_set, confidence and, when there is
        one, explanation (`Explanation.rows`, holding the sequence_events when there are)."""
        columns = {
            "member_id": np.asarray(self.member_ids, dtype="int64").tolist(),
            "model": [self.model] * len(self.member_ids),
            "probability": np.asarray(self.probability, dtype="float64").tolist(),
            "low": np.asarray(self.low, dtype="float64").tolist(),
            "high": np.asarray(self.high, dtype="float64").tolist(),
            "label_set": label_lists(self.label_sets, CHURN_LABELS),
            "confidence": np.asarray(self.confidence, dtype="float64").tolist(),
        }
        if self.explanation is not None:
            columns["explanation"] = self.explanation.rows(names=names)
            if self.sequence_events is not None:
                for explanation, events in zip(
                    columns["explanation"], self.sequence_events, strict=True
                ):
                    explanation["sequence_events"] = events
        return columns

    def records(self, *, names: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """One JSON-able dict per member, in row order (`columns`, row by row)."""
        return _records(self.columns(names=names))


# --- next best action -----------------------------------------------------------------------

LABEL_COLUMNS: tuple[str, ...] = ("member_id", "cutoff", "action_code", "source", "weight")


@dataclass(frozen=True)
class NextActionBundle:
    """A trained next-best-action model version.

    `action_codes` are the classes in output order; `trained_classes` flags those seen in
    training (the others always get probability 0, see `nba.predict_next_action`).
    `set_threshold` is the LAC conformal threshold on 1 - p(action).
    """

    feature_codes: tuple[str, ...]
    action_codes: tuple[str, ...]
    trained_classes: tuple[bool, ...]
    booster: Any
    set_threshold: float
    config: NextActionConfig


@dataclass(frozen=True)
class NextActionTrainingResult:
    """What `train_next_action` returns: the bundle and a JSON-able report of held-out metrics."""

    bundle: NextActionBundle
    report: dict[str, Any]


@dataclass(frozen=True)
class NextActionPrediction:
    """Next-best-action scores, aligned on `member_ids`, classes in `action_codes` order.

    - probabilities: (n, K) per action, rows sum to 1.
    - recommended: the most probable action the member is eligible for ('' when none is).
    - action_sets: (n, K) booleans: actions the conformal predictor cannot rule out.
    - confidence: `confidence.confidence_from(...)`, 0 when the recommendation is outside the
      set (the model would not stand behind it) or there is none.
    - explanation: margin-space SHAP of the recommended action's class.
    """

    member_ids: np.ndarray
    action_codes: tuple[str, ...]
    probabilities: np.ndarray
    recommended: np.ndarray
    recommended_probability: np.ndarray
    action_sets: np.ndarray
    confidence: np.ndarray
    set_coverage: float
    explanation: Explanation | None

    def columns(self, *, names: Mapping[str, str] | None = None) -> dict[str, list]:
        """The predictions as JSON-able columns, one entry per member in row order:
        member_id, recommended, probability (of the recommended action), probabilities (per
        action code), action_set, confidence and, when there is one, explanation."""
        columns = {
            "member_id": np.asarray(self.member_ids, dtype="int64").tolist(),
            "recommended": [str(code) for code in np.asarray(self.recommended).tolist()],
            "probability": np.asarray(self.recommended_probability, dtype="float64").tolist(),
            "probabilities": [
                dict(zip(self.action_codes, row, strict=True))
                for row in np.asarray(self.probabilities, dtype="float64").tolist()
            ],
            "action_set": label_lists(self.action_sets, self.action_codes),
            "confidence": np.asarray(self.confidence, dtype="float64").tolist(),
        }
        if self.explanation is not None:
            columns["explanation"] = self.explanation.rows(names=names)
        return columns

    def records(self, *, names: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """One JSON-able dict per member, in row order (`columns`, row by row)."""
        return _records(self.columns(names=names))


def label_lists(flags: np.ndarray, labels: Sequence[str]) -> list[list[str]]:
    """Per row of (n, len(labels)) flags, the labels whose flag is set, in label order."""
    return [
        [label for label, flag in zip(labels, row, strict=True) if flag]
        for row in np.asarray(flags, dtype=bool).tolist()
    ]


def _records(columns: dict[str, list]) -> Iterator[dict[str, Any]]:
    keys = tuple(columns)
    for values in zip(*columns.values(), strict=True):
        yield dict(zip(keys, values, strict=True))


def _json_floats(values: np.ndarray) -> list:
    """Python floats (nested lists for more than one dimension), None where a value is NaN or
    infinite (not JSON)."""
    values = np.asarray(values, dtype="float64")
    cells = values.astype(object)
    cells[~np.isfinite(values)] = None
    return cells.tolist()


def frame_member_ids(frame: pd.DataFrame) -> np.ndarray:
    """The member ids of a feature matrix (its index), as int64."""
    return frame.index.to_numpy(dtype=np.int64)
