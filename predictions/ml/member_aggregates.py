"""Per-member reductions over event arrays, the building blocks of the features.

Events arrive as parallel arrays with each event's member position (0..n-1, the row of the
feature matrix); every function returns one value per member, computed with bulk numpy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Rates divide by at least this many observed days: a member who joined last week and bought
# twice does not get a monthly rate of eight.
MIN_RATE_DAYS = 30
# A trend needs at least this share of its earlier window observed (after the first event).
MIN_OBSERVED_SHARE = 0.5


def group_min(pos: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, np.inf)
    np.minimum.at(out, pos, values)
    out[np.isinf(out)] = np.nan
    return out


def group_max(pos: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, -np.inf)
    np.maximum.at(out, pos, values)
    out[np.isinf(out)] = np.nan
    return out


def gap_stats(pos: np.ndarray, day: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample std of gaps (days) between a member's distinct purchase days.

    Events arrive sorted by time, so a stable sort by member keeps each member's days in
    order: gaps are then the positive steps between neighbours of the same member.
    """
    order = np.argsort(pos, kind="stable")
    pos, day = pos[order], day[order]
    step = np.diff(day)
    is_gap = (pos[1:] == pos[:-1]) & (step > 0)
    gaps = step[is_gap].astype("float64")
    owner = pos[1:][is_gap]
    k = np.bincount(owner, minlength=n).astype("float64")
    total = np.bincount(owner, weights=gaps, minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(k > 0, total / k, np.nan)
        squares = np.bincount(owner, weights=(gaps - mean[owner]) ** 2, minlength=n)
        std = np.where(k > 1, np.sqrt(squares / (k - 1)), np.nan)
    return mean, std


def pair_groups(pos: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group ids of (member position, key) pairs, and each group's member position.

    Both are packed into one int64 so that a single-key factorize does the work (a two-key
    groupby costs several times more on a million rows).
    """
    if len(pos) == 0:
        return np.zeros(0, dtype="int64"), np.zeros(0, dtype="int64")
    low = int(key.min())
    span = int(key.max()) - low + 1
    packed = pos.astype("int64") * span + (key.astype("int64") - low)
    group, uniques = pd.factorize(packed, sort=False)
    return group, (uniques // span).astype("int64")


def distinct_first(
    pos: np.ndarray, key: np.ndarray, age: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (member, key) pairs with the age of their oldest event."""
    group, owner = pair_groups(pos[mask], key[mask])
    oldest = np.zeros(len(owner))
    np.maximum.at(oldest, group, age[mask])
    return owner, oldest


def weighted_mix(
    pos: np.ndarray, code: np.ndarray, weight: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct codes, entropy (bits) and top share of each member's weighted code mix."""
    group, g_pos = pair_groups(pos, code)
    g_w = np.bincount(group, weights=weight, minlength=len(g_pos))
    total = np.bincount(g_pos, weights=g_w, minlength=n)
    share = g_w / total[g_pos]
    distinct = np.bincount(g_pos, minlength=n).astype("float64")
    entropy = np.bincount(g_pos, weights=-share * np.log2(share), minlength=n)
    top = np.zeros(n)
    np.maximum.at(top, g_pos, share)
    has = distinct > 0
    return distinct, np.where(has, entropy + 0.0, np.nan), np.where(has, top, np.nan)


def share_of(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(whole > 0, part / whole, np.nan)


def rate_per_30d(total: np.ndarray, observed: np.ndarray) -> np.ndarray:
    days = np.clip(observed, MIN_RATE_DAYS, 365)
    return total / days * 30


def trend(last: np.ndarray, before: np.ndarray, observed: np.ndarray, window: int) -> np.ndarray:
    """Symmetric change of per-day rates, NaN when the earlier window is mostly unobserved."""
    before_days = np.clip(observed - window, 0, window)
    seen = before_days >= MIN_OBSERVED_SHARE * window
    with np.errstate(divide="ignore", invalid="ignore"):
        before_rate = np.where(seen, before / before_days, np.nan)
    out = symmetric_change(last / window, before_rate)
    return np.where(seen, out, np.nan)


def symmetric_change(recent: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """(recent - earlier) / (|recent| + |earlier|): bounded in [-1, 1], 0 when both are 0."""
    scale = np.abs(recent) + np.abs(earlier)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(scale > 0, (recent - earlier) / scale, np.where(scale == 0, 0.0, np.nan))
