"""The churn training set: which cutoffs, the rows of the members active at each, and the
time- and member-disjoint splits that train, stop early, validate and calibrate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from predictions.ml import frames, labels
from predictions.ml.contracts import ChurnConfig, InsufficientHistoryError, SingleClassError
from predictions.ml.features import (
    FEATURE_CODES,
    SEASON_FEATURES,
    SNAPSHOT_FEATURES,
    PreparedEvents,
    features_at,
)
from predictions.ml.row_budget import within_budget

MIN_CUTOFF_STEP_DAYS = 14
CUTOFFS_PER_HORIZON = 3
# Training cutoffs must span this many days for the season of the cutoff to be a feature.
SEASON_SPAN_DAYS = 365


@dataclass(frozen=True)
class Rows:
    """Training rows, aligned: features (float32), churned (0/1), member, cutoff date, weight."""

    x: np.ndarray
    y: np.ndarray
    member_id: np.ndarray
    cutoff: np.ndarray
    w: np.ndarray


@dataclass(frozen=True)
class LabeledRows:
    """Training rows that carry their own features, label and weight (people's decisions and
    observed outcomes): `features` has a row per example and feature codes as columns (a
    missing column is missing data); `churned`, `weight`, `member_id` and `cutoff` align."""

    features: pd.DataFrame
    churned: np.ndarray
    weight: np.ndarray
    member_id: np.ndarray
    cutoff: np.ndarray

    def __len__(self) -> int:
        return len(self.churned)

    def rows(self, codes: tuple[str, ...]) -> Rows:
        frame = self.features.reindex(columns=list(codes))
        return Rows(
            x=np.ascontiguousarray(frame.to_numpy(dtype="float32")),
            y=np.asarray(self.churned, dtype="int64"),
            member_id=np.asarray(self.member_id, dtype="int64"),
            cutoff=np.asarray(self.cutoff, dtype=object),
            w=np.asarray(self.weight, dtype="float64"),
        )


def model_feature_codes(
    config: ChurnConfig, cutoffs: list[pd.Timestamp] | None = None
) -> tuple[str, ...]:
    """The matrix columns the churn models use (snapshot attributes only when allowed).

    The season of the cutoff is used only when the training `cutoffs` span a year: from
    fewer months a model can only extrapolate the season it is asked about.
    """
    excluded = set(config.excluded_features)
    if not config.use_snapshot_attributes:
        excluded |= set(SNAPSHOT_FEATURES)
    if cutoffs is not None and (max(cutoffs) - min(cutoffs)).days < SEASON_SPAN_DAYS:
        excluded |= set(SEASON_FEATURES)
    return tuple(code for code in FEATURE_CODES if code not in excluded)


def training_cutoffs(
    *, first_event: pd.Timestamp, cutoff: pd.Timestamp, horizon_days: int, config: ChurnConfig
) -> list[pd.Timestamp]:
    """Training cutoffs, oldest first: label windows end at or before `cutoff`."""
    step = config.cutoff_step_days or max(horizon_days // CUTOFFS_PER_HORIZON, MIN_CUTOFF_STEP_DAYS)
    latest = cutoff - pd.Timedelta(days=horizon_days)
    earliest = first_event + pd.Timedelta(days=config.min_history_days)
    out = []
    for i in range(config.max_training_cutoffs):
        candidate = latest - pd.Timedelta(days=i * step)
        if candidate < earliest:
            break
        out.append(candidate)
    return out[::-1]


def qualifying_span(
    prepared: PreparedEvents, kinds: tuple[str, ...]
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last qualifying event: the span in which churn labels can be observed.

    Program-side events (a campaign dated before the first purchase, or scheduled after the
    last) say nothing about how far member activity was recorded, so they do not count.
    """
    qualifying = np.flatnonzero(np.isin(prepared.kind, [frames.KIND_CODE[k] for k in kinds]))
    if len(qualifying) == 0:
        raise InsufficientHistoryError(f"there are no events of the qualifying kinds {kinds}")
    first, last = prepared.t_ns[qualifying[0]], prepared.t_ns[qualifying[-1]]
    return pd.Timestamp(int(first), tz="UTC"), pd.Timestamp(int(last), tz="UTC")


def feature_matrix(features: pd.DataFrame, codes: tuple[str, ...]) -> np.ndarray:
    """The `codes` columns of a feature matrix, as the models read them (float32, C order)."""
    missing = [code for code in codes if code not in features.columns]
    if missing:
        raise ValueError(f"feature matrix lacks columns: {missing}")
    return np.ascontiguousarray(features.loc[:, list(codes)].to_numpy(dtype="float32"))


def active_at(
    prepared: PreparedEvents, roster: pd.DataFrame, cutoff: pd.Timestamp, config: ChurnConfig
) -> np.ndarray:
    """Sorted ids of the roster's members active at `cutoff` (a qualifying event in the
    lookback before it): who may have a row there. Reads nothing at or after the cutoff."""
    active = labels.active_member_ids(
        events=prepared,
        cutoff=cutoff,
        lookback_days=config.active_lookback_days,
        qualifying_kinds=config.qualifying_kinds,
    )
    return active[np.isin(active, roster["member_id"].to_numpy())]


