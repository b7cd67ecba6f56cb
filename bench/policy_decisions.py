"""Benchmark of routing now that an auto-approval is a decision, on the configured DATABASE_URL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_policy \\
        .venv/bin/python bench/policy_decisions.py --members 50000

Writes N generated members with one churn and one next-action prediction each (bulk inserts,
no model: routing reads only the stored numbers), then routes them three times over, each
time from scratch (reviews, decisions and outbox events deleted between runs):
- churn, under a policy that auto-approves nothing: routing alone;
- churn, under a policy that auto-approves about 80 %: routing plus a policy decision and an
  outbox event per auto-approval (`reviews.services.policy_decisions`);
- next action, by expected value (ranking with the latest churn probabilities, the catalog's
  eligibility and the contact rules), about 80 % auto-approved;
- cases (both versions made active): one review per member carrying both predictions, each
  side routed by its policy, the action ranked by expected value with the case's own churn
  score, auto-approved where both sides are (about 64 %).
Prints reviews per second for each, and the cost of one policy decision (its decision row, its
holdout draw and its event) from the difference of the first two.
"""

import argparse
import os
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SEED = 2718
BATCH = 5000


def _setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty.settings.base")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    database = settings.DATABASES["default"]
    name = str(database["NAME"])
    if database["ENGINE"].endswith("postgresql") and not name.startswith("bench"):
        sys.exit(f"refusing to write to {name!r}: the database name must start with 'bench'")
    call_command("migrate", verbosity=0)


def _population(members: int) -> None:
    """N members with a churn and a next-action prediction each (written once, reused)."""
    from loyalty.models import Action, Member
    from loyalty.services.catalog import seed_action_catalog
    from predictions.models import ModelVersion, Prediction

    seed_action_catalog()
    if Member.objects.filter(external_id__startswith="bench-pd-").count() >= members:
        return
    rng = np.random.default_rng(SEED)
    cutoff = datetime(2026, 1, 1, tzinfo=UTC)
    versions = {
        kind: ModelVersion.objects.create(
            kind=kind,
            algorithm="bench",
            evaluation_cutoff=cutoff,
            data_fingerprint="0" * 64,
            artifact_path="/nonexistent",
        )
        for kind in ("churn", "next_action")
    }
    codes = list(Action.objects.filter(is_active=True).values_list("code", "pk"))
    for start in range(0, members, BATCH):
        size = min(BATCH, members - start)
        created = Member.objects.bulk_create(
            Member(
                external_id=f"bench-pd-{start + i:07d}",
                tier=str(rng.choice(["bronze", "silver", "gold"])),
                consent_profiling=True,
                consent_marketing=bool(rng.random() < 0.9),
            )
            for i in range(size)
        )
        values = rng.exponential(400, size)
        # Confidences with about 80 % at or above 0.9 (the policy's auto-approve threshold).
        confidence = np.where(rng.random(size) < 0.8, 0.9 + 0.09 * rng.random(size), 0.6)
        rows = []
        for member, value, sure in zip(created, values, confidence, strict=True):
            probabilities = rng.dirichlet(np.ones(len(codes)))
            best = int(np.argmax(probabilities))
            rows.append(
                Prediction(
                    member=member,
                    model_version=versions["churn"],
                    kind="churn",
                    cutoff=cutoff,
                    score=float(rng.beta(1, 6)),  # below the risk band of the default policy
                    confidence=float(sure),
                    member_value=float(value),
                )
            )
            rows.append(
                Prediction(
                    member=member,
                    model_version=versions["next_action"],
                    kind="next_action",
                    cutoff=cutoff,
                    score=float(probabilities[best]),
                    probabilities={
                        code: float(p) for (code, _), p in zip(codes, probabilities, strict=True)
                    },
                    recommended_action_id=codes[best][1],
                    confidence=float(sure),
                    member_value=float(value),
                )
            )
        Prediction.objects.bulk_create(rows, batch_size=2000)


def _clear() -> None:
    from loyalty.models import OutboxEvent
    from reviews.models import Decision, Review

    Decision.objects.all().delete()
    Review.objects.all().delete()
    OutboxEvent.objects.all().delete()


def _route(kind: str, settings) -> tuple[float, dict, int]:
    from reviews.models import Decision
    from reviews.services.policy import change_policy
    from reviews.services.routing import route_new_predictions

    _clear()
    change_policy(kind=kind, settings=settings, actor=None, reason="bench")
    started = time.perf_counter()
    result = route_new_predictions(kind=kind)
    elapsed = time.perf_counter() - started
    return result.routed / elapsed, result.by_route, Decision.objects.count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50_000)
    args = parser.parse_args()
    _setup_django()
    from django.db import connection

    from reviews.policy_settings import DEFAULT_SETTINGS

    _population(args.members)
    churn = replace(DEFAULT_SETTINGS["churn"], audit_sample_rate=0.0)
    nothing_auto = replace(churn, auto_approve_confidence=1.0)
    print(f"{connection.vendor}, {args.members:,} members")
    rate_none, routes, made = _route("churn", nothing_auto)
    print(f"churn, nothing auto-approved: {rate_none:,.0f} reviews/s  {routes}  decisions {made}")
    rate_auto, routes, made = _route("churn", churn)
    print(f"churn, ~80 % auto-approved:   {rate_auto:,.0f} reviews/s  {routes}  decisions {made}")
    if made:
        per_decision = (args.members / rate_auto - args.members / rate_none) / made
        print(f"one policy decision (row, holdout draw, event): {per_decision * 1e6:,.0f} µs")
    by_value = replace(DEFAULT_SETTINGS["next_action"], audit_sample_rate=0.0)
    by_value = replace(by_value, ranking="expected_value")
    rate, routes, made = _route("next_action", by_value)
    print(f"next action by expected value: {rate:,.0f} reviews/s  {routes}  decisions {made}")
    rate, routes, made = _route_cases(churn, by_value)
    print(f"cases, both sides:             {rate:,.0f} cases/s    {routes}  decisions {made}")


def _route_cases(churn, next_action) -> tuple[float, dict, int]:
    """Route the population as cases: the bench's versions active for the run only."""
    from predictions.models import ModelVersion
    from reviews.services.policy import change_policy

    versions = ModelVersion.objects.filter(algorithm="bench")
    change_policy(kind="next_action", settings=next_action, actor=None, reason="bench")
    versions.update(status=ModelVersion.Status.ACTIVE)
    try:
        return _route("churn", churn)
    finally:
        versions.update(status=ModelVersion.Status.CANDIDATE)


if __name__ == "__main__":
    main()
