"""Behavioral clusters on The Complete Journey: the k the silhouette picks, each cluster's
size and description, and the time to fit and to assign, no database.

    .venv/bin/python bench/clusters.py [--cutoff 2017-10-01] [--rows 100000] [--json]

The fit's time is measured on the CJ households and on their feature rows repeated to
`--rows` members with ±5 % noise (a seeded generator): the fit samples at most FIT_SAMPLE
members, so its time should level off while assignment grows with the rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ml_complete_journey import complete_journey_events  # noqa: E402

from predictions.ml.clusters import FIT_SAMPLE, fit_clusters  # noqa: E402
from predictions.ml.features import build_features  # noqa: E402


def _timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cutoff", default="2017-10-01")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    events, members = complete_journey_events()
    cutoff = pd.Timestamp(args.cutoff, tz="UTC")
    features = build_features(events=events, members=members, cutoff=cutoff)
    model, fit_seconds = _timed(fit_clusters, features)
    assigned, assign_seconds = _timed(model.assign, features)

    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(features), args.rows)
    noise = rng.uniform(0.95, 1.05, (args.rows, features.shape[1]))
    large = pd.DataFrame(features.to_numpy()[picks] * noise, columns=features.columns)
    large_model, large_fit_seconds = _timed(fit_clusters, large)
    _, large_assign_seconds = _timed(large_model.assign, large)

    report = {
        "members": len(features),
        "cutoff": str(cutoff.date()),
        "features_used": list(model.features),
        "k": model.k,
        "silhouettes": model.silhouettes,
        "clusters": [
            {"number": c.number, "members": c.members, "share": c.share, "label": c.label}
            for c in model.clusters
        ],
        "assigned_counts": pd.Series(assigned).value_counts().sort_index().to_dict(),
        "fit_seconds": round(fit_seconds, 2),
        "assign_seconds": round(assign_seconds, 4),
        "large": {
            "rows": args.rows,
            "fit_sample": min(args.rows, FIT_SAMPLE),
            "k": large_model.k,
            "fit_seconds": round(large_fit_seconds, 2),
            "assign_seconds": round(large_assign_seconds, 3),
        },
    }
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(f"Complete Journey at {report['cutoff']}: {report['members']} households")
    print(f"features used: {', '.join(report['features_used'])}")
    print("silhouette by k: " + ", ".join(f"{k}: {s:.3f}" for k, s in model.silhouettes.items()))
    print(f"k = {model.k}; fit {fit_seconds:.2f} s, assign {assign_seconds * 1000:.1f} ms")
    for cluster in report["clusters"]:
        print(f"  {cluster['label']}  ({cluster['members']} households, {cluster['share']:.0%})")
    large_report = report["large"]
    print(
        f"{large_report['rows']:,} members (fit on {large_report['fit_sample']:,}): "
        f"k = {large_report['k']}; fit {large_report['fit_seconds']:.2f} s, "
        f"assign {large_report['assign_seconds']:.3f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
