"""The two input frames (events, members): their columns, event kinds, tier ranks, and
normalization. The Django side reads its event kinds and tier ranks from here too.

Callers may pass frames with only the required columns; optional ones are added empty, so a
purchase-only data set and a rich web-event data set go through the same code.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .contracts import InvalidInputError

PURCHASE = "purchase"
RETURN = "return"
VIEW = "view"
CLICK = "click"
SEARCH = "search"
ADD_TO_CART = "add_to_cart"
REDEMPTION = "redemption"
SUPPORT_CONTACT = "support_contact"
LOGIN = "login"
EMAIL_OPEN = "email_open"
CAMPAIGN_RECEIVED = "campaign_received"
COUPON_REDEEMED = "coupon_redeemed"

EVENT_KINDS: tuple[str, ...] = (
    PURCHASE,
    RETURN,
    VIEW,
    CLICK,
    SEARCH,
    ADD_TO_CART,
    REDEMPTION,
    SUPPORT_CONTACT,
    LOGIN,
    EMAIL_OPEN,
    CAMPAIGN_RECEIVED,
    COUPON_REDEEMED,
)
KIND_CODE: dict[str, int] = {kind: code for code, kind in enumerate(EVENT_KINDS)}

EVENT_REQUIRED = ("member_id", "occurred_at", "kind")
EVENT_FLOATS = ("amount", "quantity", "dwell_seconds")
EVENT_STRINGS = ("category", "channel", "session_id", "product_id")
# All of them, in the order of the events import file and of the database table.
EVENT_COLUMNS = (
    *EVENT_REQUIRED,
    "amount",
    "quantity",
    "category",
    "channel",
    "session_id",
    "dwell_seconds",
    "product_id",
)

MEMBER_COLUMNS = ("member_id", "joined_on", "tier", "points_balance", "tier_rank")
UNKNOWN_TIER_RANK = -1
# Tiers from lowest to highest, when nobody configured a ladder.
DEFAULT_TIER_LADDER = ("bronze", "silver", "gold", "platinum")


def tier_rank(tier: str, ladder: Sequence[str]) -> int:
    """Position of `tier` on `ladder` (lowest first); a tier not on it ranks below every
    listed one."""
    return list(ladder).index(tier) if tier in ladder else UNKNOWN_TIER_RANK


def tier_ranks(tiers: pd.Series, ladder: Sequence[str]) -> np.ndarray:
    """`tier_rank` of every tier in a column, as int64."""
    ranks = {tier: tier_rank(tier, ladder) for tier in pd.unique(tiers)}
    return tiers.map(ranks).to_numpy(dtype="int64")


def required_tier_rank(min_tier: str, ladder: Sequence[str]) -> int:
    """The rank a member needs for something offered from `min_tier` up: a minimum tier that
    is not on the ladder is out of every member's reach."""
    return tier_rank(min_tier, ladder) if min_tier in ladder else len(ladder)


def empty_events() -> pd.DataFrame:
    """An events frame with no rows and the right dtypes."""
    return normalize_events(
        pd.DataFrame(
            {
                "member_id": pd.Series([], dtype="int64"),
                "occurred_at": pd.Series([], dtype="datetime64[ns, UTC]"),
                "kind": pd.Series([], dtype="object"),
            }
        )
    )


def normalize_events(events: pd.DataFrame) -> pd.DataFrame:
    """Check and coerce an events frame; add missing optional columns as empty.

    Naive timestamps are read as UTC. Raises InvalidInputError naming the column, and the
    first offending row where there is one.
    """
    for column in EVENT_REQUIRED:
        if column not in events.columns:
            raise InvalidInputError(frame="events", field=column, reason="column is missing")
    out = pd.DataFrame(index=pd.RangeIndex(len(events)))
    out["member_id"] = _int_column(events["member_id"], frame="events", field="member_id")
    out["occurred_at"] = _utc_column(events["occurred_at"], frame="events", field="occurred_at")
    kind = events["kind"].astype("object").to_numpy()
    known = pd.Series(kind).isin(EVENT_KINDS).to_numpy()
    if not known.all():
        row = int(np.flatnonzero(~known)[0])
        raise InvalidInputError(
            frame="events", field="kind", row=row, reason=f"unknown kind {kind[row]!r}"
        )
    out["kind"] = kind
    for column in EVENT_FLOATS:
        if column in events.columns:
            values = pd.to_numeric(events[column], errors="coerce").to_numpy(dtype="float64")
        else:
            values = np.full(len(events), np.nan)
        out[column] = values
    for column in EVENT_STRINGS:
        if column in events.columns:
            out[column] = events[column].fillna("").astype(str).to_numpy()
        else:
            out[column] = np.full(len(events), "", dtype=object)
    return out


def normalize_members(members: pd.DataFrame) -> pd.DataFrame:
    """Check and coerce a members frame; one row per member_id, in the given order.

    Missing optional columns get neutral values (NaT, '', 0 points, unknown tier rank).
    """
    if "member_id" not in members.columns:
        raise InvalidInputError(frame="members", field="member_id", reason="column is missing")
    ids = _int_column(members["member_id"], frame="members", field="member_id")
    duplicated = pd.Series(ids).duplicated().to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise InvalidInputError(
            frame="members", field="member_id", row=row, reason=f"duplicate id {ids[row]}"
        )
    n = len(members)
    out = pd.DataFrame({"member_id": ids})
    if "joined_on" in members.columns:
        joined = pd.to_datetime(members["joined_on"], errors="coerce")
        if getattr(joined.dt, "tz", None) is not None:
            joined = joined.dt.tz_convert("UTC").dt.tz_localize(None)
        out["joined_on"] = joined.to_numpy(dtype="datetime64[ns]")
    else:
        out["joined_on"] = np.full(n, np.datetime64("NaT", "ns"))
    if "tier" in members.columns:
        out["tier"] = members["tier"].fillna("").astype(str).to_numpy()
    else:
        out["tier"] = ""
    if "points_balance" in members.columns:
        out["points_balance"] = pd.to_numeric(members["points_balance"], errors="coerce").to_numpy(
            dtype="float64"
        )
    else:
        out["points_balance"] = 0.0
    if "tier_rank" in members.columns:
        rank = pd.to_numeric(members["tier_rank"], errors="coerce").fillna(UNKNOWN_TIER_RANK)
        out["tier_rank"] = rank.to_numpy(dtype="int64")
    else:
        out["tier_rank"] = UNKNOWN_TIER_RANK
    return out


def to_utc_timestamp(value: object) -> pd.Timestamp:
    """A cutoff as an aware UTC timestamp (a naive one is read as UTC)."""
    stamp = pd.Timestamp(value)
    if stamp is pd.NaT:
        raise InvalidInputError(frame="arguments", field="cutoff", reason="not a date")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _int_column(series: pd.Series, *, frame: str, field: str) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            frame=frame, field=field, row=row, reason=f"not an integer: {series.iloc[row]!r}"
        )
    return values.to_numpy(dtype="int64")


def _utc_column(series: pd.Series, *, frame: str, field: str) -> pd.Series:
    """Aware UTC nanosecond timestamps on a fresh RangeIndex (naive values are read as UTC)."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        stamps = series.dt.tz_convert("UTC")
    else:
        stamps = pd.to_datetime(series, errors="coerce", utc=True)
    stamps = stamps.reset_index(drop=True)
    bad = stamps.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            frame=frame, field=field, row=row, reason=f"not a timestamp: {series.iloc[row]!r}"
        )
    return stamps.dt.as_unit("ns")
