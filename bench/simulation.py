"""How long the policy page's simulation takes on the reviews already in the database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_pages .venv/bin/python bench/simulation.py

Run it after bench/pages.py, whose database holds 1 M churn reviews. Prints the seconds to read
the undecided reviews' routing inputs (`simulation.read_columns`) and for a whole
`simulate_policy` under the current policy (read, route, expected errors, the 50-point workload
curve, the decided sample), each the median of --repeat runs.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="churn")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty.settings.base")
    import django

    django.setup()
    from django.db import connection

    from reviews.policy_settings import PolicySettings
    from reviews.selectors.policy import current_policy
    from reviews.services import simulation
    from reviews.services.rerouting import routed_population

    settings = PolicySettings.of(current_policy(args.kind))
    reads, runs = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        columns = simulation.read_columns(routed_population(args.kind), kind=args.kind)
        reads.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = simulation.simulate_policy(kind=args.kind, settings=settings)
        runs.append(time.perf_counter() - started)
    print(f"{connection.vendor}: {len(columns):,} undecided {args.kind} reviews")
    print(f"read routing inputs   {statistics.median(reads):6.2f} s")
    print(f"simulate_policy       {statistics.median(runs):6.2f} s")
    print(f"routes under the current policy: { {str(k): v for k, v in result.counts.items()} }")


if __name__ == "__main__":
    main()
