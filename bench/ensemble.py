"""The sequence model and the tree + sequence ensemble: training and scoring throughput, and the
out-of-time figures of trees, sequence model and ensemble. No database.

    .venv/bin/python bench/ensemble.py --members 20000     # generated data (tests/ml/conftest)
    .venv/bin/python bench/ensemble.py --complete-journey  # The Complete Journey (bundled data)

Trains churn with the default ChurnConfig (trees, baselines, the GRU and the ensemble, as
`manage.py train` does) and prints:
- training: seconds in all, the GRU's rows, epochs and training throughput (sequences per
  second over its training passes);
- scoring throughput on every member at the cutoff, in members (= sequences) per second:
  the trees as scoring uses them (probability, interval, label set, SHAP), encoding the
  sequences, the GRU's forward pass, the ensemble without and with the stored attribution
  (exact occlusion of every event, top 5), and occlusion of only the latest 32 events;
- how often occluding only the latest 32 events finds the same top 5 as occluding all;
- the out-of-time figures of every model (ROC AUC, PR AUC, log loss, Brier, ECE, label-set
  coverage), the stacker's weights, and what the selection rule picked.
Everything runs on one thread (torch and XGBoost), as one Celery worker does.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from predictions.ml import labels  # noqa: E402
from predictions.ml.churn.model import ENSEMBLE, predict_churn, train_churn  # noqa: E402
from predictions.ml.churn.sequence import encode_members, top_sequence_events  # noqa: E402
from predictions.ml.contracts import (  # noqa: E402
    ATTRIBUTION_RECENT_EVENTS,
    STORED_SEQUENCE_EVENTS,
    ChurnConfig,
)
from predictions.ml.features import build_features, prepare_events  # noqa: E402
from predictions.ml.sequences.attribution import occlusion_attribution  # noqa: E402

SEED = 7
# The cheaper attribution scope the bench compares with occluding every event.
RECENT_COMPARED = 32
BOOTSTRAP_RESAMPLES = 1000
AGREEMENT_SAMPLE = 1000
METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "coverage", "base_rate", "n")
ENTRIES = ("model", "sequence", "ensemble", "recency", "rfm_logistic")


def timed(function):
    started = time.perf_counter()
    value = function()
    return value, time.perf_counter() - started


def rate(label: str, rows: int, seconds: float) -> None:
    print(f"  {label:<46}{rows / seconds:>12,.0f} /s   ({rows:,} in {seconds:.2f} s)")


def data(args) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp, int, str]:
    if args.complete_journey:
        from ml_complete_journey import complete_journey_events

        events, members = complete_journey_events()
        cutoff = pd.Timestamp(args.cutoff or "2017-10-01", tz="UTC")
        return events, members, cutoff, args.horizon or 90, "The Complete Journey"
    from tests.ml.conftest import CUTOFF, HORIZON, make_loyalty_data

    generated = make_loyalty_data(n_members=args.members, seed=SEED)
    cutoff = pd.Timestamp(args.cutoff, tz="UTC") if args.cutoff else CUTOFF
    name = f"generated data, {args.members:,} members"
    return generated.events, generated.members, cutoff, args.horizon or HORIZON, name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--complete-journey", action="store_true")
    parser.add_argument("--cutoff", help="YYYY-MM-DD (default: the data set's own)")
    parser.add_argument("--horizon", type=int)
    args = parser.parse_args()

    (events, members, cutoff, horizon, name), seconds = timed(lambda: data(args))
    print(f"{name}: {len(events):,} events, {len(members):,} members ({seconds:.1f} s)")
    config = ChurnConfig()
    result, seconds = timed(
        lambda: train_churn(
            events=events,
            members=members,
            cutoff=cutoff,
            horizon_days=horizon,
            config=config,
        )
    )
    report, bundle = result.report, result.bundle
    sequence = report["sequence_model"]
    print(f"\ntraining at {cutoff.date()}, horizon {horizon} days: {seconds:.1f} s in all")
    if not sequence["trained"]:
        print(f"  no sequence model: {sequence['reason']}")
        return
    train_seconds = sequence["training_seconds"]
    print(
        f"  GRU: {sequence['rows']['train']:,} training rows, {sequence['epochs']} epochs "
        f"(best {sequence['best_epoch']}) in {train_seconds:.1f} s; "
        f"{sequence['train_sequences_per_second']:,.0f} sequences/s in training passes"
    )

    prepared = prepare_events(events[events["occurred_at"] < cutoff])
    features = build_features(events=prepared, members=members, cutoff=cutoff)
    n = len(features)
    print(f"\nscoring {n:,} members at {cutoff.date()} (one thread):")
    _, seconds = timed(lambda: predict_churn(bundle=bundle, features=features, candidate="xgboost"))
    rate("trees (score, interval, set, SHAP)", n, seconds)
    if bundle.selected != "xgboost":
        _, seconds = timed(lambda: predict_churn(bundle=bundle, features=features))
        rate(f"{bundle.selected} (selected without the sequence model)", n, seconds)
    sequences, seconds = timed(
        lambda: encode_members(
            ensemble=bundle.ensemble, events=events, member_ids=features.index, cutoff=cutoff
        )
    )
    rate("encode sequences", n, seconds)
    model = bundle.ensemble.sequence_model
    _, seconds = timed(lambda: model.predict_margin(sequences))
    rate("GRU forward", n, seconds)

    def ensemble(events_named: int):
        return predict_churn(
            bundle=bundle,
            features=features,
            candidate=ENSEMBLE,
            sequences=sequences,
            sequence_events=events_named,
            attribution_recent_events=ATTRIBUTION_RECENT_EVENTS,
        )

    _, seconds = timed(lambda: ensemble(0))
    rate("ensemble (score, interval, set, SHAP)", n, seconds)
    scope = "every event" if ATTRIBUTION_RECENT_EVENTS is None else "latest events"
    _, seconds = timed(lambda: ensemble(STORED_SEQUENCE_EVENTS))
    rate(f"ensemble + top {STORED_SEQUENCE_EVENTS} by occluding {scope} (stored)", n, seconds)
    sample = sequences.take(np.arange(min(AGREEMENT_SAMPLE, n)))
    _, seconds = timed(lambda: occlusion_attribution(model=model, encoded=sample))
    rate(f"occlusion of every event (up to {model.length})", len(sample), seconds)
    _, seconds = timed(
        lambda: occlusion_attribution(model=model, encoded=sample, recent_events=RECENT_COMPARED)
    )
    rate(f"occlusion of the latest {RECENT_COMPARED} events", len(sample), seconds)
    weight = bundle.ensemble.stacker.sequence_weight
    picks = [
        top_sequence_events(
            model=model,
            sequences=sample,
            weight=weight,
            k=STORED_SEQUENCE_EVENTS,
            recent_events=recent,
        )
        for recent in (None, RECENT_COMPARED)
    ]
    overlap = [
        sum((Counter(map(_identity, a)) & Counter(map(_identity, b))).values()) / len(a)
        for a, b in zip(*picks, strict=True)
        if a
    ]
    longer = int((sample.mask.sum(axis=1) > RECENT_COMPARED).sum())
    if overlap:
        print(
            f"  top {STORED_SEQUENCE_EVENTS} among the latest {RECENT_COMPARED} events vs among "
            f"all: {np.mean(overlap):.1%} the same events ({len(sample):,} members, {longer:,} "
            f"with more than {RECENT_COMPARED} events)"
        )

    print(f"\nout of time at {cutoff.date()} ({report['evaluation']['reason'] or 'available'}):")
    entries = {
        "model": report["model"],
        "sequence": report["sequence"],
        "ensemble": report["ensemble"],
        **report["baselines"],
    }
    print(f"  {'metric':<12}" + "".join(f"{entry:>14}" for entry in ENTRIES))
    for metric in METRICS:
        cells = []
        for entry in ENTRIES:
            value = entries[entry].get(metric)
            cells.append(f"{value:>14.4f}" if isinstance(value, float) else f"{value!s:>14}")
        print(f"  {metric:<12}" + "".join(cells))
    _paired_bootstrap(bundle, events, features, cutoff, horizon, config)
    stacker = sequence["stacker"]
    print(
        f"  stacker (validation split, {stacker['rows']:,} rows): tree weight "
        f"{stacker['tree_weight']:.3f}, sequence weight {stacker['sequence_weight']:.3f}"
    )
    losses = report["selection"]["log_loss"]
    print(
        "  selection log loss (calibration split): "
        + ", ".join(f"{k} {v:.4f}" for k, v in losses.items())
        + f" -> selected {report['selected']}"
    )


def _paired_bootstrap(bundle, events, features, cutoff, horizon, config):
    """Ensemble minus trees on the same out-of-time members, resampled: is the gap noise?"""
    everything = prepare_events(events)
    active = labels.active_member_ids(
        events=everything,
        cutoff=cutoff,
        lookback_days=config.active_lookback_days,
        qualifying_kinds=config.qualifying_kinds,
    )
    active = active[np.isin(active, features.index)]
    y = labels.churn_labels(
        events=everything,
        member_ids=active,
        cutoff=cutoff,
        horizon_days=horizon,
        qualifying_kinds=config.qualifying_kinds,
    ).to_numpy()
    if len(y) == 0 or y.min() == y.max():
        return
    rows = features.loc[active]
    trees = predict_churn(bundle=bundle, features=rows, explain_top_k=0, candidate="xgboost")
    sequences = encode_members(
        ensemble=bundle.ensemble, events=events, member_ids=rows.index, cutoff=cutoff
    )
    stacked = predict_churn(
        bundle=bundle, features=rows, candidate=ENSEMBLE, sequences=sequences, explain_top_k=0
    )
    rng = np.random.default_rng(SEED)
    gaps = {"log loss": [], "ROC AUC": []}
    for _ in range(BOOTSTRAP_RESAMPLES):
        pick = rng.integers(0, len(y), len(y))
        if y[pick].min() == y[pick].max():
            continue
        gaps["log loss"].append(
            _log_loss(y[pick], stacked.probability[pick])
            - _log_loss(y[pick], trees.probability[pick])
        )
        gaps["ROC AUC"].append(
            roc_auc_score(y[pick], stacked.probability[pick])
            - roc_auc_score(y[pick], trees.probability[pick])
        )
    for name, values in gaps.items():
        low, high = np.quantile(values, [0.05, 0.95])
        print(
            f"  ensemble - trees, {name}: {np.mean(values):+.4f} "
            f"(90% paired bootstrap interval {low:+.4f} to {high:+.4f}, {len(y):,} members)"
        )


def _identity(event: dict) -> tuple:
    """An event as top_sequence_events names it (lines of one basket share a time)."""
    return (event["occurred_at"], event["kind"], event["category"], event["attribution"])


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


if __name__ == "__main__":
    main()
