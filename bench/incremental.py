"""Fresh scores at scale: bringing the changed members' scores up to date, against a full
re-score of everyone, on DATABASE_URL (PostgreSQL for the figures that count).

    createdb -h 127.0.0.1 -U postgres bench_incremental
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_incremental \\
        .venv/bin/python bench/incremental.py --members 1000000 --changed 0.01 0.001

The population is bench/score.py's (generated members, seed BENCH_SEED, created unless the
database holds N already) with a churn version trained on at most --training-members of them
(LOYALTY_TRAINING_MAX_MEMBERS: the model's quality is not what is measured) unless one is
active. Then, each stage timed with its commits, in this process (chunks scored one after
another: a worker pool divides both sides alike):
1. a full re-score: the daily refresh (`freshness.refresh_scores`) when every member is due,
   i.e. one full run over everyone at the scoring clock, its chunks, and the population's
   value points stored at its end;
2. for each share in --changed: that share of the members (every k-th by pk) get one
   purchase a day after the data's end, through the CSV import (which marks them); then the
   refresh: finding the members due (`members_due`, the change marks' partial index) and
   scoring them at the clock's new reading.
It prints members, seconds and members per second of each, and the full re-score's time over
the refresh's. Routing is not timed here (bench/policy_decisions.py times it). Predictions a
previous run of this bench left at the same cutoff are deleted first, so every stage writes.
"""

import argparse
import csv
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import score as population  # noqa: E402  (bench/score.py: the same generated members)


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def score_refresh(refresh) -> None:
    from predictions.services.scoring.runs import score_chunk

    for run in refresh.runs:
        for chunk_id in run.chunks.order_by("index").values_list("pk", flat=True):
            score_chunk(chunk_id=chunk_id)


def clear_cutoff() -> None:
    """Predictions this bench left at the clock's reading (a rerun) would make the writes
    no-ops; reviews are never made here, so nothing points to them."""
    from loyalty.clock import scoring_clock
    from predictions.models import Prediction

    Prediction.objects.filter(cutoff=scoring_clock(), review__isnull=True).delete()


def change(share: float) -> tuple[int, float]:
    """One purchase a day after the data's end for every k-th member (k = 1 / share), through
    the CSV import; returns (members changed, import seconds)."""
    from loyalty.models import Event, Member
    from loyalty.services.imports.members_and_events import import_events

    step = max(1, round(1 / share))
    last = Event.objects.order_by("-occurred_at").values_list("occurred_at", flat=True).first()
    at = (last + timedelta(days=1)).isoformat()
    external_ids = list(
        Member.objects.filter(consent_profiling=True)
        .order_by("pk")
        .values_list("external_id", flat=True)[::step]
    )
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["member_external_id", "occurred_at", "kind", "amount"])
        writer.writerows([external_id, at, "purchase", "12.50"] for external_id in external_ids)
    try:
        _, seconds = timed(lambda: import_events(source=Path(handle.name)))
    finally:
        os.unlink(handle.name)
    return len(external_ids), seconds


def line(label: str, members: int, seconds: float) -> str:
    rate = members / seconds if seconds else float("inf")
    return f"{label:<44} {members:>10,} members {seconds:>9.1f} s {rate:>10,.0f} members/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--changed", type=float, nargs="+", default=[0.01])
    parser.add_argument("--training-members", type=int, default=50_000)
    args = parser.parse_args()
    os.environ["LOYALTY_TRAINING_MAX_MEMBERS"] = str(args.training_members)
    population.setup_django()

    from django.db import connection

    from loyalty.clock import scoring_clock
    from loyalty.models import Member
    from predictions.services.scoring.freshness import members_due, refresh_scores

    population.ensure_members(args.members)
    population.ensure_churn_version(scoring_clock() - timedelta(days=population.HORIZON))
    print(f"{connection.vendor}, {Member.objects.count():,} members, clock {scoring_clock()}")

    Member.objects.update(scored_through=None, inputs_changed_at=None)  # everyone due
    clear_cutoff()
    full, select_seconds = timed(lambda: refresh_scores(enqueue=False))
    _, score_seconds = timed(lambda: score_refresh(full))
    full_seconds = select_seconds + score_seconds
    assert full.runs and full.runs[-1].scope == "full", full
    print(line("full re-score (one full run)", full.due, full_seconds))

    for share in args.changed:
        changed, import_seconds = change(share)
        clear_cutoff()
        due, find_seconds = timed(lambda: members_due(clock=scoring_clock(), every_days=7).count())
        refresh, start_seconds = timed(lambda: refresh_scores(enqueue=False))
        _, score_seconds = timed(lambda refresh=refresh: score_refresh(refresh))
        refresh_seconds = start_seconds + score_seconds
        print(f"{share:.2%} changed: {changed:,} members, CSV import {import_seconds:.1f} s")
        print(f"  finding the members due: {due:,} in {find_seconds * 1000:.0f} ms")
        print(line("  refresh (start + score)", refresh.due, refresh_seconds))
        print(f"  full re-score / refresh: {full_seconds / refresh_seconds:.1f}x")


if __name__ == "__main__":
    main()
