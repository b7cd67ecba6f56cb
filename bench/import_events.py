"""Benchmark of the CSV import: members, then N events, on the configured DATABASE_URL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_import \\
        .venv/bin/python bench/import_events.py --events 1000000

Prints rows per second for validation and for writing, total seconds and peak RSS. With
--file, imports that events CSV instead of a generated one (its members must exist).
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EVENTS = 1_000_000
DEFAULT_MEMBERS = 50_000
BENCH_PREFIX = "bench-"
SEED = 20250101
# Events spread over one year with second resolution.
YEAR_SECONDS = 365 * 24 * 3600
KINDS = ["purchase", "view", "click", "search", "add_to_cart", "login", "email_open"]
KIND_WEIGHTS = [0.3, 0.3, 0.15, 0.08, 0.07, 0.06, 0.04]
CATEGORIES = ["GROCERY", "PRODUCE", "DRUG GM", "MEAT", "DELI", "PASTRY", "FROZEN", "DAIRY"]
CHANNELS = ["store", "web", "app"]
PRODUCTS = 50_000
GENERATE_CHUNK = 100_000


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty.settings.base")
    import django

    django.setup()


def write_members_csv(path: Path, members: int) -> None:
    rng = np.random.default_rng(SEED)
    ids = pd.Series(np.arange(members)).map(lambda n: f"{BENCH_PREFIX}{n}")
    frame = pd.DataFrame(
        {
            "external_id": ids,
            "joined_at": pd.Timestamp("2023-01-01")
            + pd.to_timedelta(rng.integers(0, 730, members), unit="D"),
            "tier": rng.choice(["bronze", "silver", "gold", "platinum"], members),
            "points_balance": rng.integers(0, 20_000, members),
            "consent_profiling": rng.random(members) < 0.9,
            "age_band": rng.choice(["18-24", "25-34", "35-44", "45-54", "55-64", "65+"], members),
            "region": rng.choice(["north", "south", "east", "west"], members),
        }
    )
    frame["joined_at"] = frame["joined_at"].dt.strftime("%Y-%m-%d")
    frame.to_csv(path, index=False)


def write_events_csv(path: Path, events: int, members: int) -> None:
    """Written in chunks, so that generating the file does not inflate the peak RSS measured."""
    rng = np.random.default_rng(SEED + 1)
    for start in range(0, events, GENERATE_CHUNK):
        size = min(GENERATE_CHUNK, events - start)
        member = rng.integers(0, members, size)
        seconds = rng.integers(0, YEAR_SECONDS, size)
        kind = rng.choice(KINDS, size, p=KIND_WEIGHTS)
        is_purchase = kind == "purchase"
        occurred = pd.Timestamp("2025-01-01") + pd.to_timedelta(seconds, unit="s")
        amount = np.round(rng.lognormal(3, 1, size), 2)
        dwell = np.round(rng.exponential(30, size), 1)
        frame = pd.DataFrame(
            {
                "member_external_id": BENCH_PREFIX + pd.Series(member).astype(str),
                "occurred_at": occurred.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "kind": kind,
                "amount": np.where(is_purchase, amount, np.nan),
                "quantity": np.where(is_purchase, rng.integers(1, 5, size), np.nan),
                "category": rng.choice(CATEGORIES, size),
                "channel": rng.choice(CHANNELS, size),
                # A session per row keeps every generated event distinct on the natural key.
                "session_id": "s" + pd.Series(np.arange(start, start + size)).astype(str),
                "dwell_seconds": np.where(is_purchase, np.nan, dwell),
                "product_id": "p" + pd.Series(rng.integers(0, PRODUCTS, size)).astype(str),
            }
        )
        frame.to_csv(path, index=False, header=start == 0, mode="w" if start == 0 else "a")


def forget_bench_data() -> None:
    """Remove earlier runs' bench members and their events, so that every event is new."""
    from django.db import connection, transaction

    from loyalty.models import Event, Member

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {Event._meta.db_table} WHERE member_id IN "
            f"(SELECT id FROM {Member._meta.db_table} WHERE external_id LIKE %s)",
            [f"{BENCH_PREFIX}%"],
        )
        cursor.execute(
            f"DELETE FROM {Member._meta.db_table} WHERE external_id LIKE %s", [f"{BENCH_PREFIX}%"]
        )


def peak_rss_mib() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    parser.add_argument("--members", type=int, default=DEFAULT_MEMBERS)
    parser.add_argument("--file", type=Path, help="an events CSV to import instead")
    parser.add_argument("--reimport", action="store_true", help="import the events twice")
    args = parser.parse_args()
    setup_django()

    from django.db import connection

    from loyalty.services.imports.members_and_events import import_events, import_members

    with tempfile.TemporaryDirectory(prefix="bench-import-") as folder:
        started = time.perf_counter()
        events_path = args.file
        if events_path is None:
            forget_bench_data()
            members_path, events_path = Path(folder) / "members.csv", Path(folder) / "events.csv"
            write_members_csv(members_path, args.members)
            write_events_csv(events_path, args.events, args.members)
            print(
                f"generated {args.members:,} members and {args.events:,} events "
                f"in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            members = import_members(source=members_path)
            print(_line("members", members), flush=True)
        size_mib = events_path.stat().st_size / 2**20
        print(f"database: {connection.vendor}; events file {size_mib:.0f} MiB", flush=True)
        events = import_events(source=events_path)
        print(_line("events", events), flush=True)
        if args.reimport:
            again = import_events(source=events_path)
            print(_line("events again", again), flush=True)
    total = time.perf_counter() - started
    print(f"total {total:.1f} s; peak RSS {peak_rss_mib():.0f} MiB")


def _line(label: str, result) -> str:
    rows = result.rows_read
    validate_rate = rows / result.validate_seconds if result.validate_seconds else 0
    write_rate = rows / result.write_seconds if result.write_seconds else 0
    return (
        f"{label}: {rows:,} rows, {result.created:,} new, {result.updated:,} updated, "
        f"{result.unchanged:,} unchanged; validate {result.validate_seconds:.1f} s "
        f"({validate_rate:,.0f} rows/s), write {result.write_seconds:.1f} s "
        f"({write_rate:,.0f} rows/s); peak RSS so far {peak_rss_mib():.0f} MiB"
    )


if __name__ == "__main__":
    main()
