"""Churn out of time on several data sets and cutoffs: every candidate, the served one, and how
far the served model is from the best baseline. No database.

    .venv/bin/python bench/churn_eval.py --quick            # 6 runs, no GRU, 2 replicas
    .venv/bin/python bench/churn_eval.py                    # every run, the default ChurnConfig
    .venv/bin/python bench/churn_eval.py --only cj_sparse --json /tmp/eval.json

Each run calls `train_churn` (what `manage.py train` calls, here on frames instead of the
database) at a cutoff and horizon, then scores the members active at the cutoff with every
candidate of the bundle (and the tree + sequence ensemble when one was trained) and compares
them with the outcomes over the horizon after it: ROC AUC, PR AUC, log loss, ECE (10
equal-mass bins) and the coverage of the conformal label set (nominal 90 %). The last line of
each run is a paired bootstrap (members resampled) of the served model's ROC AUC minus the
best baseline's (the baseline with the highest out-of-time AUC in that run, chosen after the
fact: a demanding comparison).

Data sets (all offline):
- `cj`: The Complete Journey (2,469 households, 2017; purchases with baskets and departments,
  coupon redemptions, campaigns), as bench/ml_complete_journey.py loads it. It spans one year,
  so a 180-day horizon leaves no training cutoff with its label window before the evaluation
  cutoff; CJ runs use 90 days, the latest (2017-10-01) labels the year-end weeks.
- `cj_purchases`: the same purchases with member, time, kind and amount only (no baskets,
  departments, coupons or campaigns): a retailer that records little.
- `cj_sparse`: each CJ basket kept with probability SPARSE_KEEP (seeded): a retailer whose
  members shop a few times a year, so that a 90-day silence is common (base rate ~20 %).
- `seasonal`: generated members (`loyalty.services.synthetic`: purchase rate with a per-member
  trend, leave hazard, sessions, mailings, support contacts). That generator has no
  seasonality, so this bench thins its purchases and sessions with a yearly cycle peaking in
  December (keep probability (1 + A cos(2 pi (day - peak) / 365.25)) / (1 + A), A =
  SEASON_AMPLITUDE): the base rate moves with the season of the label window. Generated
  over 2021-01 .. 2024-10; cutoffs before and after the December peak, horizons 90 and 180.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from predictions.ml import frames  # noqa: E402
from predictions.ml.churn.model import ENSEMBLE, predict_churn, train_churn  # noqa: E402
from predictions.ml.churn.rows import rows_at  # noqa: E402
from predictions.ml.contracts import BoosterParams, ChurnConfig  # noqa: E402
from predictions.ml.features import prepare_events  # noqa: E402
from predictions.ml.metrics import binary_metrics  # noqa: E402

SEED = 0
SPARSE_KEEP = 0.1
SEASON_AMPLITUDE = 0.5
SEASON_PEAK = pd.Timestamp("2021-12-10")
SYNTHETIC_SEED = 11
SYNTHETIC_START = date(2021, 1, 1)
# Days simulated before the generator's own cutoff and after it: events reach 2024-10-16.
SYNTHETIC_DAYS, SYNTHETIC_TAIL = 1185, 200
SYNTHETIC_MEMBERS = 8000
BOOTSTRAP_FULL, BOOTSTRAP_QUICK = 1000, 500
# Candidates that are baselines: the served model is compared with the best of them.
BASELINES = ("recency", "rfm_logistic", "bgnbd")
METRICS = ("roc_auc", "pr_auc", "log_loss", "ece", "coverage")
# Kept in --json only: the label set's coverage within each true class.
CLASS_COVERAGE = ("coverage_stay", "coverage_churn")


@dataclass(frozen=True)
class Run:
    dataset: str
    cutoff: str
    horizon: int
    quick: bool
    note: str = ""


RUNS = (
    Run("cj", "2017-08-01", 90, quick=False),
    Run("cj", "2017-09-01", 90, quick=False),
    Run("cj", "2017-10-01", 90, quick=True, note="label window = year-end weeks"),
    Run("cj_purchases", "2017-10-01", 90, quick=True),
    Run("cj_sparse", "2017-08-01", 90, quick=False),
    Run("cj_sparse", "2017-10-01", 90, quick=True),
    Run("seasonal", "2023-10-01", 90, quick=True, note="before the December peak"),
    Run("seasonal", "2024-01-15", 90, quick=True, note="after the peak"),
    Run("seasonal", "2023-07-01", 180, quick=True, note="window holds the peak"),
    Run("seasonal", "2024-03-01", 180, quick=False),
)


# --- data sets -------------------------------------------------------------------------------


@cache
def dataset(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, members) of a data set, as the engine takes them."""
    if name == "seasonal":
        return seasonal_synthetic()
    from ml_complete_journey import complete_journey_events

    events, members = complete_journey_events()
    if name == "cj":
        return events, members
    purchases = events[events["kind"] == frames.PURCHASE]
    if name == "cj_purchases":
        columns = ["member_id", "occurred_at", "kind", "amount"]
        return purchases[columns].reset_index(drop=True), members
    if name == "cj_sparse":
        baskets = purchases["session_id"].unique()
        rng = np.random.default_rng([SEED, 1])
        kept = baskets[rng.random(len(baskets)) < SPARSE_KEEP]
        keep = (events["kind"] != frames.PURCHASE) | events["session_id"].isin(kept)
        return events[keep].reset_index(drop=True), members
    raise ValueError(f"unknown data set {name!r}")


