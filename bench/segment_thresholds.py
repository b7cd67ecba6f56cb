"""How long the simulation's per-row thresholds take with custom segments, no database.

    .venv/bin/python bench/segment_thresholds.py [--rows 1000000] [--repeat 3]

`routing_rules.threshold_columns` on generated columns (tiers off the ladder, RFM codes,
log-normal member values; a seeded generator): the policy with a tier and an RFM override,
then with 20 custom segments beside them (the most a version may hold). Prints each median,
and the time of one member's thresholds (`override_thresholds`, what routing asks per row).
"""

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _timed(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty.settings.test")
    import django

    django.setup()
    from django.conf import settings as django_settings

    from predictions.ml.segments import RFM_SEGMENTS
    from reviews.custom_segments import MAX_CUSTOM_SEGMENTS, custom_segment_key
    from reviews.policy_settings import PolicySettings
    from reviews.services.routing_rules import override_thresholds, threshold_columns

    rng = np.random.default_rng(0)
    ladder = list(django_settings.LOYALTY_TIER_LADDER)
    codes = [info.code for info in RFM_SEGMENTS]
    tiers = rng.choice(ladder, args.rows).astype(object)
    segments = rng.choice(codes, args.rows).astype(object)
    values = rng.lognormal(6.0, 1.0, args.rows)
    plain = PolicySettings(
        segment_overrides={
            ladder[-1]: {"auto_approve_confidence": 0.95},
            "rfm:at_risk": {"auto_approve_confidence": 0.97, "expert_confidence": 0.85},
        }
    )
    custom = dict(plain.segment_overrides)
    for index in range(MAX_CUSTOM_SEGMENTS):
        name = f"Segment {index}"
        custom[custom_segment_key(name)] = {
            "name": name,
            "rule": {
                "tiers": ladder[index % len(ladder) :][:2],
                "rfm_segments": codes[index % len(codes) :][:3],
                "min_value": float(100 * index),
                "max_value": None,
            },
            "auto_approve_confidence": 0.9 + index / 400,
        }
    with_custom = replace(plain, segment_overrides=custom)

    def run(settings):
        return lambda: threshold_columns(
            settings, tiers=tiers, rfm_segments=segments, values=values
        )

    base = _timed(run(plain), args.repeat)
    more = _timed(run(with_custom), args.repeat)
    print(f"{args.rows:,} rows")
    print(f"tier + RFM overrides                     {base:6.3f} s")
    print(f"... and {MAX_CUSTOM_SEGMENTS} custom segments              {more:6.3f} s")
    calls = 20_000
    for label, settings in (
        ("tier + RFM", plain),
        (f"+ {MAX_CUSTOM_SEGMENTS} custom", with_custom),
    ):
        seconds = _timed(
            lambda settings=settings: [
                override_thresholds(settings, tier=ladder[-1], rfm_segment="at_risk", value=500.0)
                for _ in range(calls)
            ],
            args.repeat,
        )
        print(f"one member's thresholds, {label:<12} {seconds / calls * 1e6:6.1f} µs")


if __name__ == "__main__":
    main()
