"""How often the churn interval holds the TRUE churn probability, on generated members.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_truth \\
        .venv/bin/python bench/interval_coverage.py --members 20000

`generate_members` knows each member's true churn probability over the horizon after its
cutoff (stored apart from model inputs, in SyntheticTruth). This trains a churn version at that
cutoff (label windows ending by it), scores every member at the cutoff, and prints: the share of
members whose true probability lies inside their interval, next to the nominal coverage; the
conformal label set's coverage of the realized outcomes; the interval's mean width; and the
model's AUC and log loss against the realized outcomes beside the oracle's (the truth itself).
"""

import argparse
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = 97
START = date(2025, 1, 1)
DAYS = 365
HORIZON = 90


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=20_000)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty.settings.base")
    import django

    django.setup()

    import numpy as np
    from sklearn.metrics import log_loss, roc_auc_score

    from loyalty.models import SyntheticTruth
    from loyalty.services.synthetic.generation import generate_members
    from predictions.ml.churn.model import predict_churn
    from predictions.ml.features import build_features
    from predictions.selectors import events_frame, members_frame
    from predictions.services.training import train_churn_version

    started = time.perf_counter()
    generate_members(members=args.members, seed=SEED, start=START, days=DAYS, horizon_days=HORIZON)
    print(f"members ready in {time.perf_counter() - started:.1f} s")
    cutoff = datetime.combine(START + timedelta(days=DAYS), datetime.min.time(), tzinfo=UTC)

    started = time.perf_counter()
    outcome = train_churn_version(cutoff=cutoff, horizon_days=HORIZON)
    print(f"trained in {time.perf_counter() - started:.1f} s; selected {outcome.version.algorithm}")
    from predictions.services.scoring.predict import load_bundle

    version = outcome.version
    bundle = load_bundle(version.pk, tuple(sorted(version.artifact_checksums.items())))
    truth = {
        row[0]: row[1:]
        for row in SyntheticTruth.objects.filter(seed=SEED).values_list(
            "member_id", "churn_probability", "churned"
        )
    }
    ids = sorted(truth)
    features = build_features(
        events=events_frame(before=cutoff), members=members_frame(member_ids=ids), cutoff=cutoff
    )
    p_true = np.array([truth[i][0] for i in features.index])
    churned = np.array([truth[i][1] for i in features.index], dtype=int)
    print(
        f"{'candidate':<14}{'interval cov':>13}{'nominal':>9}{'mean width':>12}"
        f"{'set cov':>9}{'AUC':>8}{'log loss':>10}"
    )
    for name in bundle.candidates:
        result = predict_churn(bundle=bundle, features=features, candidate=name, explain_top_k=0)
        inside = (result.low <= p_true) & (p_true <= result.high)
        set_cov = result.label_sets[np.arange(len(churned)), churned].mean()
        print(
            f"{name:<14}{inside.mean():>13.3f}{result.interval_coverage:>9.2f}"
            f"{(result.high - result.low).mean():>12.3f}{set_cov:>9.3f}"
            f"{roc_auc_score(churned, result.probability):>8.3f}"
            f"{log_loss(churned, np.clip(result.probability, 1e-6, 1 - 1e-6)):>10.4f}"
        )
    print(
        f"{'oracle':<14}{'':>13}{'':>9}{'':>12}{'':>9}{roc_auc_score(churned, p_true):>8.3f}"
        f"{log_loss(churned, np.clip(p_true, 1e-6, 1 - 1e-6)):>10.4f}"
    )
    print(
        f"members {len(churned):,}, realized churn rate {churned.mean():.3f}, "
        f"mean true probability {p_true.mean():.3f}"
    )


if __name__ == "__main__":
    main()
