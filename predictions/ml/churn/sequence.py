"""The GRU and the tree + sequence ensemble inside churn training and scoring.

The GRU gets the rows of churn's own splits (`churn.rows`), so both models see the same members
at the same cutoffs: it trains and stops early where the trees do, and is not refit afterwards
(that would double the training time for members the calibration split already covers). The
stacker is fitted on the validation rows only, where both models' margins are honest (neither
was fitted on those members); the stacked margin is calibrated and gets conformal thresholds on
the calibration split, like any candidate. Its interval stacks the trees' half-sample replicas
with the GRU's margin held fixed: cheap, but without the GRU's own estimation uncertainty, so
it is narrower than refitting both models per replica would give.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from predictions.ml import calibration, conformal
from predictions.ml.churn.rows import Rows, feature_matrix, take_rows
from predictions.ml.churn.stages import ENSEMBLE_CALIBRATION, SEQUENCE_MODEL
from predictions.ml.confidence import confidence_from, probability_interval
from predictions.ml.contracts import (
    SEQUENCE_ITEM,
    ChurnBundle,
    ChurnCandidate,
    ChurnConfig,
    ChurnEnsemble,
    ChurnPrediction,
    Explanation,
    SingleClassError,
)
from predictions.ml.ensemble import Stacker, ensemble_contributions, fit_stacker, stacked_margin
from predictions.ml.explain import top_contributions
from predictions.ml.features import MAX_LOOKBACK_DAYS
from predictions.ml.metrics import binary_metrics
from predictions.ml.progress import Progress
from predictions.ml.sequences.attribution import occlusion_attribution
from predictions.ml.sequences.encoding import (
    FIRST_KIND_CODE,
    EncodedSequences,
    SequenceEvents,
    SequenceVocabulary,
    concat_sequences,
    encode_sequences,
    learn_vocabulary,
    prepare_sequence_events,
)
from predictions.ml.sequences.model import SequenceChurnModel, train_sequence_churn

ENSEMBLE = "ensemble"
SEQUENCE = "sequence"
XGBOOST = "xgboost"
# Sequences look back as far as the tree features do: scoring loads only that window.
SEQUENCE_LOOKBACK_DAYS = MAX_LOOKBACK_DAYS
DEFAULT_SEQUENCE_EVENTS = 5
# Stream of the seeded generator that draws the ensemble replicas' calibration halves (the
# candidates use their index in churn.CANDIDATES).
REPLICA_STREAM = 101
SAMPLE_STREAM = 102


@dataclass(frozen=True)
class EnsembleFit:
    """What `fit_churn_ensemble` returns: the ensemble (None when not trained), why not, the
    figures for the report, and the calibration split's cross-fitted log loss and AUC."""

    ensemble: ChurnEnsemble | None
    reason: str | None
    report: dict[str, Any]
    selection_log_loss: float | None = None
    selection_roc_auc: float | None = None
    calibration_method: str | None = None


def encode_rows(
    *,
    events: SequenceEvents,
    member_ids: np.ndarray,
    cutoffs: np.ndarray,
    cutoff_of: Mapping[str, pd.Timestamp],
    vocabulary: SequenceVocabulary,
    length: int,
    lookback_days: int,
) -> EncodedSequences:
    """Sequences of (member, cutoff label) rows in row order; `cutoff_of` maps each label to
    its timestamp (churn rows carry the cutoff's date)."""
    labels = np.asarray(cutoffs, dtype=object)
    parts, positions = [], []
    for label in pd.unique(labels):
        rows = np.flatnonzero(labels == label)
        parts.append(
            encode_sequences(
                events=events,
                member_ids=np.asarray(member_ids)[rows],
                cutoff=cutoff_of[str(label)],
                length=length,
                vocabulary=vocabulary,
                lookback_days=lookback_days,
            )
        )
        positions.append(rows)
    stacked = concat_sequences(parts)
    order = np.empty(len(labels), dtype="int64")
    order[np.concatenate(positions)] = np.arange(len(labels))
    return stacked.take(order)


