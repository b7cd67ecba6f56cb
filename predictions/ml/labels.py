"""Churn labels and the population they are defined on.

A member churns over a horizon when none of the qualifying event kinds (purchases by default)
occurs in [cutoff, cutoff + horizon). The label only means something for members who were
active before the cutoff, so training and evaluation use `active_member_ids`: members with at
least one qualifying event in the `lookback_days` before the cutoff. Scoring scores everybody.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import frames
from .features import PreparedEvents

DEFAULT_QUALIFYING_KINDS: tuple[str, ...] = (frames.PURCHASE,)
DEFAULT_ACTIVE_LOOKBACK_DAYS = 365


def churn_labels(
    *,
    events: pd.DataFrame | PreparedEvents,
    member_ids: Sequence[int] | np.ndarray | pd.Index,
    cutoff: object,
    horizon_days: int,
    qualifying_kinds: Sequence[str] = DEFAULT_QUALIFYING_KINDS,
) -> pd.Series:
    """1 where the member has no qualifying event in [cutoff, cutoff + horizon_days), else 0.

    Indexed by `member_ids` in the given order, dtype int8, name "churn". The caller must make
    sure the data reaches cutoff + horizon_days; a window past the data's end labels everyone 1.
    """
    start = frames.to_utc_timestamp(cutoff)
    end = start + pd.Timedelta(days=horizon_days)
    returned = _members_with(events, qualifying_kinds, start=start, end=end)
    ids = pd.Index(np.asarray(member_ids, dtype="int64"), name="member_id")
    return pd.Series((~ids.isin(returned)).astype("int8"), index=ids, name="churn")


def active_member_ids(
    *,
    events: pd.DataFrame | PreparedEvents,
    cutoff: object,
    lookback_days: int = DEFAULT_ACTIVE_LOOKBACK_DAYS,
    qualifying_kinds: Sequence[str] = DEFAULT_QUALIFYING_KINDS,
) -> np.ndarray:
    """Sorted ids of members with a qualifying event in [cutoff - lookback_days, cutoff)."""
    end = frames.to_utc_timestamp(cutoff)
    start = end - pd.Timedelta(days=lookback_days)
    return np.sort(_members_with(events, qualifying_kinds, start=start, end=end))


def _members_with(
    events: pd.DataFrame | PreparedEvents,
    kinds: Sequence[str],
    *,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> np.ndarray:
    unknown = set(kinds) - set(frames.EVENT_KINDS)
    if unknown:
        raise ValueError(f"unknown qualifying kinds: {sorted(unknown)}")
    if isinstance(events, PreparedEvents):
        lo, hi = np.searchsorted(events.t_ns, [start.value, end.value], side="left")
        codes = [frames.KIND_CODE[kind] for kind in kinds]
        mask = np.isin(events.kind[lo:hi], codes)
        return np.unique(events.member_id[lo:hi][mask])
    stamps = events["occurred_at"]
    if not isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = pd.to_datetime(stamps, utc=True)
    mask = events["kind"].isin(list(kinds)).to_numpy() & (stamps >= start).to_numpy()
    mask &= (stamps < end).to_numpy()
    return np.unique(events["member_id"].to_numpy(dtype="int64")[mask])
