"""A row budget for training sets: at most so many members per cutoff, the same ones every run.

Every member gets a key from a stable hash of its id and the seed (SplitMix64's finalizer, not
Python's salted `hash`); where more members are active at a cutoff than the budget allows, the
members with the lowest keys are kept. So:
- a run is reproducible: the same data and seed keep the same members;
- the sample at a cutoff depends on which members are active there and nothing else, never
  on what happened after the cutoff;
- it is a stable subset: a member kept among some members is kept among any fewer of them,
  and a larger budget keeps a superset. A member kept at one cutoff is therefore kept at
  most others too, so its rows mostly stay together (what member-disjoint validation and
  half-sample refits expect) and the sample does not churn from one cutoff to the next.
"""

from __future__ import annotations

import numpy as np

# SplitMix64 (Steele, Lea and Flood 2014): the golden-ratio increment and the finalizer's two
# multipliers. Consecutive ids come out as unrelated 64-bit keys.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def member_keys(member_id: np.ndarray, *, seed: int) -> np.ndarray:
    """A uint64 key per member id, the same on every machine and run for one seed."""
    with np.errstate(over="ignore"):
        z = np.asarray(member_id, dtype=np.int64).astype(np.uint64)
        z = z + _GOLDEN * np.uint64(seed + 1)
        z = (z ^ (z >> np.uint64(30))) * _MIX_1
        z = (z ^ (z >> np.uint64(27))) * _MIX_2
        return z ^ (z >> np.uint64(31))


def within_budget(member_id: np.ndarray, *, budget: int | None, seed: int) -> np.ndarray:
    """Boolean mask over `member_id` (distinct ids): all of them when they fit in `budget`
    (None: no budget), else exactly `budget`, those with the lowest keys (ties by id)."""
    ids = np.asarray(member_id, dtype=np.int64)
    if budget is None or len(ids) <= budget:
        return np.ones(len(ids), dtype=bool)
    if budget < 1:
        raise ValueError(f"a row budget must be at least 1, got {budget}")
    order = np.lexsort((ids, member_keys(ids, seed=seed)))
    mask = np.zeros(len(ids), dtype=bool)
    mask[order[:budget]] = True
    return mask


def rows_per_cutoff(max_rows: int, cutoffs: int) -> int:
    """The per-cutoff budget that keeps `cutoffs` cutoffs within `max_rows` rows in all."""
    if cutoffs < 1:
        raise ValueError("a row budget needs at least one cutoff")
    return max(max_rows // cutoffs, 1)


def budget_report(*, max_rows: int, per_cutoff: int, counts: dict[str, dict[str, int]]) -> dict:
    """What a training report says about its budget: the rule, the limits, and per cutoff how
    many members were active and how many were kept."""
    return {
        "rule": "at most rows_per_cutoff members per cutoff (max_rows over the cutoffs); where "
        "more are active, the members with the lowest stable hash of (member id, seed) are "
        "kept, before any feature is built: reproducible, the same members at every cutoff "
        "where they fit, and independent of anything after the cutoff",
        "max_rows": max_rows,
        "rows_per_cutoff": per_cutoff,
        "sampled": any(c["kept"] < c["active"] for c in counts.values()),
        "cutoffs": counts,
    }
