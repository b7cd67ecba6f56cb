"""What weight should a person's churn call get? One candidate, trained several ways.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_loop_c \\
        .venv/bin/python bench/label_weights.py

Run after bench/loop.py, on one of the databases it leaves (`<name>_c` is the random-review arm:
its labeled examples are a random sample, so the question is the weight, not the routing).
Trains churn at the retraining cutoff, as retraining does (bench/loop.py's small model), with
the labeled examples that retraining would use: none, at their stored weight, at weight 1, at
the stored weight but with each member's realized churn (SyntheticTruth) in place of the
reviewer's answer, and at a negligible weight. Prints each candidate's out-of-time ROC AUC,
log loss and ECE on the window the gate compares, and the reviewers' agreement with the truth.
"""

import os
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty.settings.base")
    os.environ["CELERY_BROKER_URL"] = "memory://localhost/"  # nothing leaves this process
    import tempfile

    os.environ.setdefault("MODEL_ARTIFACT_DIR", tempfile.mkdtemp(prefix="label_weights_"))
    import django

    django.setup()
    import numpy as np
    from loop import fast_churn_config

    from learning.services.retraining import (
        DEFAULT_HORIZON_DAYS,
        churn_rows,
        held_out_mask,
        training_examples,
    )
    from loyalty.models import SyntheticTruth
    from predictions.services.evaluation import evaluate_churn_out_of_time
    from predictions.services.training import default_training_cutoff, train_churn_version

    examples = training_examples("churn")
    rows = churn_rows(examples[~held_out_mask(examples)])
    if rows is None:
        sys.exit("no churn examples: run bench/loop.py first and point DATABASE_URL at <name>_c")
    truth = dict(SyntheticTruth.objects.values_list("member_id", "churned"))
    realized = np.array([truth[member] for member in rows.member_id])
    print(
        f"{len(rows)} labeled rows, stored weight {float(np.median(rows.weight)):g}; reviewers "
        f"agree with the realized churn on {np.mean(realized == rows.churned):.1%}"
    )
    variants = {
        "no labeled rows": None,
        "stored weight": rows,
        "weight 1": replace(rows, weight=np.ones(len(rows))),
        "weight 2.5": replace(rows, weight=np.full(len(rows), 2.5)),
        "weight 2.5, realized labels": replace(
            rows, churned=realized, weight=np.full(len(rows), 2.5)
        ),
        "weight 0.01": replace(rows, weight=np.full(len(rows), 0.01)),
    }
    cutoff = default_training_cutoff(kind="churn", horizon_days=DEFAULT_HORIZON_DAYS)
    versions = {
        name: train_churn_version(
            cutoff=cutoff,
            horizon_days=DEFAULT_HORIZON_DAYS,
            config=fast_churn_config(),
            labeled=labeled,
        ).version
        for name, labeled in variants.items()
    }
    first = next(iter(versions.values()))
    figures = evaluate_churn_out_of_time(
        versions=list(versions.values()),
        cutoff=first.evaluation_cutoff,
        horizon_days=DEFAULT_HORIZON_DAYS,
    )
    print(f"\nout of time at {first.evaluation_cutoff:%Y-%m-%d}:")
    print(f"{'candidate':<30} {'ROC AUC':>8} {'log loss':>9} {'ECE':>7}")
    for name, version in versions.items():
        f = figures[version.pk]
        print(f"{name:<30} {f['roc_auc']:>8.4f} {f['log_loss']:>9.4f} {f['ece']:>7.4f}")


if __name__ == "__main__":
    main()