def seasonal_synthetic() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generated members, purchases and sessions thinned by a yearly cycle (see the docstring)."""
    from loyalty.services.synthetic.events import event_frames
    from loyalty.services.synthetic.members import SyntheticSpec, member_frames

    spec = SyntheticSpec(
        seed=SYNTHETIC_SEED,
        members=SYNTHETIC_MEMBERS,
        start=SYNTHETIC_START,
        days=SYNTHETIC_DAYS,
        horizon_days=SYNTHETIC_TAIL,
    )
    roster = pd.concat(member_frames(spec), ignore_index=True)
    events = pd.concat(event_frames(spec), ignore_index=True)
    ids = pd.Series(
        np.arange(1, len(roster) + 1, dtype="int64"), index=roster["external_id"].to_numpy()
    )
    events["member_id"] = ids.loc[events.pop("member_external_id").to_numpy()].to_numpy()
    seasonal = events["kind"].isin(
        [frames.PURCHASE, frames.LOGIN, frames.SEARCH, frames.VIEW, frames.CLICK, "add_to_cart"]
    )
    # A session is kept or dropped whole, by the season of its first event.
    key = events["member_id"].astype(str) + "/" + events["session_id"].astype(str)
    group, uniques = pd.factorize(key)
    first = events.groupby(group)["occurred_at"].transform("min")
    days = (first.dt.tz_localize(None) - SEASON_PEAK).dt.total_seconds() / 86_400
    keep_p = (1 + SEASON_AMPLITUDE * np.cos(2 * np.pi * days / 365.25)) / (1 + SEASON_AMPLITUDE)
    draw = np.random.default_rng([SEED, 2]).random(len(uniques))[group]
    events = events[~seasonal.to_numpy() | (draw < keep_p.to_numpy())].reset_index(drop=True)
    members = pd.DataFrame(
        {
            "member_id": ids.to_numpy(),
            "joined_on": roster["joined_at"].to_numpy(),
            "tier": roster["tier"].to_numpy(),
            "points_balance": roster["points_balance"].to_numpy(),
            "tier_rank": frames.tier_ranks(roster["tier"], frames.DEFAULT_TIER_LADDER),
        }
    )
    return events, members


# --- one run ---------------------------------------------------------------------------------


def out_of_time(result, prepared, members, events, sequence_events, run: Run) -> dict[str, Any]:
    """Labels at the run's cutoff and every model's probabilities and label sets there."""
    bundle = result.bundle
    cutoff = frames.to_utc_timestamp(run.cutoff)
    roster = frames.normalize_members(members)
    rows = rows_at(prepared, roster, cutoff, run.horizon, bundle.config, bundle.feature_codes)
    features = pd.DataFrame(rows.x, index=rows.member_id, columns=list(bundle.feature_codes))
    scored = {}
    for name in bundle.candidates:
        prediction = predict_churn(
            bundle=bundle, features=features, candidate=name, explain_top_k=0, with_interval=False
        )
        scored[name] = (prediction.probability, prediction.label_sets)
    if bundle.ensemble is not None:
        from predictions.ml.churn.sequence import encode_members

        sequences = encode_members(
            ensemble=bundle.ensemble,
            events=sequence_events,
            member_ids=features.index,
            cutoff=cutoff,
        )
        prediction = predict_churn(
            bundle=bundle,
            features=features,
            candidate=ENSEMBLE,
            sequences=sequences,
            explain_top_k=0,
            with_interval=False,
        )
        scored[ENSEMBLE] = (prediction.probability, prediction.label_sets)
    return {"labels": rows.y, "scored": scored}


def paired_auc_difference(
    labels: np.ndarray, first: np.ndarray, second: np.ndarray, resamples: int, seed: int
) -> tuple[float, float, float]:
    """AUC(first) - AUC(second), and its 95 % percentile interval over paired resamples."""
    rng = np.random.default_rng(seed)
    point = roc_auc_score(labels, first) - roc_auc_score(labels, second)
    differences = []
    n = len(labels)
    for _ in range(resamples):
        pick = rng.integers(0, n, n)
        y = labels[pick]
        if 0 < y.sum() < n:
            differences.append(roc_auc_score(y, first[pick]) - roc_auc_score(y, second[pick]))
    low, high = np.percentile(differences, [2.5, 97.5])
    return float(point), float(low), float(high)


def evaluate(run: Run, config: ChurnConfig, resamples: int) -> dict[str, Any]:
    events, members = dataset(run.dataset)
    started = time.perf_counter()
    prepared = prepare_events(events)
    sequence_events = None
    if config.sequence:
        from predictions.ml.sequences.encoding import prepare_sequence_events

        sequence_events = prepare_sequence_events(events)
    result = train_churn(
        events=prepared,
        members=members,
        cutoff=run.cutoff,
        horizon_days=run.horizon,
        config=config,
        sequence_events=sequence_events,
    )
    seconds = time.perf_counter() - started
    evaluation = out_of_time(result, prepared, members, events, sequence_events, run)
    labels = evaluation["labels"]
    models = {}
    for name, (probability, sets) in evaluation["scored"].items():
        figures = binary_metrics(
            labels=labels,
            probability=probability,
            label_sets=sets,
            nominal_coverage=config.label_set_coverage,
        )
        models[name] = {key: figures[key] for key in (*METRICS, *CLASS_COVERAGE)}
    served = result.report["selected"]
    baselines = [name for name in BASELINES if name in models]
    best = max(baselines, key=lambda name: models[name]["roc_auc"])
    scored = evaluation["scored"]
    difference = paired_auc_difference(
        labels, scored[served][0], scored[best][0], resamples, seed=SEED
    )
    return {
        "dataset": run.dataset,
        "cutoff": run.cutoff,
        "horizon": run.horizon,
        "note": run.note,
        "base_rate": float(labels.mean()),
        "n": int(len(labels)),
        "calibration_base_rate": result.report["rows"]["calibration_churn_rate"],
        "served": served,
        "best_baseline": best,
        "served_minus_best_baseline_auc": difference,
        "models": models,
        "selection": result.report["selection"],
        "calibration_shift": result.report.get("calibration_shift"),
        "train_seconds": round(seconds, 1),
    }


# --- output ----------------------------------------------------------------------------------


def print_run(row: dict[str, Any]) -> None:
    head = (
        f"{row['dataset']:<13}{row['cutoff']:>11}{row['horizon']:>5}"
        f"{row['base_rate']:>7.3f}{row['n']:>7}"
    )
    blank = " " * len(head)
    for i, (name, figures) in enumerate(row["models"].items()):
        mark = "*" if name == row["served"] else " "
        cells = "".join(_cell(figures[key]) for key in METRICS)
        print(f"{head if i == 0 else blank}  {mark}{name:<13}{cells}")
    point, low, high = row["served_minus_best_baseline_auc"]
    print(
        f"{blank}   served {row['served']} - best baseline {row['best_baseline']}: "
        f"AUC {point:+.4f} [{low:+.4f}, {high:+.4f}]   (calibration-split base rate "
        f"{row['calibration_base_rate']:.3f}; trained in {row['train_seconds']:.0f} s)"
        + (f"  {row['note']}" if row["note"] else "")
    )
    print(f"{blank}   why: {row['selection'].get('served_because', '-')}")
    shift = row.get("calibration_shift") or {}
    if shift.get("applied"):
        offsets = ", ".join(f"{name} {value:+.3f}" for name, value in shift["offsets"].items())
        print(f"{blank}   seasonal offsets (log-odds): {offsets}")
    elif shift:
        print(f"{blank}   no seasonal offset: {shift.get('reason')}")


def print_summary(rows: list[dict[str, Any]]) -> None:
    differences = np.array([row["served_minus_best_baseline_auc"][0] for row in rows])
    served = [row["models"][row["served"]] for row in rows]
    ece = np.array([figures["ece"] for figures in served])
    coverage = np.array([figures["coverage"] for figures in served])
    print(
        f"\nserved - best baseline AUC: mean {differences.mean():+.4f}, min "
        f"{differences.min():+.4f}, runs at or above 0: {(differences >= 0).sum()}/{len(rows)}, "
        f"interval above 0: {sum(row['served_minus_best_baseline_auc'][1] > 0 for row in rows)}"
    )
    print(
        f"served ECE: mean {ece.mean():.4f}, max {ece.max():.4f}, runs <= 0.05: "
        f"{(ece <= 0.05).sum()}/{len(rows)};  label-set coverage: mean {coverage.mean():.3f}, "
        f"runs within 0.90 +- 0.02: {(np.abs(coverage - 0.9) <= 0.02).sum()}/{len(rows)}"
    )


def _cell(value: float | None) -> str:
    return f"{'-':>9}" if value is None else f"{value:>9.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, no GRU, 2 replicas")
    parser.add_argument("--only", help="comma-separated data sets (cj, cj_purchases, ...)")
    parser.add_argument("--sequence", action="store_true", help="with --quick: train the GRU")
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--exclude", default="", help="comma-separated feature codes to leave out")
    parser.add_argument("--max-cutoffs", type=int, default=ChurnConfig.max_training_cutoffs)
    parser.add_argument(
        "--no-season-offset", action="store_true", help="no seasonal recalibration offset"
    )
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    config = replace(
        ChurnConfig(),
        seed=args.seed,
        booster=BoosterParams(),
        excluded_features=tuple(code for code in args.exclude.split(",") if code),
        max_training_cutoffs=args.max_cutoffs,
        season_recalibration=not args.no_season_offset,
    )
    if args.quick:
        config = replace(config, sequence=args.sequence, bootstrap_models=2)
    resamples = BOOTSTRAP_QUICK if args.quick else BOOTSTRAP_FULL
    wanted = set(args.only.split(",")) if args.only else None
    runs = [
        run
        for run in RUNS
        if (run.quick or not args.quick) and (wanted is None or run.dataset in wanted)
    ]
    print(
        f"{'dataset':<13}{'cutoff':>11}{'h':>5}{'base':>7}{'n':>7}   {'model':<13}"
        + "".join(f"{key:>9}" for key in ("AUC", "PR AUC", "logloss", "ECE", "cover"))
    )
    started = time.perf_counter()
    rows = []
    for run in runs:
        row = evaluate(run, config, resamples)
        print_run(row)
        rows.append(row)
    print_summary(rows)
    print(f"{len(rows)} runs in {time.perf_counter() - started:.0f} s (quick={args.quick})")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main()
