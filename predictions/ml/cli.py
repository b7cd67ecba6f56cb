"""`python -m predictions.ml`: train and evaluate from the project's import CSVs, no database.

    python -m predictions.ml churn --events events.csv --members members.csv \\
        --cutoff 2017-10-01 --horizon 90 [--json] [--save DIR]
    python -m predictions.ml next-action --events events.csv --members members.csv \\
        --cutoff 2017-10-01 [--actions no_action,bonus_points,...] [--json]

Prints the training report (the same dict the Django side stores) plus wall-clock timings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from . import frames
from .artifacts import save_churn_bundle
from .churn.model import predict_churn, train_churn
from .contracts import ChurnConfig, MLError, NextActionConfig
from .csv_input import read_project_csvs
from .features import build_feature_panel, build_features, prepare_events
from .nba import bootstrap_rule_labels, observed_outcome_labels, train_next_action

DEFAULT_ACTIONS = (
    "no_action",
    "bonus_points",
    "personal_discount",
    "free_delivery",
    "win_back_email",
    "personal_outreach",
    "tier_trial",
)
NEXT_ACTION_CUTOFFS = 6


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        output = args.handler(args)
    except MLError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(output, indent=1, default=_json_default))
    else:
        _print_summary(output)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m predictions.ml",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler, helptext in (
        ("churn", _churn, "train churn candidates, select one, evaluate out of time"),
        ("next-action", _next_action, "train next best action on rule and outcome labels"),
    ):
        command = commands.add_parser(name, help=helptext)
        command.set_defaults(handler=handler)
        command.add_argument("--events", required=True, help="events.csv (import format)")
        command.add_argument("--members", required=True, help="members.csv (import format)")
        command.add_argument("--cutoff", required=True, help="evaluation cutoff, e.g. 2017-10-01")
        command.add_argument("--seed", type=int, default=0)
        command.add_argument("--json", action="store_true", help="print the report as JSON")
        command.add_argument(
            "--tier-ladder",
            default=",".join(frames.DEFAULT_TIER_LADDER),
            help="tiers, lowest first",
        )
    churn = commands.choices["churn"]
    churn.add_argument("--horizon", type=int, default=90, help="churn horizon in days")
    churn.add_argument("--max-cutoffs", type=int, default=ChurnConfig.max_training_cutoffs)
    churn.add_argument("--bootstrap-models", type=int, default=ChurnConfig.bootstrap_models)
    churn.add_argument(
        "--use-snapshot-attributes",
        action="store_true",
        help="train on points balance and tier (only if members.csv is as of the cutoff)",
    )
    churn.add_argument("--save", help="write the trained bundle into this directory")
    action = commands.choices["next-action"]
    action.add_argument("--actions", default=",".join(DEFAULT_ACTIONS), help="action codes")
    action.add_argument("--window", type=int, default=30, help="outcome window in days")
    return parser


def _read(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    started = time.perf_counter()
    events, members, _ = read_project_csvs(
        events_path=args.events,
        members_path=args.members,
        tier_ladder=tuple(args.tier_ladder.split(",")),
    )
    return events, members, {"read_csv_s": time.perf_counter() - started}


def _churn(args: argparse.Namespace) -> dict[str, Any]:
    events, members, timings = _read(args)
    config = replace(
        ChurnConfig(),
        seed=args.seed,
        max_training_cutoffs=args.max_cutoffs,
        bootstrap_models=args.bootstrap_models,
        use_snapshot_attributes=args.use_snapshot_attributes,
    )
    started = time.perf_counter()
    prepared = prepare_events(events)
    timings["prepare_events_s"] = time.perf_counter() - started
    started = time.perf_counter()
    result = train_churn(
        events=prepared,
        members=members,
        cutoff=args.cutoff,
        horizon_days=args.horizon,
        config=config,
    )
    timings["train_s"] = time.perf_counter() - started
    started = time.perf_counter()
    features = build_features(events=prepared, members=members, cutoff=args.cutoff)
    timings["build_features_s"] = time.perf_counter() - started
    started = time.perf_counter()
    prediction = predict_churn(bundle=result.bundle, features=features)
    timings["score_s"] = time.perf_counter() - started
    timings["score_members_per_s"] = len(features) / max(timings["score_s"], 1e-9)
    output = dict(result.report)
    output["scored"] = {
        "members": len(features),
        "mean_probability": float(np.mean(prediction.probability)),
        "mean_confidence": float(np.mean(prediction.confidence)),
        "mean_interval_width": float(np.mean(prediction.high - prediction.low)),
    }
    if args.save:
        output["checksums"] = save_churn_bundle(bundle=result.bundle, directory=args.save)
    output["timings"] = {key: round(value, 4) for key, value in timings.items()}
    return output


def _next_action(args: argparse.Namespace) -> dict[str, Any]:
    events, members, timings = _read(args)
    actions = tuple(code for code in args.actions.split(",") if code)
    cutoff = pd.Timestamp(args.cutoff, tz="UTC")
    cutoffs = [
        cutoff - pd.Timedelta(days=args.window * (i + 1)) for i in range(NEXT_ACTION_CUTOFFS)
    ][::-1]
    started = time.perf_counter()
    prepared = prepare_events(events)
    panel = build_feature_panel(events=prepared, members=members, cutoffs=cutoffs)
    timings["build_features_s"] = time.perf_counter() - started
    parts = []
    for stamp in cutoffs:
        parts.append(
            bootstrap_rule_labels(features=panel.loc[stamp], action_codes=actions, cutoff=stamp)
        )
        parts.append(observed_outcome_labels(events=events, cutoff=stamp, window_days=args.window))
    labels = pd.concat(parts, ignore_index=True)
    started = time.perf_counter()
    result = train_next_action(
        features=panel,
        labels=labels,
        action_codes=actions,
        config=replace(NextActionConfig(), seed=args.seed),
    )
    timings["train_s"] = time.perf_counter() - started
    output = dict(result.report)
    output["timings"] = {key: round(value, 4) for key, value in timings.items()}
    return output


def _print_summary(output: dict[str, Any]) -> None:
    if "selected" in output:
        print(f"selected: {output['selected']}")
        print(f"evaluation: {output['evaluation']}")
        rows = {"xgboost": output["model"], **output["baselines"]}
        keys = ("n", "base_rate", "roc_auc", "pr_auc", "log_loss", "brier", "ece", "coverage")
        print(f"{'candidate':<14}" + "".join(f"{key:>11}" for key in keys))
        for name, metrics in rows.items():
            cells = "".join(f"{_cell(metrics.get(key)):>11}" for key in keys)
            print(f"{name:<14}{cells}")
        top = list(output["feature_importance"].items())[:10]
        print("top features (mean |SHAP|): " + ", ".join(f"{k} {v:.3f}" for k, v in top))
    else:
        print(json.dumps(output["metrics"], indent=1))
        print(json.dumps(output["by_source"], indent=1))
    print(f"rows: {output['rows']}")
    print(f"timings: {output['timings']}")


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
