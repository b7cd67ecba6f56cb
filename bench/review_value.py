"""The value of review: final decisions (automatic + human) against the truth, beside the model
alone, per 100 reviews, for reviewers of several accuracies, and where review stops paying.

    .venv/bin/python bench/review_value.py --members 4000 --seed 11

A fresh SQLite file under var/ unless DATABASE_URL names a database whose name starts with
"bench" (it is migrated, not dropped: use a new one). Generated members (`generate_members`,
which knows each member's realized churn over the 90-day horizon after its cutoff C, in
`SyntheticTruth`), every event at or after C deleted so that the data end at C, as in
bench/loop.py; a churn version trained at C - 90 d (bench/loop.py's fast configuration) and
promoted; every member scored at C and routed by the default escalation policy.

Simulated reviewers, each answering every item they are given (common random numbers: whether
a reviewer is right about a member is a fixed hash of (seed, member), bench/loop.py's rule):
- "accuracy 0.6", "0.75", "0.9": the realized churn with that probability, the opposite
  otherwise;
- "automation-biased": the model's call 90 % of the time whatever the truth, the realized
  churn otherwise.
People get the least confident items first (the queues' logic: low confidence goes to people).
For shares of the items reviewed from 0 to 100 %, it prints the accuracy and the balanced
accuracy of the final decisions (the reviewer's answer on reviewed items, the model's call on
the rest) against the realized churn, the change from the model alone per 100 reviews, and the
marginal change per 100 reviews of each step (the next items reviewed): review stops paying where
the marginal change falls to zero or below. The default policy's own share (the items it routes
to people) is one row.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import loop  # noqa: E402  (bench/loop.py: the same members, cutoff, configuration and hash)

SHARES = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
BIASED_AGREEMENT = 0.9


def setup(database: str, members: int, seed: int) -> tuple[np.ndarray, ...]:
    """Members, model, scores; returns (member ids, churn probability, confidence, realized
    churn, routed to people) in the order people would get them (least confident first)."""
    os.environ.setdefault("DATABASE_URL", database)
    loop._setup_django()
    from django.core.management import call_command
    from django.db import connection

    from loyalty.models import Event, SyntheticTruth
    from loyalty.services.synthetic.generation import generate_members
    from predictions.models import Prediction
    from predictions.services.registry import promote_model_version
    from predictions.services.training import default_training_cutoff, train_churn_version
    from reviews.models import Review
    from reviews.services.reason_codes import seed_reason_codes
    from reviews.services.routing import route_new_predictions

    call_command("migrate", verbosity=0)
    seed_reason_codes()
    generate_members(
        members=members, seed=seed, start=loop.START, days=loop.DAYS, horizon_days=loop.HORIZON
    )
    cutoff = loop.generator_cutoff()
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Event._meta.db_table} WHERE occurred_at >= %s", [cutoff])
    outcome = train_churn_version(
        cutoff=default_training_cutoff(kind="churn", horizon_days=loop.HORIZON),
        horizon_days=loop.HORIZON,
        config=loop.fast_churn_config(),
    )
    version = promote_model_version(version_id=outcome.version.pk, actor=None)
    loop.score_inline(cutoff=cutoff)
    route_new_predictions(kind="churn", model_version_id=version.pk)
    truth = dict(SyntheticTruth.objects.values_list("member_id", "churned"))
    rows = sorted(
        Prediction.objects.filter(model_version=version, cutoff=cutoff).values_list(
            "member_id", "score", "confidence", "pk"
        ),
        key=lambda row: (row[2], row[0]),  # least confident first, ties by member
    )
    people = set(
        Review.objects.filter(prediction__model_version=version)
        .exclude(route=Review.Route.AUTO)
        .values_list("prediction_id", flat=True)
    )
    member_ids = np.array([row[0] for row in rows])
    return (
        member_ids,
        np.array([row[1] for row in rows], dtype="float64"),
        np.array([row[2] for row in rows], dtype="float64"),
        np.array([bool(truth[row[0]]) for row in rows]),
        np.array([row[3] in people for row in rows]),
    )


def answers(kind: str, *, seed: int, member_ids, model_call, churned) -> np.ndarray:
    """Each simulated reviewer's churn call on every item."""
    if kind == "automation-biased":
        agrees = np.array(
            [loop.reviewer_is_right(seed + 1, int(pk), BIASED_AGREEMENT) for pk in member_ids]
        )
        return np.where(agrees, model_call, churned)
    accuracy = float(kind.split()[-1])
    right = np.array([loop.reviewer_is_right(seed, int(pk), accuracy) for pk in member_ids])
    return np.where(right, churned, ~churned)


def figures(calls: np.ndarray, churned: np.ndarray) -> tuple[float, float]:
    """(accuracy, balanced accuracy) of churn calls against the realized churn."""
    accuracy = float((calls == churned).mean())
    recall = float(calls[churned].mean()) if churned.any() else float("nan")
    specificity = float((~calls[~churned]).mean()) if (~churned).any() else float("nan")
    return accuracy, (recall + specificity) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--database", default=f"sqlite:///{ROOT}/var/bench-review-value-{os.getpid()}.sqlite3"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    member_ids, score, confidence, churned, to_people = setup(
        args.database, args.members, args.seed
    )
    model_call = score >= 0.5
    n = len(member_ids)
    base_accuracy, base_balanced = figures(model_call, churned)
    print(
        f"{n:,} members scored, realized churn {churned.mean():.1%}; the model alone: "
        f"accuracy {base_accuracy:.3f}, balanced accuracy {base_balanced:.3f}; the default "
        f"policy sends {to_people.sum():,} items ({to_people.mean():.1%}) to people "
        f"({time.perf_counter() - started:.0f} s to set up)"
    )
    reviewers = ["accuracy 0.6", "accuracy 0.75", "accuracy 0.9", "automation-biased"]
    print(
        f"\n{'reviewer':<18} {'reviewed':>14} {'accuracy':>9} {'balanced':>9} "
        f"{'Δ correct / 100 reviews':>24} {'marginal / 100':>15}"
    )
    for kind in reviewers:
        answered = answers(
            kind, seed=args.seed, member_ids=member_ids, model_call=model_call, churned=churned
        )
        previous_correct, previous_reviewed = int((model_call == churned).sum()), 0
        for label, reviewed in _plan(n, to_people):
            final = model_call.copy()
            final[reviewed] = answered[reviewed]
            accuracy, balanced = figures(final, churned)
            count = int(reviewed.sum())
            correct = int((final == churned).sum())
            gain = (correct - (model_call == churned).sum()) / count * 100 if count else 0.0
            if label.endswith("%"):
                step = count - previous_reviewed
                marginal = (correct - previous_correct) / step * 100 if step > 0 else 0.0
                previous_correct, previous_reviewed = correct, count
                marginal_text = f"{marginal:+.1f}"
            else:
                marginal_text = ""
            print(
                f"{kind:<18} {label:>14} {accuracy:>9.3f} {balanced:>9.3f} "
                f"{gain:>+24.1f} {marginal_text:>15}"
            )
        print()
    print(f"done in {time.perf_counter() - started:.0f} s")


def _plan(n: int, to_people: np.ndarray):
    """(label, reviewed mask): the least confident share of the items, then the policy's own."""
    for share in SHARES:
        mask = np.zeros(n, dtype=bool)
        mask[: round(share * n)] = True
        yield f"{share:.0%}", mask
    yield "policy's share", to_people


if __name__ == "__main__":
    main()
