"""Churn: train candidates on stacked past cutoffs, pick one honestly, score with confidence.

Time decides every split (`churn.rows`): the oldest cutoffs train, the next stops boosting early
on held-out members, the latest calibrates. Candidates are compared out of time at rolling
origins, refit on the label windows that end by each (`churn.selection`): the best wins unless a
simpler one is not significantly worse, baseline or not; the tree + sequence ensemble
(`churn.sequence`) is the most complex. Calibration then follows the season being scored
(`churn.shift`).
People's labeled examples join the training rows only: early stopping, calibration, selection
and evaluation stay on history, so a reviewed sample unlike the population cannot bend the
probability scale. No resampling or class weights: they would distort the probabilities that
calibration and routing rely on.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from predictions.ml import frames
from predictions.ml.churn import stages
from predictions.ml.churn.candidates import (
    BASELINES,
    CANDIDATES,
    ENSEMBLE,
    SELECTION_ORDER,
    SEQUENCE,
    XGBOOST,
    finish_candidate,
    fit_bgnbd,
    fit_scorers,
    refit,
)
from predictions.ml.churn.candidates import BGNBD as BGNBD
from predictions.ml.churn.candidates import RECENCY as RECENCY
from predictions.ml.churn.candidates import RFM_LOGISTIC as RFM_LOGISTIC
from predictions.ml.churn.panel import Panel, budgeted_rows, build_panel, panel_report
from predictions.ml.churn.rows import (
    LabeledRows,
    Splits,
    feature_matrix,
    model_feature_codes,
    qualifying_span,
    require_both_classes,
    split_rows,
    training_cutoffs,
    with_labeled,
)
from predictions.ml.churn.selection import (
    rolling_selection,
    served_candidates,
    simplest_within,
)
from predictions.ml.churn.shift import shift_for_season
from predictions.ml.confidence import confidence_from, probability_interval
from predictions.ml.contracts import (
    ChurnBundle,
    ChurnCandidate,
    ChurnConfig,
    ChurnPrediction,
    ChurnTrainingResult,
    InsufficientHistoryError,
)
from predictions.ml.explain import sampled_importance, top_contributions
from predictions.ml.features import PreparedEvents, prepare_events
from predictions.ml.metrics import binary_metrics
from predictions.ml.progress import Progress, ProgressCallback
from predictions.ml.scorers import TreeScorer

if TYPE_CHECKING:  # torch is imported only when a sequence model is trained or scored
    from predictions.ml.sequences.encoding import EncodedSequences, SequenceEvents

DEFAULT_TOP_K = 5


def train_churn(
    *,
    events: pd.DataFrame | PreparedEvents,
    members: pd.DataFrame,
    cutoff: object,
    horizon_days: int,
    config: ChurnConfig | None = None,
    labeled: LabeledRows | None = None,
    sequence_events: SequenceEvents | None = None,
    progress: ProgressCallback | None = None,
) -> ChurnTrainingResult:
    """Train, select, calibrate and evaluate churn models (see the module docstring).

    The sequence model needs the events frame (or `sequence_events`, from
    `sequences.encoding.prepare_sequence_events`): with `events` given as PreparedEvents alone
    it is not trained, and the report says why.

    `progress` hears the stages (`churn.stages`) and each cutoff, fit, refit and epoch.

    Raises InsufficientHistoryError when fewer than two training cutoffs fit in the data,
    SingleClassError when a split holds one class only.
    """
    config = config or ChurnConfig()
    if config.bootstrap_models < 2:
        raise ValueError("bootstrap_models must be at least 2 for an interval")
    tracker = Progress(progress, stages.progress_plan(config))
    tracker.stage(stages.PREPARING)
    if config.sequence and sequence_events is None and not isinstance(events, PreparedEvents):
        from predictions.ml.sequences.encoding import prepare_sequence_events

        sequence_events = prepare_sequence_events(events)
    prepared = events if isinstance(events, PreparedEvents) else prepare_events(events)
    roster = frames.normalize_members(members)
    cutoff_ts = frames.to_utc_timestamp(cutoff)
    first_event, last_event = qualifying_span(prepared, config.qualifying_kinds)
    cutoffs = training_cutoffs(
        first_event=first_event, cutoff=cutoff_ts, horizon_days=horizon_days, config=config
    )
    if len(cutoffs) < 2:
        raise InsufficientHistoryError(
            f"only {len(cutoffs)} training cutoff(s) fit between the first qualifying event "
            f"({first_event.date()}) + {config.min_history_days} days and the cutoff "
            f"({cutoff_ts.date()}) - horizon ({horizon_days} days); at least 2 are needed"
        )
    codes = model_feature_codes(config, cutoffs)
    tracker.stage(stages.FEATURES, total=len(cutoffs))
    built = build_panel(
        prepared=prepared,
        roster=roster,
        cutoffs=cutoffs,
        horizon_days=horizon_days,
        config=config,
        codes=codes,
        on_cutoff=lambda c: tracker.step(detail=f"cutoff {c.date()}"),
    )
    panel = built.rows
    splits = split_rows(
        panel,
        seed=config.seed,
        held_out_share=config.validation_member_share,
        max_training_rows=config.max_training_rows,
    )
    history = splits
    if labeled is not None and len(labeled):
        splits = with_labeled(splits, labeled.rows(codes))
    train, calib = splits.train, splits.calibration
    for name, rows in (
        ("train", splits.train),
        ("early-stopping train", splits.early_stopping),
        ("validation", splits.validation),
        ("calibration", splits.calibration),
    ):
        require_both_classes(name, rows)

    scorers, dtrain, stopped = fit_scorers(splits, codes, config, tracker)
    scorers |= fit_bgnbd(train, codes, horizon_days)
    candidates, selection = {}, {}
    tracker.stage(stages.REFITTING, total=len(scorers) * config.bootstrap_models)
    for name in (name for name in CANDIDATES if name in scorers):
        candidates[name], selection[name] = finish_candidate(
            name, scorers[name], train, dtrain, calib, config, tracker
        )
    ensemble, sequence_report = _fit_ensemble(
        config, sequence_events, history, cutoffs, candidates[XGBOOST], stopped, selection, tracker
    )
    log_losses = {name: selection[name]["log_loss"] for name in selection}
    order = _served_order(config)
    rolling = rolling_selection(
        panel=panel,
        cutoffs=cutoffs,
        horizon_days=horizon_days,
        scorers={name: c.scorer for name, c in candidates.items() if name in order},
        methods={name: selection[name]["calibration"] for name in order if name in candidates},
        order=order,
        refit=lambda scorer, rows: refit(scorer, rows, dtrain, config, replica=-1),
        seed=config.seed,
    )
    selected, overall, served_because = served_candidates(
        rolling=rolling,
        log_losses=log_losses,
        candidates=tuple(candidates),
        tolerance=config.selection_tolerance,
        order=order,
    )
    if ensemble is not None:
        ensemble = replace(ensemble, selected=overall == ENSEMBLE)

    shifted = shift_for_season(
        candidates,
        ensemble=ensemble,
        sequence_events=sequence_events,
        prepared=prepared,
        roster=roster,
        cutoff=cutoff_ts,
        first_event=first_event,
        horizon_days=horizon_days,
        config=config,
        codes=codes,
        budget=built.rows_per_cutoff,
    )
    candidates, ensemble = shifted.candidates, shifted.ensemble
    bundle = ChurnBundle(
        feature_codes=codes,
        config=config,
        candidates=candidates,
        selected=selected,
        horizon_days=horizon_days,
        trained_cutoff=cutoff_ts.isoformat(),
        training_cutoffs=tuple(c.isoformat() for c in cutoffs),
        ensemble=ensemble,
    )
    tracker.stage(stages.EVALUATION)
    evaluation, eval_counts, reason = _evaluate(
        bundle, prepared, roster, cutoff_ts, last_event, horizon_days, built, sequence_events
    )
    importance = sampled_importance(
        scorer=candidates[XGBOOST].scorer,
        x=calib.x,
        feature_codes=codes,
        sample_rows=config.importance_sample_rows,
        seed=config.seed,
    )
    tracker.finish()
    report = {
        "model": evaluation.get(XGBOOST, {}),
        "baselines": {name: evaluation.get(name, {}) for name in BASELINES if name in candidates},
        "sequence": evaluation.get(SEQUENCE, {}),
        "ensemble": evaluation.get(ENSEMBLE, {}),
        "selected": overall,
        "selected_without_sequence": selected,
        "selection": {
            "rule": "the rolling-origin winner (see rolling.rule); the ensemble when it beats "
            "that winner's cross-fitted log loss on the calibration split (time-latest, "
            "`log_loss` below) by more than the tolerance; without an origin, the simplest "
            "candidate within the tolerance of the best calibration-split log loss (order: "
            + ", ".join(order)
            + ")",
            "tolerance": config.selection_tolerance,
            "log_loss": log_losses,
            "roc_auc": {name: selection[name]["roc_auc"] for name in selection},
            "calibration": {name: selection[name]["calibration"] for name in selection},
            "rolling": None if rolling is None else rolling.report,
            "served": overall,
            "served_because": served_because,
        },
        "sequence_model": sequence_report,
        "calibration_shift": shifted.report,
        "evaluation": {
            "available": reason is None,
            "reason": reason,
            "cutoff": cutoff_ts.isoformat(),
            "label_window_end": (cutoff_ts + pd.Timedelta(days=horizon_days)).isoformat(),
            "data_end": last_event.isoformat(),
        },
        "rows": {
            "train": len(train.y),
            "early_stopping_train": len(splits.early_stopping.y),
            "validation": len(splits.validation.y),
            "calibration": len(calib.y),
            "evaluation": 0 if eval_counts is None else eval_counts["kept"],
            "labeled": 0 if labeled is None else len(labeled),
            "labeled_weight": 0.0 if labeled is None else float(np.sum(labeled.weight)),
            "train_churn_rate": float(train.y.mean()),
            "validation_churn_rate": float(splits.validation.y.mean()),
            "calibration_churn_rate": float(calib.y.mean()),
        },
        "row_budget": panel_report(built, config, eval_counts),
        "cutoffs": [c.isoformat() for c in cutoffs],
        "split_cutoffs": {
            "train": sorted({str(c) for c in train.cutoff}),
            "validation": sorted({str(c) for c in splits.validation.cutoff}),
            "calibration": sorted({str(c) for c in calib.cutoff}),
        },
        "horizon_days": horizon_days,
        "boosting_rounds": int(candidates[XGBOOST].scorer.booster.num_boosted_rounds()),
        "confidence": {
            "interval": "t-interval in logit space from half-sample refits of the candidate "
            "and its calibrator (estimation uncertainty of the probability)",
            "interval_coverage": config.interval_coverage,
            "replicas": config.bootstrap_models,
            "label_sets": "class-conditional (Mondrian) split conformal on the margin, "
            "fitted on the calibration split",
            "label_set_coverage": config.label_set_coverage,
            "ensemble_interval": "the xgboost candidate's half-sample replicas stacked with "
            "the sequence share held fixed (the GRU is not refit per replica), each with a "
            "calibrator refit on half the calibration rows: it covers the trees' and the "
            "calibration's sampling spread, not the GRU's, so it is narrower than a full "
            "refit of both would give",
            "ensemble_label_sets": "Mondrian split conformal on the ensemble margin, fitted on "
            "the calibration split",
        },
        "feature_importance_of": XGBOOST,
        "feature_importance": importance,
        "config": _json_config(config),
    }
    return ChurnTrainingResult(bundle=bundle, report=report)


def predict_churn(
    *,
    bundle: ChurnBundle,
    features: pd.DataFrame,
    candidate: str | None = None,
    explain_top_k: int = DEFAULT_TOP_K,
    with_interval: bool = True,
    sequences: EncodedSequences | None = None,
    sequence_events: int = 0,
    attribution_recent_events: int | None = None,
) -> ChurnPrediction:
    """Score a feature matrix (from `build_features`, index member_id) with one candidate.

    The selected candidate unless `candidate` names another. `explain_top_k=0` skips SHAP.
    `with_interval=False` skips the bootstrap replicas: low = high = probability.
    `candidate="ensemble"` scores with the tree + sequence ensemble and needs `sequences`
    (`churn.sequence.encode_members` of the same members, same order, same cutoff);
    `sequence_events` > 0 then also names the events that moved it most, per member, among
    its latest `attribution_recent_events` (all when None).
    """
    if candidate == ENSEMBLE:
        if sequences is None:
            raise ValueError("the ensemble scores event sequences: pass `sequences`")
        from predictions.ml.churn.sequence import predict_churn_ensemble

        return predict_churn_ensemble(
            bundle=bundle,
            features=features,
            sequences=sequences,
            explain_top_k=explain_top_k,
            with_interval=with_interval,
            sequence_events=sequence_events,
            attribution_recent_events=attribution_recent_events,
        )
    chosen = bundle.candidates[candidate or bundle.selected]
    x = feature_matrix(features, bundle.feature_codes)
    margin = chosen.scorer.margin(x)
    probability = chosen.calibrator.probability(margin)
    coverage = bundle.config.interval_coverage
    if with_interval:
        replicas = np.stack([cal.probability(sc.margin(x)) for sc, cal in chosen.bootstrap])
        low, high = probability_interval(
            probability=probability, replicas=replicas, coverage=coverage
        )
    else:
        low, high = probability.copy(), probability.copy()
    sets = chosen.conformal.sets(margin)
    confidence = confidence_from(set_sizes=sets.sum(axis=1), n_labels=2, low=low, high=high)
    explanation = None
    if explain_top_k > 0:
        explanation = top_contributions(
            contributions=chosen.scorer.contributions(x),
            values=x,
            feature_codes=bundle.feature_codes,
            k=explain_top_k,
        )
    return ChurnPrediction(
        member_ids=features.index.to_numpy(dtype="int64"),
        model=chosen.name,
        probability=probability,
        low=low,
        high=high,
        label_sets=sets,
        confidence=confidence,
        interval_coverage=coverage,
        label_set_coverage=chosen.conformal.coverage,
        explanation=explanation,
    )


def _fit_ensemble(
    config: ChurnConfig,
    sequence_events: SequenceEvents | None,
    history: Splits,
    cutoffs: list[pd.Timestamp],
    trees: ChurnCandidate,
    stopped: TreeScorer,
    selection: dict[str, dict[str, Any]],
    progress: Progress,
) -> tuple[Any, dict[str, Any]]:
    """The tree + sequence ensemble on the history rows of the splits (labeled examples carry
    no event sequence), or None and why not. Adds its selection figures to `selection`."""
    if not config.sequence:
        return None, {"trained": False, "reason": "disabled (config.sequence is False)"}
    if sequence_events is None:
        reason = "no events frame to encode sequences from (events were given prepared)"
        return None, {"trained": False, "reason": reason}
    from predictions.ml.churn.sequence import fit_churn_ensemble

    fitted = fit_churn_ensemble(
        events=sequence_events,
        train=history.early_stopping,
        validation=history.validation,
        calibration_rows=history.calibration,
        cutoff_of={c.date().isoformat(): c for c in cutoffs},
        trees=trees,
        stopped_trees=stopped,
        config=config,
        progress=progress,
    )
    if fitted.ensemble is not None:
        selection[ENSEMBLE] = {
            "log_loss": fitted.selection_log_loss,
            "roc_auc": fitted.selection_roc_auc,
            "calibration": fitted.calibration_method,
        }
    return fitted.ensemble, fitted.report


def _served_order(config: ChurnConfig) -> tuple[str, ...]:
    """SELECTION_ORDER, cut to `config.served_candidates` when it names any."""
    allowed = config.served_candidates
    return tuple(name for name in SELECTION_ORDER if not allowed or name in allowed)


def select_candidate(*, log_losses: dict[str, float], tolerance: float) -> str:
    """The simplest candidate within `tolerance` of the best (`selection.simplest_within`)."""
    return simplest_within(log_losses=log_losses, tolerance=tolerance, order=SELECTION_ORDER)


def _evaluate(
    bundle: ChurnBundle,
    prepared: PreparedEvents,
    roster: pd.DataFrame,
    cutoff: pd.Timestamp,
    last_event: pd.Timestamp,
    horizon_days: int,
    panel: Panel,
    sequence_events: SequenceEvents | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, int] | None, str | None]:
    """Out-of-time metrics per candidate (and of the GRU alone and the ensemble, when there is
    one) at `cutoff` on the panel's row budget, with the active and kept member counts there,
    or why there are none."""
    config = bundle.config
    window_end = cutoff + pd.Timedelta(days=horizon_days)
    # The last day of the label window must be in the data, or absence means nothing.
    if last_event < window_end - pd.Timedelta(days=1):
        reason = (
            f"the data ends {last_event.date()}, before the label window "
            f"[{cutoff.date()}, {window_end.date()}) closes: no out-of-time evaluation"
        )
        return {}, None, reason
    rows, counts = budgeted_rows(
        prepared, roster, cutoff, horizon_days, config, bundle.feature_codes, panel.rows_per_cutoff
    )
    if len(rows.y) == 0:
        return {}, counts, "no member is active at the cutoff"
    features = pd.DataFrame(rows.x, index=rows.member_id, columns=list(bundle.feature_codes))
    out = {}
    for name in bundle.candidates:
        prediction = predict_churn(
            bundle=bundle, features=features, candidate=name, explain_top_k=0
        )
        out[name] = binary_metrics(
            labels=rows.y,
            probability=prediction.probability,
            label_sets=prediction.label_sets,
            nominal_coverage=config.label_set_coverage,
            low=prediction.low,
            high=prediction.high,
        )
        out[name]["calibration"] = bundle.candidates[name].calibrator.method
    if bundle.ensemble is not None and sequence_events is not None:
        from predictions.ml.churn.sequence import evaluate_sequence_models

        out |= evaluate_sequence_models(
            bundle=bundle,
            features=features,
            events=sequence_events,
            cutoff=cutoff,
            labels=rows.y,
            nominal_coverage=config.label_set_coverage,
        )
    return out, counts, None


def _json_config(config: ChurnConfig) -> dict[str, Any]:
    data = asdict(config)
    data["qualifying_kinds"] = list(config.qualifying_kinds)
    return data