def encode_members(
    *, ensemble: ChurnEnsemble, events: pd.DataFrame | SequenceEvents, member_ids, cutoff
) -> EncodedSequences:
    """The sequences an ensemble scores `member_ids` with at `cutoff` (its vocabulary, length
    and lookback). `events` may hold only the lookback window (what scoring loads)."""
    prepared = events if isinstance(events, SequenceEvents) else prepare_sequence_events(events)
    model = ensemble.sequence_model
    return encode_sequences(
        events=prepared,
        member_ids=np.asarray(member_ids, dtype="int64"),
        cutoff=cutoff,
        length=model.length,
        vocabulary=model.vocabulary,
        lookback_days=ensemble.lookback_days,
    )


def fit_churn_ensemble(
    *,
    events: SequenceEvents,
    train: Rows,
    validation: Rows,
    calibration_rows: Rows,
    cutoff_of: Mapping[str, pd.Timestamp],
    trees: ChurnCandidate,
    stopped_trees: Any,
    config: ChurnConfig,
    progress: Progress | None = None,
) -> EnsembleFit:
    """Train the GRU and the ensemble on churn's rows (see the module docstring).

    `train`, `validation`, `calibration_rows` are churn's row sets (`churn.rows.Rows`):
    the early-stopping training rows (history only), the validation rows, the calibration
    rows. `trees` is the fitted xgboost candidate, `stopped_trees` the early-stopping booster's
    scorer. Returns an EnsembleFit without an ensemble, and the reason, when there are too few
    rows or a split holds one class. `progress` (churn training's) hears the GRU's epochs and
    the ensemble's calibration.
    """
    report: dict[str, Any] = {"trained": False, "reason": None}
    if len(train.y) < config.sequence_min_rows:
        reason = (
            f"{len(train.y)} sequence training rows, fewer than sequence_min_rows "
            f"({config.sequence_min_rows})"
        )
        return EnsembleFit(None, reason, {**report, "reason": reason})
    progress = progress or Progress(None, {SEQUENCE_MODEL: 1.0, ENSEMBLE_CALIBRATION: 1.0})
    epochs = progress.part(SEQUENCE_MODEL)
    train = _capped(train, config)
    latest_training = max(cutoff_of[str(label)] for label in pd.unique(train.cutoff))
    vocabulary = learn_vocabulary(events=events, cutoff=latest_training)

    def encode(rows) -> EncodedSequences:
        return encode_rows(
            events=events,
            member_ids=rows.member_id,
            cutoffs=rows.cutoff,
            cutoff_of=cutoff_of,
            vocabulary=vocabulary,
            length=config.sequence_length,
            lookback_days=SEQUENCE_LOOKBACK_DAYS,
        )

    train_seq, valid_seq, calib_seq = encode(train), encode(validation), encode(calibration_rows)
    started = time.perf_counter()
    try:
        model = train_sequence_churn(
            train=train_seq,
            train_labels=train.y,
            validation=valid_seq,
            validation_labels=validation.y,
            config=config.sequence_model,
            progress=epochs,
        )
    except SingleClassError as error:
        return EnsembleFit(None, str(error), {**report, "reason": str(error)})
    seconds = time.perf_counter() - started
    progress.stage(ENSEMBLE_CALIBRATION)

    stacker = fit_stacker(
        tree_margin=stopped_trees.margin(validation.x),
        sequence_margin=model.predict_margin(valid_seq),
        y=validation.y,
    )
    calib_y = calibration_rows.y
    sequence_margin = model.predict_margin(calib_seq)
    margin = stacked_margin(
        stacker=stacker,
        tree_margin=trees.scorer.margin(calibration_rows.x),
        sequence_margin=sequence_margin,
    )
    method, losses = calibration.choose_method(
        margin=margin, labels=calib_y, requested=config.calibration, seed=config.seed
    )
    sequence_method, sequence_losses = calibration.choose_method(
        margin=sequence_margin, labels=calib_y, requested=config.calibration, seed=config.seed
    )
    rng = np.random.default_rng([config.seed, REPLICA_STREAM])
    replica_calibrators = []
    for scorer, _ in trees.bootstrap:
        half = np.sort(rng.permutation(len(calib_y))[: len(calib_y) // 2])
        replica_margin = stacked_margin(
            stacker=stacker,
            tree_margin=scorer.margin(calibration_rows.x[half]),
            sequence_margin=sequence_margin[half],
        )
        replica_calibrators.append(
            calibration.fit_calibrator(margin=replica_margin, labels=calib_y[half], method=method)
        )
    ensemble = ChurnEnsemble(
        sequence_model=model,
        stacker=stacker,
        calibrator=calibration.fit_calibrator(margin=margin, labels=calib_y, method=method),
        conformal=conformal.fit_mondrian_binary(
            margin=margin, labels=calib_y, coverage=config.label_set_coverage
        ),
        bootstrap_calibrators=tuple(replica_calibrators),
        sequence_calibrator=calibration.fit_calibrator(
            margin=sequence_margin, labels=calib_y, method=sequence_method
        ),
        sequence_conformal=conformal.fit_mondrian_binary(
            margin=sequence_margin, labels=calib_y, coverage=config.label_set_coverage
        ),
        lookback_days=SEQUENCE_LOOKBACK_DAYS,
    )
    epochs = model.history
    report = {
        "trained": True,
        "reason": None,
        "architecture": "GRU over the last `length` events (kind, category, channel "
        "embeddings; log amount, log gap, log dwell, log age), head on the last state",
        "length": model.length,
        "lookback_days": SEQUENCE_LOOKBACK_DAYS,
        "rows": {
            "train": len(train.y),
            "validation": len(validation.y),
            "calibration": len(calib_y),
        },
        "training": "early-stopping rows (members validation does not hold out), stopped on "
        "the validation rows' log loss; not refit on the held-out members",
        "best_epoch": model.best_epoch,
        "epochs": len(epochs),
        "training_seconds": round(seconds, 3),
        "train_sequences_per_second": round(
            len(train.y) * len(epochs) / max(sum(e.train_seconds for e in epochs), 1e-9), 1
        ),
        "config": asdict(config.sequence_model),
        "stacker": {
            **stacker.to_json(),
            "fitted_on": "validation split only: the early-stopping booster's and the GRU's "
            "margins, both fitted without the held-out members",
        },
        "calibration": method,
        "sequence_calibration": sequence_method,
        "sequence_selection_log_loss": sequence_losses[sequence_method],
    }
    return EnsembleFit(
        ensemble=ensemble,
        reason=None,
        report=report,
        selection_log_loss=losses[method],
        selection_roc_auc=_auc(calib_y, margin),
        calibration_method=method,
    )


def evaluate_sequence_models(
    *,
    bundle: ChurnBundle,
    features: pd.DataFrame,
    events: SequenceEvents,
    cutoff: pd.Timestamp,
    labels: np.ndarray,
    nominal_coverage: float,
) -> dict[str, dict[str, Any]]:
    """Out-of-time metrics of the GRU alone (calibrated, its own label sets, no interval) and
    of the ensemble (like every candidate), on the rows of `features` at `cutoff`."""
    ensemble = bundle.ensemble
    sequences = encode_members(
        ensemble=ensemble, events=events, member_ids=features.index, cutoff=cutoff
    )
    sequence_margin = ensemble.sequence_model.predict_margin(sequences)
    out = {
        SEQUENCE: binary_metrics(
            labels=labels,
            probability=ensemble.sequence_calibrator.probability(sequence_margin),
            label_sets=ensemble.sequence_conformal.sets(sequence_margin),
            nominal_coverage=nominal_coverage,
        )
    }
    out[SEQUENCE]["calibration"] = ensemble.sequence_calibrator.method
    prediction = predict_churn_ensemble(
        bundle=bundle, features=features, sequences=sequences, explain_top_k=0
    )
    out[ENSEMBLE] = binary_metrics(
        labels=labels,
        probability=prediction.probability,
        label_sets=prediction.label_sets,
        nominal_coverage=nominal_coverage,
        low=prediction.low,
        high=prediction.high,
    )
    out[ENSEMBLE]["calibration"] = ensemble.calibrator.method
    return out


def predict_churn_ensemble(
    *,
    bundle: ChurnBundle,
    features: pd.DataFrame,
    sequences: EncodedSequences,
    explain_top_k: int = 5,
    with_interval: bool = True,
    sequence_events: int = 0,
    attribution_recent_events: int | None = None,
) -> ChurnPrediction:
    """Score with the ensemble: `sequences` must be `encode_members` of the same members in
    the same order as `features`' index, at the same cutoff. `sequence_events` > 0 also names
    that many events per member that moved the ensemble margin most (occlusion of each of the
    latest `attribution_recent_events` events, all when None)."""
    ensemble = bundle.ensemble
    if ensemble is None:
        raise ValueError("this bundle has no tree + sequence ensemble")
    ids = features.index.to_numpy(dtype="int64")
    if not np.array_equal(np.asarray(sequences.member_ids), ids):
        raise ValueError("sequences and features must hold the same members in the same order")
    trees = bundle.candidates[XGBOOST]
    stacker: Stacker = ensemble.stacker
    x = feature_matrix(features, bundle.feature_codes)
    sequence_margin = ensemble.sequence_model.predict_margin(sequences)
    margin = stacked_margin(
        stacker=stacker, tree_margin=trees.scorer.margin(x), sequence_margin=sequence_margin
    )
    probability = ensemble.calibrator.probability(margin)
    coverage = bundle.config.interval_coverage
    if with_interval:
        replicas = np.stack(
            [
                calibrator.probability(
                    stacked_margin(
                        stacker=stacker,
                        tree_margin=scorer.margin(x),
                        sequence_margin=sequence_margin,
                    )
                )
                for (scorer, _), calibrator in zip(
                    trees.bootstrap, ensemble.bootstrap_calibrators, strict=True
                )
            ]
        )
        low, high = probability_interval(
            probability=probability, replicas=replicas, coverage=coverage
        )
    else:
        low, high = probability.copy(), probability.copy()
    sets = ensemble.conformal.sets(margin)
    confidence = confidence_from(set_sizes=sets.sum(axis=1), n_labels=2, low=low, high=high)
    explanation = None
    if explain_top_k > 0:
        explanation = ensemble_explanation(
            contributions=ensemble_contributions(
                stacker=stacker,
                tree_contributions=trees.scorer.contributions(x),
                sequence_margin=sequence_margin,
            ),
            values=x,
            feature_codes=bundle.feature_codes,
            k=explain_top_k,
        )
    events = None
    if sequence_events > 0:
        events = top_sequence_events(
            model=ensemble.sequence_model,
            sequences=sequences,
            weight=stacker.sequence_weight,
            k=sequence_events,
            recent_events=attribution_recent_events,
        )
    return ChurnPrediction(
        member_ids=ids,
        model=ENSEMBLE,
        probability=probability,
        low=low,
        high=high,
        label_sets=sets,
        confidence=confidence,
        interval_coverage=coverage,
        label_set_coverage=ensemble.conformal.coverage,
        explanation=explanation,
        sequence_events=events,
    )


def ensemble_explanation(
    *, contributions: np.ndarray, values: np.ndarray, feature_codes: tuple[str, ...], k: int
) -> Explanation:
    """The trees' top-k (scaled) contributions plus the `behavior_sequence` item, sorted by
    absolute size; `contributions` is `ensemble.ensemble_contributions`' (n, F + 2) layout.

    base + sum(top) + remainder == margin (the ensemble's) for every row: the sequence item is
    always in the top, so the remainder holds only the trees' smaller features.
    """
    contributions = np.asarray(contributions, dtype="float64")
    n_features = len(feature_codes)
    trees = np.column_stack([contributions[:, :n_features], contributions[:, -1]])
    tree_part = top_contributions(
        contributions=trees, values=values, feature_codes=feature_codes, k=k
    )
    n = len(contributions)
    index = np.column_stack([tree_part.top_index, np.full(n, n_features, dtype="int64")])
    shown = np.column_stack([tree_part.top_value, np.full(n, np.nan)])
    top = np.column_stack([tree_part.top_contribution, contributions[:, n_features]])
    order = np.argsort(-np.abs(top), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    base = contributions[:, -1]
    margin = contributions.sum(axis=1)
    return Explanation(
        feature_codes=(*feature_codes, SEQUENCE_ITEM),
        base_value=base,
        margin=margin,
        top_index=np.take_along_axis(index, order, axis=1),
        top_value=np.take_along_axis(shown, order, axis=1),
        top_contribution=top,
        remainder=margin - base - top.sum(axis=1),
    )


def top_sequence_events(
    *,
    model: SequenceChurnModel,
    sequences: EncodedSequences,
    weight: float,
    k: int,
    recent_events: int | None = None,
) -> tuple[list[dict[str, Any]], ...]:
    """Per row, the k events whose removal changes the ensemble margin most (by |change|):
    {"occurred_at": ISO 8601 UTC to the microsecond, "kind", "category", "channel",
    "attribution"} (category and channel as the model knew them: "(unknown)" for a value
    first seen after its training, "" for none);
    attribution is weight x (GRU margin with the event - without it), in the ensemble's
    log-odds, positive when the event pushed the churn risk up. Only the latest
    `recent_events` events are occluded when given (the cost grows with its square). Members
    without events get [], and so does everyone when the stacker gave the sequence no weight
    (then no event moves the ensemble at all)."""
    n = len(sequences)
    if n == 0 or k <= 0 or weight == 0:
        return tuple([] for _ in range(n))
    occluded = occlusion_attribution(model=model, encoded=sequences, recent_events=recent_events)
    attribution = occluded.attribution * weight
    considered = sequences.mask & (_recent_rank(sequences.mask) < (recent_events or np.inf))
    size = np.where(considered, np.abs(attribution), -1.0)
    picked = np.argsort(-size, axis=1, kind="stable")[:, :k]
    rows = np.repeat(np.arange(n), picked.shape[1])
    positions = picked.ravel()
    real = considered[rows, positions]
    stamps = pd.DatetimeIndex(sequences.occurred_at[rows, positions]).tz_localize("UTC")
    stamps = stamps.floor("us")  # as the database stores them
    kinds = np.asarray(("", "(unknown)", *sequences.vocabulary.kinds), dtype=object)
    categories = np.asarray(("", "(unknown)", "", *sequences.vocabulary.categories), dtype=object)
    channels = np.asarray(("", "(unknown)", "", *sequences.vocabulary.channels), dtype=object)
    kind_codes = sequences.kind[rows, positions]
    kind_names = kinds[np.where(kind_codes >= FIRST_KIND_CODE, kind_codes, 1)].tolist()
    category_names = categories[sequences.category[rows, positions]].tolist()
    channel_names = channels[sequences.channel[rows, positions]].tolist()
    values = attribution[rows, positions].tolist()
    out: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    for i, row in enumerate(rows.tolist()):
        if real[i]:
            out[row].append(
                {
                    "occurred_at": stamps[i].isoformat(),
                    "kind": kind_names[i],
                    "category": category_names[i],
                    "channel": channel_names[i],
                    "attribution": values[i],
                }
            )
    return tuple(out)


def _recent_rank(mask: np.ndarray) -> np.ndarray:
    """Per position, how many real events come after it in its row (0 for the latest)."""
    after = np.cumsum(mask[:, ::-1], axis=1)[:, ::-1]
    return after - mask


def _capped(rows: Rows, config: ChurnConfig) -> Rows:
    """At most `sequence_max_rows` rows: a seeded sample of members, all their cutoffs."""
    if len(rows.y) <= config.sequence_max_rows:
        return rows
    members, counts = np.unique(rows.member_id, return_counts=True)
    order = np.random.default_rng([config.seed, SAMPLE_STREAM]).permutation(len(members))
    kept = members[order][np.cumsum(counts[order]) <= config.sequence_max_rows]
    return take_rows(rows, np.isin(rows.member_id, kept))


def _auc(y: np.ndarray, score: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else None