def member_rows(
    prepared: PreparedEvents,
    roster: pd.DataFrame,
    cutoff: pd.Timestamp,
    horizon_days: int,
    config: ChurnConfig,
    codes: tuple[str, ...],
    member_ids: np.ndarray,
) -> Rows:
    """The rows of `member_ids` (from `active_at`, in its order): their features at `cutoff`
    and whether they churned after. Features are built for these members only, so a cutoff
    costs memory for its rows, not for the whole roster."""
    listed = roster[roster["member_id"].isin(member_ids)]
    matrix = features_at(prepared, listed, cutoff).loc[member_ids]
    y = labels.churn_labels(
        events=prepared,
        member_ids=member_ids,
        cutoff=cutoff,
        horizon_days=horizon_days,
        qualifying_kinds=config.qualifying_kinds,
    )
    return Rows(
        x=feature_matrix(matrix, codes),
        y=y.to_numpy(dtype="int64"),
        member_id=member_ids,
        cutoff=np.full(len(member_ids), cutoff.date().isoformat(), dtype=object),
        w=np.ones(len(member_ids), dtype="float64"),
    )


def rows_at(
    prepared: PreparedEvents,
    roster: pd.DataFrame,
    cutoff: pd.Timestamp,
    horizon_days: int,
    config: ChurnConfig,
    codes: tuple[str, ...],
    budget: int | None = None,
) -> Rows:
    """The members active at `cutoff`, their features then and whether they churned after;
    beyond `budget` members, the stable sample of them that `row_budget` keeps."""
    active = active_at(prepared, roster, cutoff, config)
    active = active[within_budget(active, budget=budget, seed=config.seed)]
    return member_rows(prepared, roster, cutoff, horizon_days, config, codes, active)


def concat_rows(parts: list[Rows]) -> Rows:
    return Rows(
        x=np.concatenate([p.x for p in parts]),
        y=np.concatenate([p.y for p in parts]),
        member_id=np.concatenate([p.member_id for p in parts]),
        cutoff=np.concatenate([p.cutoff for p in parts]),
        w=np.concatenate([p.w for p in parts]),
    )


def take_rows(rows: Rows, mask: np.ndarray) -> Rows:
    return Rows(rows.x[mask], rows.y[mask], rows.member_id[mask], rows.cutoff[mask], rows.w[mask])


@dataclass(frozen=True)
class Splits:
    """The row sets of one training run (`split_rows`)."""

    train: Rows
    early_stopping: Rows
    validation: Rows
    calibration: Rows


def split_rows(
    panel: list[Rows], *, seed: int, held_out_share: float, max_training_rows: int | None = None
) -> Splits:
    """Oldest cutoffs train, the second latest validates, the latest calibrates.

    Validation is also member-disjoint: a seeded `held_out_share` of members is held out, the
    early-stopping fit sees only the other members' training rows, and validation only the
    held-out members' rows. Consecutive cutoffs repeat the same members with nearly the same
    features and overlapping label windows, so a validation set of the same members rewards
    memorizing them and boosting runs on for many times the rounds a member-disjoint one
    allows. The final fit then uses every training member.
    With only two cutoffs the later one serves both: held-out members validate, the others
    calibrate.
    Training rows beyond `max_training_rows` are thinned by members: a seeded share of them
    keeps all its training cutoffs (a member's rows stay together, as the half-sample refits
    expect); validation and calibration keep everyone.
    """
    members = np.unique(np.concatenate([rows.member_id for rows in panel]))
    rng = np.random.default_rng(seed)
    held = members[rng.random(len(members)) < held_out_share]
    train = concat_rows(panel[:-2]) if len(panel) >= 3 else panel[0]
    if max_training_rows is not None and len(train.y) > max_training_rows:
        kept = members[rng.random(len(members)) < max_training_rows / len(train.y)]
        train = take_rows(train, np.isin(train.member_id, kept))
    later = panel[-2] if len(panel) >= 3 else panel[-1]
    calibration = panel[-1]
    if len(panel) < 3:
        calibration = take_rows(calibration, ~np.isin(calibration.member_id, held))
    return Splits(
        train=train,
        early_stopping=take_rows(train, ~np.isin(train.member_id, held)),
        validation=take_rows(later, np.isin(later.member_id, held)),
        calibration=calibration,
    )


def with_labeled(splits: Splits, labeled: Rows) -> Splits:
    """Labeled examples train (the final fit, and the early-stopping fit for members that
    validation does not hold out); validation and calibration stay history only."""
    held = np.unique(splits.validation.member_id)
    return Splits(
        train=concat_rows([splits.train, labeled]),
        early_stopping=concat_rows(
            [splits.early_stopping, take_rows(labeled, ~np.isin(labeled.member_id, held))]
        ),
        validation=splits.validation,
        calibration=splits.calibration,
    )


def require_both_classes(split: str, rows: Rows) -> None:
    if len(rows.y) == 0:
        raise InsufficientHistoryError(f"no member is active at the {split} cutoff(s)")
    present = np.unique(rows.y)
    if len(present) < 2:
        label = "churn" if len(present) and present[0] == 1 else "stay"
        raise SingleClassError(
            split=split,
            label=label,
            rows=len(rows.y),
            detail=f"cutoffs {sorted(set(rows.cutoff.tolist()))}",
        )
